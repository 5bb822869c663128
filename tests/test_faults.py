"""Faults: signals, damaged checkpoints, unwritable outputs, and no hang with many vmapped seeds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest

import jaxppo

pytestmark = pytest.mark.timeout(300)
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
LONG = [
    "--env",
    "CartPole-v1",
    "--seeds",
    "2",
    "--total-timesteps",
    "204800",
    "--checkpoint-every",
    "2",
    "--no-progress",
]


def run_cli(*args, cwd, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "jaxppo.run", *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def start_cli(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "jaxppo.run", *map(str, args)], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def complete_steps(run_dir: Path) -> list[int]:
    directory = run_dir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def wait_for_checkpoint(run_dir: Path, proc, timeout=180.0):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if complete_steps(run_dir):
            return
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint appeared (exit {proc.poll()})")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped by SIGTERM after its first checkpoint."""
    root = tmp_path_factory.mktemp("faults")
    proc = start_cli(*LONG, "--out", root / "run", cwd=root)
    wait_for_checkpoint(root / "run", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return root, proc.returncode, err


def test_sigterm_saves_a_checkpoint_and_exits_143(interrupted):
    root, code, err = interrupted
    assert code == 143, err
    assert "--resume" in err and "SIGTERM" in err
    assert (root / "run" / "metrics.csv").is_file() and complete_steps(root / "run")


def test_a_second_signal_aborts_at_once_and_keeps_the_latest_checkpoint(tmp_path):
    proc = start_cli(*LONG, "--out", tmp_path / "run", cwd=tmp_path)
    wait_for_checkpoint(tmp_path / "run", proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err and "FATAL" not in err, err
    steps = complete_steps(tmp_path / "run")
    assert steps
    # The newest complete checkpoint restores (a half-written one is never the latest).
    run = jaxppo.load_run(tmp_path / "run")
    assert run.iteration == steps[-1]


ABORT_WHILE_A_WORKER_WAITS = """
import os, signal, threading, time
from jaxppo.loop import Stopper

threading.Thread(target=threading.Event().wait).start()  # a non-daemon worker, as in orbax's save
with Stopper("run", total=80, saved=38):
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)
"""


def test_a_second_signal_exits_130_even_while_a_worker_thread_waits():
    # Raising KeyboardInterrupt instead left the interpreter joining the worker forever: the hang
    # CI once saw when the second Ctrl-C landed during a checkpoint save.
    proc = subprocess.run(
        [sys.executable, "-c", ABORT_WHILE_A_WORKER_WAITS], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "SIGINT again: aborting now; the checkpoint of iteration 38 of 80 is intact; "
        "continue with: python -m jaxppo.run --resume run"
    ), proc.stderr


SIGNAL_AFTER_THE_STOPPED_LOOP = """
import os, signal, time
from jaxppo.loop import Stopper

with Stopper():
    os.kill(os.getpid(), signal.SIGINT)  # stop requested: the loop saves and returns
os.kill(os.getpid(), signal.SIGTERM)  # while the process is on its way out
time.sleep(60)
"""


def test_a_signal_while_a_stopped_run_exits_still_aborts_at_once():
    proc = subprocess.run(
        [sys.executable, "-c", SIGNAL_AFTER_THE_STOPPED_LOOP], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 143, proc.stderr
    assert "SIGTERM again: aborting now" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_resume_skips_a_half_written_checkpoint(interrupted, tmp_path):
    root, _, _ = interrupted
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    latest = complete_steps(run)[-1]
    # What a crash in the middle of orbax's save leaves behind: an unfinalised temporary directory.
    (run / "checkpoints" / f"{latest + 2}.orbax-checkpoint-tmp-1234").mkdir()
    assert jaxppo.load_run(run).iteration == latest


def test_resume_of_a_corrupt_checkpoint_is_a_one_line_error(interrupted, tmp_path):
    root, _, _ = interrupted
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    latest = run / "checkpoints" / str(complete_steps(run)[-1])
    for path in latest.rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(b"\0" * 7)  # truncate every file of the newest checkpoint
    before = (run / "metrics.csv").read_bytes()
    proc = run_cli("--resume", run, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreadable" in lines[0], proc.stderr
    assert (run / "metrics.csv").read_bytes() == before


def test_unwritable_out_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "file", "not a directory"), ("/proc/jaxppo-run", "not writable")):
        proc = run_cli("--total-timesteps", "512", "--seeds", "1", "--out", out, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr
    assert (tmp_path / "file").read_text() == "x"


def test_eight_vmapped_seeds_do_not_hang():
    # jax 0.10 CPU deadlocked on the vmapped LAPACK QR of the usual orthogonal init (>= 8 seeds).
    train = jax.jit(jax.vmap(jaxppo.make_train(jaxppo.PPOConfig(total_timesteps=512)), in_axes=(0, None)))
    result = train(jax.random.split(jax.random.key(0), 16), jaxppo.PPOHParams())
    assert result.metrics["policy_loss"].shape == (16, 1)


# ------------------------------------------------------------------ an env that returns NaN or inf
def faulty_trainer(fault: int, value: float = float("nan"), **changes):
    from envs_for_tests import FaultyCorridor

    env = FaultyCorridor()
    params = env.default_params.replace(fault=fault, fault_probability=0.002, fault_value=value)
    config = jaxppo.PPOConfig(env_id="FaultyCorridor", total_timesteps=8 * 2 * 64, num_envs=2, num_steps=64,
                              num_minibatches=2, update_epochs=2, **changes)  # fmt: skip
    return jaxppo.make_trainer(config, env, params)


@pytest.mark.parametrize(("fault", "value", "normalize"), [(2, float("nan"), False), (1, float("inf"), True)])
def test_the_envs_nan_or_inf_is_recorded_per_seed_and_iteration(fault, value, normalize):
    import numpy as np

    from jaxppo.outputs import first_nonfinite_env_outputs

    trainer = faulty_trainer(fault, value, normalize_observations=normalize)
    train = jax.jit(jax.vmap(lambda key: trainer.run(trainer.init(key, jaxppo.PPOHParams()), jaxppo.PPOHParams(), 8)))
    result = train(jax.random.split(jax.random.key(0), 4))
    env_nonfinite = np.asarray(result.metrics["env_nonfinite"])  # [S, 8]
    assert set(np.unique(env_nonfinite)) <= {0, fault}
    poisoned = env_nonfinite.any(axis=1)
    assert poisoned.any() and not poisoned.all(), env_nonfinite  # the seed matters
    found = first_nonfinite_env_outputs(env_nonfinite[None])
    what = "reward" if fault == 2 else "observation"
    assert found == {(0, s): (1 + int(np.argmax(env_nonfinite[s] != 0)), [what]) for s in np.flatnonzero(poisoned)}
    # The divergence guard freezes the poisoned seeds; the others train on, finite.
    diverged_at = np.asarray(result.state.diverged_at)
    assert (diverged_at[~poisoned] == -1).all()
    assert all(np.isfinite(np.asarray(leaf)[~poisoned]).all() for leaf in jax.tree.leaves(result.state.params))


def test_a_run_says_which_seed_received_the_envs_nan_and_when(tmp_path, capsys):
    from jaxppo import rundir
    from jaxppo.loop import train_run
    from jaxppo.settings import RunOptions, RunSettings

    trainer = faulty_trainer(2)
    settings = RunSettings(config=trainer.config, hparams={}, grid={}, seeds=4, seed=0)
    run = tmp_path / "run"
    rundir.prepare_out_dir(run, overwrite=False)
    rundir.write_config(run, settings, trainer)
    assert train_run(trainer, settings, run, None, None, RunOptions(show_progress=False)) == 0
    err = capsys.readouterr().err
    told = [line for line in err.splitlines() if "non-finite" in line]
    summary = __import__("json").loads((run / "summary.json").read_text())["grid_points"][0]
    events = summary["env_nonfinite"]
    assert events and len(told) == len(events) < 4, err
    assert all(event["outputs"] == ["reward"] for event in events)
    expected = {f"to seed {event['seed']} (grid point 0) in iteration {event['iteration']};" for event in events}
    assert {line[line.index("to seed") : line.index(";") + 1] for line in told} == expected, err
    assert all(line.startswith("jaxppo: warning: FaultyCorridor returned a non-finite (NaN or inf)") for line in told)
    assert {d["seed"] for d in summary["diverged"]} == {e["seed"] for e in events}
