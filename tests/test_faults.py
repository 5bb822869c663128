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
    from jaxppo.rundir import checkpoint_steps

    return checkpoint_steps(run_dir / "checkpoints")


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
from jaxppo.cli.loop import Stopper

threading.Thread(target=threading.Event().wait).start()  # a non-daemon worker thread that never ends
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
from jaxppo.cli.loop import Stopper

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
    # What a crash in the middle of a save leaves behind: the temporary file, never renamed.
    (run / "checkpoints" / f".{latest + 2}.npz.0123456789ab.tmp").write_bytes(b"PK\3\4")
    assert jaxppo.load_run(run).iteration == latest


def test_resume_of_a_corrupt_checkpoint_is_a_one_line_error(interrupted, tmp_path):
    root, _, _ = interrupted
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    latest = run / "checkpoints" / f"{complete_steps(run)[-1]}.npz"
    latest.write_bytes(b"\0" * 7)  # the newest checkpoint damaged
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

    from jaxppo.cli.outputs import first_nonfinite_env_outputs

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
    from jaxppo.cli.loop import train_run
    from jaxppo.factories import run_facts
    from jaxppo.settings import RunOptions, RunSettings

    trainer = faulty_trainer(2)
    facts = run_facts(RunSettings(config=trainer.config, hparams={}, grid={}, seeds=4, seed=0), trainer)
    run = tmp_path / "run"
    rundir.prepare_out_dir(run, overwrite=False)
    rundir.write_config(run, facts)
    assert train_run(facts, run, None, None, RunOptions(show_progress=False)) == 0
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


# ------------------------------------------------------------------ kill -9, full disks, two processes
DEFAULT_SIZES = ["--env", "CartPole-v1", "--seeds", "2", "--no-progress"]  # 4 envs x 128 steps


def read_metrics(run: Path) -> str:
    return (run / "metrics.csv").read_text()


def final_params(run: Path):
    import numpy as np

    return [np.asarray(leaf) for leaf in jax.tree.leaves(jaxppo.load_run(run).states.params)]


KILLED_WHILE_SAVING = """
import os, signal, sys
from jaxppo import rundir, run
write = rundir.atomic_write_bytes

def killed_midway(path, data):  # the process killed (kill -9) halfway through one checkpoint's file
    if path.name == "{iteration}.npz":
        (path.parent / f".{{path.name}}.0123456789ab.tmp").write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, data)

rundir.atomic_write_bytes = killed_midway
sys.argv[0] = "jaxppo.run"
run.cli()
"""


def test_kill_9_while_a_checkpoint_is_written_resumes_from_the_previous_one_bit_identically(tmp_path):
    import numpy as np

    flags = [*map(str, DEFAULT_SIZES), "--total-timesteps", str(12 * 512), "--checkpoint-every", "4"]
    reference = run_cli(*flags, "--out", tmp_path / "reference", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING.format(iteration=8), *flags, "--out", str(run)],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert complete_steps(run) == [4] and [p.name for p in (run / "checkpoints").glob(".8.npz.*.tmp")]
    resumed = run_cli("--resume", run, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert read_metrics(run) == read_metrics(tmp_path / "reference")
    assert all(np.array_equal(a, b) for a, b in zip(final_params(run), final_params(tmp_path / "reference"), strict=True))


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (needs root: the tests run as root in CI)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                                            capture_output=True).returncode:  # fmt: skip
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 16))
                handle.flush()
        except OSError:
            pass
    return filler


def read_only(disk: Path) -> None:
    """Remount ``disk`` read-only, once no file is open for writing on it (a write in progress)."""
    for _ in range(500):
        if subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode == 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"could not remount {disk} read-only")


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_or_read_only_disk_mid_run_fails_in_one_line_and_resume_works_once_writable(small_disk, fault):
    run = small_disk / "run"
    proc = start_cli(*DEFAULT_SIZES, "--total-timesteps", 400 * 512, "--checkpoint-every", 4, "--out", run, cwd=small_disk)
    try:
        wait_for_checkpoint(run, proc)
        if fault == "full":
            filler = fill(small_disk)
        else:
            read_only(small_disk)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("python -m jaxppo.run: error: ") and f"--resume {run}" in lines[0], err
    assert ("No space left" in err) if fault == "full" else ("Read-only" in err or "read-only" in err), err
    # the latest complete checkpoint and the logs written with it are intact
    saved = complete_steps(run)[-1]
    rows = read_metrics(run).splitlines()
    assert 0 < saved < 400 and len(rows) - 1 <= 2 * saved and len(rows) > 1
    assert jaxppo.load_run(run).iteration == saved
    if fault == "full":
        filler.unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    resumed = run_cli("--resume", run, "--no-progress", cwd=small_disk)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert len(read_metrics(run).splitlines()) == 1 + 2 * 400


def test_a_second_process_given_the_same_out_is_refused_and_the_first_is_unharmed(tmp_path):
    run = tmp_path / "run"
    first = start_cli(*DEFAULT_SIZES, "--total-timesteps", 4000 * 512, "--checkpoint-every", 10, "--out", run,
                      cwd=tmp_path)  # fmt: skip
    try:
        wait_for_checkpoint(run, first)
        for flags in (["--out", run], ["--out", run, "--overwrite"], ["--resume", run]):
            second = run_cli(*DEFAULT_SIZES, "--total-timesteps", 4000 * 512, *flags, cwd=tmp_path, timeout=120)
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 2 and len(lines) == 1, second.stderr
            assert "in use: another jaxppo process is training it" in lines[0], second.stderr
        assert first.poll() is None, "the first run ended before the second was refused (make it longer)"
        first.send_signal(signal.SIGINT)  # it stops as any run does: a checkpoint and its logs
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 130 and "Traceback" not in err, err
    saved = complete_steps(run)[-1]
    assert len(read_metrics(run).splitlines()) == 1 + 2 * saved
    assert jaxppo.load_run(run).iteration == saved


SAVE_FAILS = """
import errno, sys
from jaxppo import rundir, run

def broken_device(path, data):  # the disk answers a checkpoint's write with an I/O error
    if path.suffix == ".npz":
        raise OSError(errno.EIO, "Input/output error", str(path))
    write(path, data)

write, rundir.atomic_write_bytes = rundir.atomic_write_bytes, broken_device
sys.argv[0] = "jaxppo.run"
run.cli()
"""


def test_a_checkpoint_that_cannot_be_saved_fails_at_once_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SAVE_FAILS, *DEFAULT_SIZES, "--total-timesteps", str(4 * 512), "--out",
                           "run"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=90)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("python -m jaxppo.run: error: could not write "), proc.stderr
    assert "4.npz (Input/output error)" in lines[0] and "holds no checkpoint" in lines[0], proc.stderr
