"""Several processes joined by jax.distributed (two on localhost): each trains its block of
seeds into RUN/process<K>/, process 0 merges; the merged run equals a single-process run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from cli_harness import (
    ENV,
    RUN_TIMEOUT,
    TINY,
    assert_ok,
    assert_one_line_error,
    assert_png,
    cli,
    column,
    in_this_process,
    popen,
    read_rows,
)
from jaxppo.rundir import checkpoint_steps

pytestmark = pytest.mark.timeout(600)
SEEDS = 3  # blocks of 2 and 1 seeds
ARGS = [*TINY, "--seeds", str(SEEDS), "--host-devices", "1", "--eval-episodes", "2"]
# 80 iterations with a checkpoint every 8, so that a process stopped at its first checkpoint is mid-run
STOPPED_ARGS = [*ARGS, "--total-timesteps", "40960", "--checkpoint-every", "8"]
ITERATIONS = 80


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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run on 2 processes, stopped mid-run and resumed, and the same run on one process."""
    if sys.platform == "win32":
        pytest.skip("needs POSIX signals")
    cwd = tmp_path_factory.mktemp("multiprocess")
    single, multi = cwd / "single", cwd / "multi"
    reference = popen(*STOPPED_ARGS, "--out", single, cwd=cwd)
    try:
        stopped = stop_process_1_at_its_first_checkpoint(start_processes([*STOPPED_ARGS, "--out", multi], cwd), multi)
        steps = [checkpoint_steps(multi / f"process{k}" / "checkpoints")[-1] for k in (0, 1)]
        merged_before_resume = (multi / "metrics.csv").exists()
        parts = finish(start_processes(["--resume", multi, "--no-progress"], cwd))
        _, reference_err = reference.communicate(timeout=RUN_TIMEOUT)
        assert reference.returncode == 0, reference_err[-2000:]
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.communicate()
    for proc in parts:
        assert_ok(proc)
    return SimpleNamespace(cwd=cwd, single=single, multi=multi, parts=parts, stopped=stopped,
                           checkpoint_steps=steps, merged_before_resume=merged_before_resume)  # fmt: skip


def stop_process_1_at_its_first_checkpoint(procs, run_dir) -> list[subprocess.CompletedProcess]:
    """SIGINT to process 1 only, once it has saved a checkpoint in ``run_dir``; both processes' results."""
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        part1 = run_dir / "process1" / "checkpoints"
        while not (part1.is_dir() and checkpoint_steps(part1)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "no checkpoint appeared"
            time.sleep(0.02)
        procs[1].send_signal(signal.SIGINT)
        return finish(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def by_seed_and_iteration(rows):
    return sorted(rows, key=lambda r: (int(r["seed"]), int(r["iteration"])))


def test_each_process_writes_its_own_seeds(runs):
    multi = runs.multi
    seeds = {k: {int(r["seed"]) for r in read_rows(multi / f"process{k}" / "metrics.csv")} for k in (0, 1)}
    assert seeds == {0: {0, 1}, 1: {2}}
    for k in (0, 1):
        config = json.loads((multi / f"process{k}" / "config.json").read_text())
        assert config["processes"] == 2 and config["seed_range"] == ([0, 2] if k == 0 else [2, 3])
        assert (multi / f"process{k}" / "checkpoints").is_dir()
    assert json.loads((multi / "config.json").read_text())["seed_range"] == [0, SEEDS]


def test_merged_run_equals_single_process_run(runs):
    single, multi, parts = runs.single, runs.multi, runs.parts
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
    cwd, multi = runs.cwd, runs.multi
    proc = cli(multi, "--episodes", "2", cwd=cwd, module="jaxppo.evaluate")
    assert_ok(proc)
    assert "seed 2:" in proc.stdout


def test_merge_command_rebuilds_the_outputs_and_names_a_missing_part(runs):
    cwd, multi = runs.cwd, runs.multi
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


def test_a_stopped_process_stops_the_run_and_every_part_resumes(runs):
    # SIGINT to process 1 only, mid-run: it saves and exits; process 0 finishes its own seeds, learns
    # that process 1 stopped (instead of waiting for its part forever) and exits too. Resumed, each
    # part continues from its own checkpoint (the merged run then equals the single-process run).
    for proc in runs.stopped:
        assert proc.returncode == 130, f"not interrupted (make the run longer?)\n{proc.stderr[-2000:]}"
        assert "--resume" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "process(es) 1 stopped" in runs.stopped[0].stderr, runs.stopped[0].stderr[-2000:]
    assert runs.checkpoint_steps[0] == ITERATIONS and 0 < runs.checkpoint_steps[1] < ITERATIONS, runs.checkpoint_steps
    assert not runs.merged_before_resume  # merged only once every part has finished
    assert len(read_rows(runs.multi / "metrics.csv")) == SEEDS * ITERATIONS
