"""Every command-line program answers a failure its user can cause with one line
``python -m jaxppo.X: error: ...`` that names the fix, exit status 2, and loses nothing already written."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxppo import load_policy, load_run
from jaxppo.config import ConfigError

pytestmark = pytest.mark.timeout(300)

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
TINY = ["--env", "CartPole-v1", "--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "128"]
# The modules (``jaxppo.evaluate`` the attribute is the library function of that name).
PROGRAMS = {name: importlib.import_module(f"jaxppo.{name}") for name in ("plot", "evaluate", "merge", "render", "export")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("entry") / "run"
    result = subprocess.run([sys.executable, "-m", "jaxppo.run", *TINY, "--seeds", "2", "--no-progress", "--out", out],
                            env=ENV, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def _snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _copy(run_dir: Path, tmp_path: Path, name="copy") -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / name))


def _one_line_error(capsys, program: str, argv) -> str:
    """The program's one error line (exit status 2, nothing on stdout)."""
    code = PROGRAMS[program].main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, captured.err)
    assert lines[0].startswith(f"python -m jaxppo.{program}: error: "), lines
    assert "Traceback" not in captured.err and not captured.out.strip()
    return lines[0]


# ---------------------------------------------------------------- as a user starts them
@pytest.mark.parametrize(
    "program, argv",
    [("plot", ["RUN", "--out", "/nonexistent/dir/x.png"]), ("plot", ["RUN", "--bogus"]),
     ("evaluate", ["RUN", "--episodes", "ten"]), ("merge", []), ("render", ["RUN", "--out", "x.avi"]),
     ("export", ["RUN", "--out", "/nonexistent/dir/policy.jaxexport"])],
)  # fmt: skip
def test_a_started_program_prints_one_line_and_exits_2(run_dir, program, argv):
    argv = [str(run_dir) if a == "RUN" else a for a in argv]
    result = subprocess.run([sys.executable, "-m", f"jaxppo.{program}", *argv], env=ENV, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"python -m jaxppo.{program}: error: "), lines


@pytest.mark.parametrize("program", PROGRAMS)
def test_bad_flags_are_one_line(capsys, run_dir, program):
    assert "--help" in _one_line_error(capsys, program, [run_dir, "--no-such-flag"])
    _one_line_error(capsys, program, [])


# ---------------------------------------------------------------- plot
def test_plot_names_an_out_it_cannot_write(capsys, run_dir, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("kept")
    for out in ("/nonexistent/dir/x.png", a_file / "x.png"):
        assert "--out" in _one_line_error(capsys, "plot", [run_dir, "--out", out])
    assert "--out" in _one_line_error(capsys, "plot", [run_dir, "--out", tmp_path])  # a directory
    assert a_file.read_text() == "kept"


def test_plot_never_overwrites_what_is_not_a_png(capsys, run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    before = _snapshot(run)
    for name in ("metrics.csv", "config.json"):
        assert ".png" in _one_line_error(capsys, "plot", [run, "--out", run / name])
    assert _snapshot(run) == before


def test_plot_refuses_what_is_not_a_run(capsys, run_dir, tmp_path):
    assert "does not exist" in _one_line_error(capsys, "plot", [tmp_path / "missing"])
    assert "jaxppo run" in _one_line_error(capsys, "plot", [tmp_path])
    empty = _copy(run_dir, tmp_path, "empty")
    (empty / "metrics.csv").write_text("")
    assert "no rows" in _one_line_error(capsys, "plot", [empty, "--out", tmp_path / "x.png"])
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- evaluate
def test_evaluate_of_a_run_without_checkpoints_names_the_program_that_continues_it(capsys, run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    shutil.rmtree(run / "checkpoints")
    missing = _one_line_error(capsys, "evaluate", [run])
    (run / "checkpoints").mkdir()
    empty = _one_line_error(capsys, "evaluate", [run])
    for message in (missing, empty):
        assert "no checkpoint" in message and "python -m jaxppo.run --resume" in message, message


@pytest.mark.parametrize("argv", [["--episodes", "0"], ["--seed", str(2**64)], ["--seed", "x"]])
def test_evaluate_checks_its_numbers(capsys, run_dir, argv):
    assert argv[0] in _one_line_error(capsys, "evaluate", [run_dir, *argv])


def test_evaluate_refuses_what_is_not_a_run(capsys, tmp_path):
    assert "does not exist" in _one_line_error(capsys, "evaluate", [tmp_path / "missing"])
    assert "jaxppo run" in _one_line_error(capsys, "evaluate", [tmp_path])


# ---------------------------------------------------------------- merge
def test_merge_of_a_single_process_run_changes_nothing(capsys, run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    before = _snapshot(run)
    assert "one process" in _one_line_error(capsys, "merge", [run])
    assert _snapshot(run) == before


def test_merge_names_the_missing_parts(capsys, run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "processes": 2}))
    before = _snapshot(run)
    assert "process0" in _one_line_error(capsys, "merge", [run])
    assert _snapshot(run) == before
    assert "does not exist" in _one_line_error(capsys, "merge", [tmp_path / "missing"])
    assert "jaxppo run" in _one_line_error(capsys, "merge", [tmp_path / "copy" / "checkpoints"])


# ---------------------------------------------------------------- the library
def _library_message(call) -> str:
    with pytest.raises(ConfigError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    # A library user passes arguments, not flags: a flag appears only with the program that has it.
    for flag in ("--out", "--resume", "--seed", "--grid-point"):
        assert flag not in message.replace(f"python -m jaxppo.run {flag}", ""), message
    return message


def test_library_errors_speak_to_a_library_user(run_dir, tmp_path):
    assert "does not exist" in _library_message(lambda: load_run(tmp_path / "missing"))
    assert "jaxppo run" in _library_message(lambda: load_run(tmp_path))
    run = _copy(run_dir, tmp_path)
    shutil.rmtree(run / "checkpoints")
    assert "no checkpoint" in _library_message(lambda: load_run(run))
    assert "seed=" in _library_message(lambda: load_policy(run_dir, seed=2))
    assert "grid_point=" in _library_message(lambda: load_policy(run_dir, grid_point=-1))
    assert "seed=" in _library_message(lambda: load_policy(run_dir, seed="0"))


def test_plot_never_replaces_a_runs_own_plot(capsys, run_dir, tmp_path, monkeypatch):
    run = _copy(run_dir, tmp_path)
    before = _snapshot(run)
    assert "--out" in _one_line_error(capsys, "plot", [run, "--out", run / "learning_curves.png"])
    monkeypatch.chdir(run)  # the default --out, learning_curves.png, in a run directory
    assert "--out" in _one_line_error(capsys, "plot", ["."])
    assert _snapshot(run) == before


def test_jaxppo_evaluate_stays_the_library_function_after_the_command_module_is_imported():
    import jax

    import jaxppo
    import jaxppo.evaluate  # rebinds the package attribute to the command's module

    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(env_id="CartPole-v1"))
    state = trainer.init(jax.random.key(0), jaxppo.PPOHParams())
    returns = jaxppo.evaluate(trainer, state.params, state.obs_stats, jax.random.key(1), 2)
    assert returns.shape == (2,)
    assert callable(jaxppo.evaluate.main)
