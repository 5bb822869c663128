"""Several processes joined by jax.distributed (two on localhost): each trains its block of
seeds into RUN/process<K>/, process 0 merges; the merged run equals a single-process run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from test_cli import ENV, RUN_TIMEOUT, TINY, assert_ok, assert_one_line_error, assert_png, cli, column, read_rows

pytestmark = pytest.mark.timeout(600)
SEEDS = 3  # blocks of 2 and 1 seeds
ARGS = [*TINY, "--seeds", str(SEEDS), "--host-devices", "1", "--eval-episodes", "2"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def run_processes(out, cwd, count: int = 2) -> list[subprocess.CompletedProcess]:
    address = f"localhost:{free_port()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxppo.run",
                *ARGS,
                "--out",
                str(out),
                "--coordinator-address",
                address,
                "--num-processes",
                str(count),
                "--process-id",
                str(k),
            ],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(count)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=2 * RUN_TIMEOUT)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("multiprocess")
    single = cli(*ARGS, "--out", cwd / "single", cwd=cwd)
    assert_ok(single)
    parts = run_processes(cwd / "multi", cwd)
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
    line = assert_one_line_error(cli(*TINY, "--num-processes", "2", "--out", tmp_path / "run", cwd=tmp_path))
    assert "--coordinator-address" in line and "--process-id" in line
    line = assert_one_line_error(cli(*TINY, "--coordinator-address", "localhost:1", "--num-processes", "2",
                                     "--process-id", "2", "--out", tmp_path / "run", cwd=tmp_path))  # fmt: skip
    assert "0..1" in line
    assert not (tmp_path / "run").exists()
