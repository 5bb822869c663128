"""Files jaxppo writes get the permissions a plain ``open()`` gives them: ``0o666 & ~umask``
(directories ``0o777 & ~umask``), so a run on a shared filesystem is readable as the umask allows."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxppo import rundir

UMASKS = (0o022, 0o077)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


def _assert_modes(root: Path, umask: int) -> None:
    modes = _modes(root)
    assert modes
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o777 if (root / name).is_dir() else 0o666) & ~umask
    }
    assert not wrong, f"umask {oct(umask)}: {wrong}"


@pytest.fixture
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", UMASKS, indirect=True)
def test_written_files_follow_the_umask(tmp_path, umask):
    rundir.atomic_write_text(tmp_path / "config.json", "{}\n")
    rundir.atomic_write_bytes(tmp_path / "learning_curves.png", b"\x89PNG")
    rundir.atomic_write_text(tmp_path / "config.json", "{}\n")  # replacing a file: the same mode
    states = {"w": np.ones(3, np.float32), "key": jax.random.key(0)}
    rundir.save_checkpoint(tmp_path, 1, states, {"episode_return": np.zeros((1, 1, 1), np.float32)})
    rundir.save_checkpoint(tmp_path / "process0", 1, {"w": np.ones(2)}, {})
    _assert_modes(tmp_path, umask)
    assert not [p for p in tmp_path.rglob("*.tmp")], "no temporary file is left behind"


def test_a_run_directory_follows_the_umask(tmp_path):
    out = tmp_path / "run"
    args = ["--env", "CartPole-v1", "--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "128"]
    result = subprocess.run(
        [sys.executable, "-m", "jaxppo.run", *args, "--seeds", "1", "--no-progress", "--out", str(out)],
        cwd=tmp_path, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
        timeout=240, preexec_fn=lambda: os.umask(0o027),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {"config.json", "metrics.csv", "summary.json", "learning_curves.png", "checkpoints"} <= set(_modes(out))
    _assert_modes(out, 0o027)
