"""The harness of the command-line tests: running ``python -m jaxppo.<command>`` as a user starts it
(a subprocess, ``JAX_PLATFORMS=cpu``) or its ``main`` in the test process, and reading what a run
wrote. Every test module that starts commands imports it from here."""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
RUN_TIMEOUT = 240  # seconds for one training process
QUICK_TIMEOUT = 120  # seconds for one process that should fail before training
WORKERS = max(2, os.cpu_count() or 2)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# CartPole, 4 iterations of 4 envs x 128 steps, 2 seeds: a few seconds once compiled.
TINY = ["--env", "CartPole-v1", "--total-timesteps", "2048", "--num-envs", "4", "--num-steps", "128"]
TINY += ["--seeds", "2", "--no-progress"]
ERROR_PREFIX = "python -m jaxppo.run: error:"


def cli(*args, cwd, module="jaxppo.run", timeout=RUN_TIMEOUT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        env=ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def in_this_process(*args, cwd, module="jaxppo.run") -> SimpleNamespace:
    """``module``'s ``main(args)`` called here from ``cwd``: its exit status and output, as ``cli``
    returns them. For commands that fail before training: a process costs seconds of imports.
    ``jaxppo.run`` gets ``--no-compile-cache``: its persistent cache would stay on in this process."""
    import jax

    jax.devices()  # start the backends first: main's host-device request must not change this process's
    program = importlib.import_module(module)
    if module == "jaxppo.run":
        args = (*args, "--no-compile-cache")
    stdout, stderr, previous = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = program.main([str(a) for a in args])
    finally:
        os.chdir(previous)
    return SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def popen(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jaxppo.run", *map(str, args)],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def in_parallel(jobs: dict) -> dict:
    """Run ``{name: zero-argument callable}`` concurrently; ``{name: result}``."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def describe(proc) -> str:
    return f"exit status {proc.returncode}\n--- stdout:\n{proc.stdout[-3000:]}\n--- stderr:\n{proc.stderr[-3000:]}"


def assert_ok(proc) -> None:
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)


def assert_one_line_error(proc) -> str:
    """Exit status 2, exactly one stderr line, no traceback; returns that line."""
    assert proc.returncode == 2, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, describe(proc)
    assert lines[0].startswith(ERROR_PREFIX), describe(proc)
    return lines[0]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def checkpoint_steps(run_dir: Path) -> list[int]:
    directory = run_dir / "checkpoints"
    try:
        return sorted(int(p.stem) for p in directory.iterdir() if p.suffix == ".npz" and p.stem.isdigit())
    except FileNotFoundError:
        return []


def interrupt_after_first_checkpoint(proc, run_dir: Path) -> SimpleNamespace:
    """SIGINT to ``proc`` once its run saved a checkpoint in ``run_dir``; its exit status and output."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while not checkpoint_steps(run_dir) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    return SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err)


def snapshot(run_dir: Path) -> dict:
    """Relative path -> bytes of every file in a run directory."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows])


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[2] in (3, 4), image.shape
    assert image.shape[0] >= 100 and image.shape[1] >= 100, image.shape
    assert np.ptp(image[..., :3]) > 0, f"{path} is a blank image"
