"""Checkpoints, resuming and extending runs: the default checkpoint cadence, what an abort leaves,
a run directory without a checkpoint, training a finished run longer, and resume's compilation."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from cli_harness import ENV, assert_ok, cli, describe, in_this_process, popen
from jaxppo.cli.loop import CHECKPOINT_MIN_SECONDS, CheckpointCadence

pytestmark = pytest.mark.timeout(300)
TINY = ["--env", "CartPole-v1", "--num-envs", "4", "--num-steps", "128", "--seeds", "2"]
BATCH = 4 * 128


def iterations_in(run_dir: Path) -> list[int]:
    import csv

    with open(run_dir / "metrics.csv", newline="") as handle:
        return sorted({int(row["iteration"]) for row in csv.DictReader(handle)})


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ the checkpoint cadence
def test_default_cadence_saves_every_tenth_of_the_run_at_least_30_s_apart():
    clock = Clock()
    cadence = CheckpointCadence(total=100, every=None, minutes=None, done=0, clock=clock)
    clock.now = CHECKPOINT_MIN_SECONDS - 1
    assert not cadence.due(10)  # a tenth of the run, but too soon after the start
    clock.now = CHECKPOINT_MIN_SECONDS
    assert not cadence.due(9) and cadence.due(10)
    cadence.saved(12)
    clock.now += CHECKPOINT_MIN_SECONDS
    assert not cadence.due(21) and cadence.due(22)
    assert cadence.due(100)  # the end, however soon


def test_cadence_saves_by_time_and_by_explicit_period():
    clock = Clock()
    cadence = CheckpointCadence(total=1000, every=None, minutes=5, done=40, clock=clock)
    clock.now = 5 * 60 - 1
    assert not cadence.due(41)
    clock.now = 5 * 60
    assert cadence.due(41)  # five minutes of training, only 1 % of the run
    every = CheckpointCadence(total=1000, every=7, minutes=0, done=0, clock=clock)
    clock.now = 10**6
    assert [i for i in range(1, 30) if every.due(i)] == [7, 14, 21, 28]  # exact periods; never by time
    several = CheckpointCadence(total=100, every=None, minutes=None, done=0, clock=clock, by_time=False)
    assert [i for i in range(1, 100) if several.due(i) and several.saved(i) is None][:3] == [10, 20, 30]


def test_checkpoint_minutes_saves_between_chunks(tmp_path):
    # 4 iterations, one per compiled chunk: each chunk ends after the (tiny) time limit.
    proc = cli(*TINY, "--total-timesteps", 4 * BATCH, "--checkpoint-minutes", "1e-9", "--no-progress", "--out", "run",
               cwd=tmp_path)  # fmt: skip
    assert_ok(proc)
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())["parts_by_checkpoint"]
    assert sorted(map(int, timings)) == [2, 3, 4]  # the three newest checkpoints' entries
    assert timings["3"][-1]["iterations"] == [0, 3]


# ------------------------------------------------------------------ no checkpoint yet
@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_an_abort_before_any_checkpoint_says_so_and_resume_trains_from_the_start(tmp_path):
    flags = [*TINY, "--total-timesteps", 200 * BATCH]  # default cadence: nothing saved in its first 30 s
    proc = popen(*flags, "--out", "run", cwd=tmp_path)
    try:
        seen = []
        for line in proc.stderr:  # "compiled in": training has started, the signal handlers are in place
            seen.append(line)
            if line.startswith("compiled in"):
                break
        # Two different signals back to back (two of one kind may arrive as one): Python handles them
        # in signal order once the main thread is back from the chunk it runs, so the stop (SIGINT)
        # is asked for and aborted (SIGTERM) before the chunk's end could save anything.
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = "".join(seen) + err
    assert proc.returncode == 143, err
    assert "SIGTERM again: aborting now" in err, err
    assert "intact" not in err and "no checkpoint was saved yet" in err, err
    assert f"--resume {Path('run')}" in err, err
    assert not list((tmp_path / "run").glob("checkpoints/*.npz"))

    refused = in_this_process(*flags, "--no-progress", "--out", "run", cwd=tmp_path)
    assert refused.returncode == 2 and "--resume run to continue it from iteration 0" in refused.stderr, refused.stderr

    resumed = cli("--resume", "run", "--no-progress", cwd=tmp_path)
    assert_ok(resumed)
    assert "from iteration 0" in resumed.stderr, describe(resumed)
    assert iterations_in(tmp_path / "run") == list(range(1, 201))


# ------------------------------------------------------------------ training a run longer
def summary_without_timings(run_dir: Path) -> list[dict]:
    timings = ("compile_seconds", "run_seconds", "env_steps_per_second")  # wall clock, never equal
    points = json.loads((run_dir / "summary.json").read_text())["grid_points"]
    return [{k: v for k, v in point.items() if k not in timings} for point in points]


def test_a_run_without_annealing_trained_longer_equals_one_trained_that_long(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    flags = [*TINY, "--no-anneal-lr", "--eval-episodes", "2", "--no-progress"]
    with ThreadPoolExecutor(3) as pool:
        jobs = {
            "short": pool.submit(cli, *flags, "--total-timesteps", 4 * BATCH, "--out", "extended", cwd=tmp_path),
            "long": pool.submit(cli, *flags, "--total-timesteps", 8 * BATCH, "--out", "reference", cwd=tmp_path),
            "annealed": pool.submit(cli, *TINY, "--total-timesteps", 4 * BATCH, "--no-progress", "--out", "annealed",
                                    cwd=tmp_path),  # fmt: skip
        }
        for job in jobs.values():
            assert_ok(job.result())
    extended, reference, annealed = (tmp_path / name for name in ("extended", "reference", "annealed"))
    annealed_files = {p: p.read_bytes() for p in annealed.rglob("*") if p.is_file()}
    refused = {
        "annealed": in_this_process("--resume", annealed, "--total-timesteps", 8 * BATCH, cwd=tmp_path),
        "shorter": in_this_process("--resume", extended, "--total-timesteps", 2 * BATCH, cwd=tmp_path),
    }
    for proc in refused.values():
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, describe(proc)
    assert "--no-anneal-lr" in refused["annealed"].stderr, describe(refused["annealed"])
    assert {p: p.read_bytes() for p in annealed.rglob("*") if p.is_file()} == annealed_files

    longer = cli("--resume", extended, "--total-timesteps", 8 * BATCH, "--no-progress", cwd=tmp_path)
    assert_ok(longer)
    assert (extended / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()  # bit for bit
    assert summary_without_timings(extended) == summary_without_timings(reference)
    summary = json.loads((extended / "summary.json").read_text())
    assert [p["iterations"] for p in summary["parts"]] == [[0, 4], [4, 8]]
    config = json.loads((extended / "config.json").read_text())
    assert config["config"]["total_timesteps"] == 8 * BATCH and config["num_iterations"] == 8
    assert [(e["total_timesteps_before"], e["from_iteration"]) for e in config["extensions"]] == [(4 * BATCH, 4)]
    again = cli("--resume", extended, "--no-progress", cwd=tmp_path, timeout=120)  # the new budget is the run's
    assert_ok(again)
    assert "is finished" in again.stderr, describe(again)


# ------------------------------------------------------------------ resume and the compilation cache
def test_a_resumed_run_compiles_nothing_that_its_first_session_cached(tmp_path):
    env = {**ENV, "JAXPPO_CACHE_DIR": str(tmp_path / "cache")}
    # Checkpoints every 5 of 100 iterations make the chunks 5 iterations long; the resume, without
    # that flag, keeps them so (its own choice would be 2): the same program.
    flags = [*TINY, "--total-timesteps", 100 * BATCH, "--checkpoint-every", "5", "--no-progress"]
    first = cli(*flags, "--out", "run", cwd=tmp_path, env=env)
    assert_ok(first)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert any(name.startswith("jit__lambda") for name in cached), cached  # the chunk program
    finished = (tmp_path / "run" / "metrics.csv").read_text()
    # As if stopped after iteration 95: its latest checkpoint then was 95, and nothing was summarised.
    (tmp_path / "run" / "checkpoints" / "100.npz").unlink()
    (tmp_path / "run" / "summary.json").unlink()
    resumed = cli("--resume", "run", "--no-progress", cwd=tmp_path, env=env)
    assert_ok(resumed)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached, "the resumed run compiled anew"
    assert (tmp_path / "run" / "metrics.csv").read_text() == finished
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [(p["iterations"], p["chunk"]) for p in summary["parts"]] == [([0, 95], 5), ([95, 100], 5)]


def test_timings_of_processes_are_the_slowest_per_session_and_add_up_over_sessions(tmp_path):
    import numpy as np

    from jaxppo.cli.outputs import Part

    def part(seconds: list[tuple]) -> Part:
        legs = tuple({"iterations": list(it), "compile_seconds": c, "run_seconds": r} for it, c, r in seconds)
        return Part({"env_steps": np.zeros((1, 1, 10))}, None, np.full((1, 1), -1), legs)

    merged = Part.concatenate([part([((0, 6), 2.0, 6.0), ((6, 10), 1.0, 3.0)]),
                               part([((0, 6), 3.0, 5.0), ((6, 10), 0.5, 4.0)])])  # fmt: skip
    assert [(p["compile_seconds"], p["run_seconds"]) for p in merged.parts] == [(3.0, 6.0), (1.0, 4.0)]
    assert (merged.compile_seconds, merged.run_seconds) == (4.0, 10.0)
    assert merged.env_steps_per_second(agents=2, batch_size=100) == 2 * 10 * 100 / 10.0
    unknown = part([((0, 6), None, None), ((6, 10), 1.0, 2.0)])  # resumed from a checkpoint without timings
    assert unknown.env_steps_per_second(agents=1, batch_size=100) == 4 * 100 / 2.0
    # A part saved before legs were recorded loads as one leg.
    np.savez(tmp_path / Part.FILE, diverged_at=np.full((1, 1), -1), seconds=np.array([1.5, 2.5]),
             **{"metric/env_steps": np.zeros((1, 1, 10))})  # fmt: skip
    assert Part.load(tmp_path).parts == ({"iterations": [0, 10], "compile_seconds": 1.5, "run_seconds": 2.5},)
    unknown.save(tmp_path)
    assert Part.load(tmp_path).parts == unknown.parts


def test_an_interrupt_outside_the_loop_says_what_the_run_directory_holds(tmp_path):
    from jaxppo.run import what_survives

    run = tmp_path / "run"
    assert what_survives(run) == f"nothing was written to {run}"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert "holds no checkpoint" in what_survives(run)
    assert f"--resume {run} trains it from iteration 0" in what_survives(run)
    (run / "checkpoints").mkdir()
    for name in ("4.npz", "6.npz", ".8.npz.0123456789ab.tmp"):  # the last one is half-written
        (run / "checkpoints" / name).write_bytes(b"")
    assert what_survives(run).startswith(f"the checkpoint of iteration 6 in {run} is intact")
