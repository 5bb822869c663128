"""Several processes joined by jax.distributed (two on localhost): each trains its block of
seeds into RUN/process<K>/, process 0 merges; the merged run equals a single-process run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxppo.rundir import part_checkpoint_steps
from test_cli import (
    ENV,
    RUN_TIMEOUT,
    TINY,
    assert_ok,
    assert_one_line_error,
    assert_png,
    cli,
    column,
    in_parallel,
    in_this_process,
    popen,
    read_rows,
)

pytestmark = pytest.mark.timeout(600)
SEEDS = 3  # blocks of 2 and 1 seeds
ARGS = [*TINY, "--seeds", str(SEEDS), "--host-devices", "1", "--eval-episodes", "2"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def start_processes(args, cwd, count: int = 2) -> list[subprocess.Popen]:
    """The same command on ``count`` processes joined at a fresh localhost port."""
    address = f"localhost:{free_port()}"
    flags = ["--coordinator-address", address, "--num-processes", str(count)]
    return [
        subprocess.Popen(
            [sys.executable, "-m", "jaxppo.run", *map(str, args), *flags, "--process-id", str(k)],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(count)
    ]


def finish(procs) -> list[subprocess.CompletedProcess]:
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=2 * RUN_TIMEOUT)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def run_processes(out, cwd, count: int = 2) -> list[subprocess.CompletedProcess]:
    return finish(start_processes([*ARGS, "--out", out], cwd, count))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("multiprocess")
    done = in_parallel({"single": lambda: cli(*ARGS, "--out", cwd / "single", cwd=cwd),
                        "parts": lambda: run_processes(cwd / "multi", cwd)})  # fmt: skip
    single, parts = done["single"], done["parts"]
    assert_ok(single)
    for proc in parts:
        assert_ok(proc)
    return cwd, cwd / "single", cwd / "multi", parts


def by_seed_and_iteration(rows):
    return sorted(rows, key=lambda r: (int(r["seed"]), int(r["iteration"])))


def test_each_process_writes_its_own_seeds(runs):
    _, _, multi, _ = runs
    seeds = {k: {int(r["seed"]) for r in read_rows(multi / f"process{k}" / "metrics.csv")} for k in (0, 1)}
    assert seeds == {0: {0, 1}, 1: {2}}
    for k in (0, 1):
        config = json.loads((multi / f"process{k}" / "config.json").read_text())
        assert config["processes"] == 2 and config["seed_range"] == ([0, 2] if k == 0 else [2, 3])
        assert (multi / f"process{k}" / "checkpoints").is_dir()
    assert json.loads((multi / "config.json").read_text())["seed_range"] == [0, SEEDS]


def test_merged_run_equals_single_process_run(runs):
    _, single, multi, parts = runs
    merged, alone = (
        by_seed_and_iteration(read_rows(multi / "metrics.csv")),
        by_seed_and_iteration(read_rows(single / "metrics.csv")),
    )
    assert [(r["seed"], r["iteration"]) for r in merged] == [(r["seed"], r["iteration"]) for r in alone]
    for name in ("episode_return_last100", "policy_loss", "value_loss", "approx_kl", "env_steps"):
        np.testing.assert_allclose(column(merged, name), column(alone, name), rtol=1e-4, atol=1e-5, equal_nan=True)
    summary, reference = (json.loads((d / "summary.json").read_text()) for d in (multi, single))
    assert summary["seeds"] == SEEDS
    point, expected = summary["grid_points"][0], reference["grid_points"][0]
    np.testing.assert_allclose(point["final_return_per_seed"], expected["final_return_per_seed"], rtol=1e-4)
    np.testing.assert_allclose(point["eval_return_per_seed"], expected["eval_return_per_seed"], rtol=1e-4)
    assert_png(multi / "learning_curves.png")
    assert "merges the run" in parts[1].stderr and "final return" in parts[0].stdout


def test_evaluate_reads_a_multi_process_run(runs):
    cwd, _, multi, _ = runs
    proc = cli(multi, "--episodes", "2", cwd=cwd, module="jaxppo.evaluate")
    assert_ok(proc)
    assert "seed 2:" in proc.stdout


def test_merge_command_rebuilds_the_outputs_and_names_a_missing_part(runs):
    cwd, _, multi, _ = runs
    before = (multi / "metrics.csv").read_bytes()
    (multi / "metrics.csv").unlink()
    assert_ok(cli(multi, cwd=cwd, module="jaxppo.merge"))
    assert (multi / "metrics.csv").read_bytes() == before
    (multi / "process1" / "part.npz").rename(multi / "process1" / "part.npz.away")
    try:
        proc = cli(multi, cwd=cwd, module="jaxppo.merge")
    finally:
        (multi / "process1" / "part.npz.away").rename(multi / "process1" / "part.npz")
    assert proc.returncode == 2 and "process1" in proc.stderr and "Traceback" not in proc.stderr


def test_process_flags_come_together(tmp_path):
    # refused before jax.distributed starts: in this process, without the seconds of a new one's imports
    run = lambda *args: in_this_process(*TINY, *args, "--out", tmp_path / "run", cwd=tmp_path)
    line = assert_one_line_error(run("--num-processes", "2"))
    assert "--coordinator-address" in line and "--process-id" in line
    line = assert_one_line_error(run("--coordinator-address", "localhost:1", "--num-processes", "2", "--process-id", "2"))
    assert "0..1" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_stopped_process_stops_the_run_and_every_part_resumes(tmp_path):
    # 80 iterations with a checkpoint every 8. SIGINT to process 1 only, mid-run: it saves and exits;
    # process 0 finishes its own seeds, learns that process 1 stopped (instead of waiting for its
    # part forever) and exits too. Resumed, each part continues from its own checkpoint.
    args = [*ARGS, "--total-timesteps", "40960", "--checkpoint-every", "8"]
    multi = tmp_path / "multi"
    reference = popen(*args, "--out", tmp_path / "single", cwd=tmp_path)
    procs = start_processes([*args, "--out", multi], tmp_path)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        part1 = multi / "process1" / "checkpoints"
        while not (part1.is_dir() and part_checkpoint_steps(part1)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "no checkpoint appeared"
            time.sleep(0.02)
        procs[1].send_signal(signal.SIGINT)
        stopped = finish(procs)
        for proc in stopped:
            assert proc.returncode == 130, f"not interrupted (make the run longer?)\n{proc.stderr[-2000:]}"
            assert "--resume" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "process(es) 1 stopped" in stopped[0].stderr, stopped[0].stderr[-2000:]
        done = [part_checkpoint_steps(multi / f"process{k}" / "checkpoints")[-1] for k in (0, 1)]
        assert done[0] == 80 and 0 < done[1] < 80, done
        assert not (multi / "metrics.csv").exists()  # merged only once every part has finished

        for proc in finish(start_processes(["--resume", multi, "--no-progress"], tmp_path)):
            assert_ok(proc)
        reference_out, reference_err = reference.communicate(timeout=RUN_TIMEOUT)
        assert reference.returncode == 0, reference_err[-2000:]
    finally:
        for proc in [reference, *procs]:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    merged = by_seed_and_iteration(read_rows(multi / "metrics.csv"))
    alone = by_seed_and_iteration(read_rows(tmp_path / "single" / "metrics.csv"))
    assert [(r["seed"], r["iteration"]) for r in merged] == [(r["seed"], r["iteration"]) for r in alone]
    assert len(merged) == SEEDS * 80
    for name in ("episode_return_last100", "policy_loss", "value_loss", "env_steps"):
        np.testing.assert_allclose(column(merged, name), column(alone, name), rtol=1e-4, atol=1e-5, equal_nan=True)
