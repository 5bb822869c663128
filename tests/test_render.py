"""Videos and exported policies of trained runs: ``python -m jaxppo.render``, ``jaxppo.render_episodes``,
``--video-every``, ``python -m jaxppo.export``, and their one-line refusals.

Three tiny CartPole runs, trained at once by one module fixture: a feed-forward one with two seeds,
a recurrent (GRU) one, and the same recurrent one with ``--video-every 2 --tensorboard``. The
commands that read them run in this process (``main(argv)``); the exported policies are run by a
process that cannot import jaxppo.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from PIL import Image

import jaxppo
from jaxppo.video import play_run

pytestmark = pytest.mark.timeout(300)

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
TINY = ["--env", "CartPole-v1", "--total-timesteps", "2048", "--num-envs", "4", "--num-steps", "128", "--no-progress"]
GRU = [*TINY, "--recurrent", "gru", "--recurrent-size", "8", "--num-minibatches", "2", "--seeds", "1"]
RUNS = {"ff": [*TINY, "--seeds", "2"], "gru": GRU, "gru_video": [*GRU, "--video-every", "2", "--tensorboard"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("render")

    def start(name):
        return subprocess.Popen([sys.executable, "-m", "jaxppo.run", *RUNS[name], "--out", root / name], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def finish(name, proc):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (name, err)

    feed_forward, recurrent = start("ff"), start("gru")
    finish("gru", recurrent)
    video = start("gru_video")  # after gru: its programs come from the compilation cache gru filled
    finish("ff", feed_forward)
    finish("gru_video", video)
    return SimpleNamespace(root=root, **{name: root / name for name in RUNS})


def program(module: str, *argv) -> SimpleNamespace:
    """``python -m jaxppo.<module> argv`` run here: exit status, stdout, stderr."""
    main = importlib.import_module(f"jaxppo.{module}").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return SimpleNamespace(code=code, out=out.getvalue(), err=err.getvalue())


def one_line_error(module: str, *argv) -> str:
    result = program(module, *argv)
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1, result
    assert lines[0].startswith(f"python -m jaxppo.{module}: error: ") and not result.out, result
    return lines[0]


def reported_returns(text: str) -> list[tuple[float, int]]:
    return [(float(r), int(n)) for r, n in re.findall(r"episode \d+: return (\S+), length (\d+)", text)]


def evaluate_line(run_dir: Path, seed: int, episodes: int, *flags) -> str:
    result = program("evaluate", run_dir, "--episodes", episodes, *flags)
    assert result.code == 0, result
    return next(line.strip() for line in result.out.splitlines() if line.strip().startswith(f"seed {seed}:"))


# ------------------------------------------------------------------ render
def test_render_plays_the_episodes_evaluate_reports(runs, tmp_path):
    out = tmp_path / "cartpole.gif"
    result = program("render", runs.ff, "--out", out, "--seed", 1, "--episodes", 3, "--fps", 20)
    assert result.code == 0, result
    episodes = reported_returns(result.out)
    returns = np.array([r for r, _ in episodes])
    assert len(episodes) == 3 and all(r == n for r, n in episodes)  # CartPole: 1 per step
    assert evaluate_line(runs.ff, 1, 3) == f"seed 1: {returns.mean():.2f} ± {returns.std():.2f}"
    with Image.open(out) as gif:  # the episodes one after another, a frame per step
        assert gif.n_frames == sum(n for _, n in episodes)
        assert gif.info["duration"] == 50
    flags = ["--stochastic", "--eval-seed", 7]
    sampled = program("render", runs.ff, "--out", tmp_path / "sampled.gif", "--episodes", 2, *flags)
    returns = np.array([r for r, _ in reported_returns(sampled.out)])
    line = evaluate_line(runs.ff, 0, 2, "--stochastic", "--seed", 7)
    assert line == f"seed 0: {returns.mean():.2f} ± {returns.std():.2f}"


def test_render_episodes_carries_a_recurrent_policys_state(runs):
    episodes = play_run(runs.gru, num_episodes=2)
    frames = jaxppo.render_episodes(runs.gru, num_episodes=2)
    for episode, video in zip(episodes, frames, strict=True):
        assert video.dtype == np.uint8 and video.ndim == 4 and video.shape[-1] == 3
        assert len(video) == episode.length == episode.episode_return
        assert all((video[t] != video[t + 1]).any() for t in range(len(video) - 1))
        np.testing.assert_array_equal(video, episode.frames)
    returns = np.array([e.episode_return for e in episodes])
    assert evaluate_line(runs.gru, 0, 2) == f"seed 0: {returns.mean():.2f} ± {returns.std():.2f}"


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio's ffmpeg reading the MP4 back
def test_render_writes_an_mp4_cut_at_max_steps(runs, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "cartpole.mp4"
    result = program("render", runs.ff, "--out", out, "--max-steps", 12, "--fps", 10)
    assert result.code == 0, result
    assert [n for _, n in reported_returns(result.out)] == [12]
    frames = iio.imread(out)
    assert frames.shape[0] == 12 and frames.dtype == np.uint8


def test_save_video_refuses_what_is_not_a_video(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(jaxppo.ConfigError, match="fps"):
        jaxppo.save_video(frames, tmp_path / "x.gif", fps=0)
    with pytest.raises(jaxppo.ConfigError, match="uint8"):
        jaxppo.save_video(frames.astype(np.float32), tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())
    assert jaxppo.save_video([frames, frames], tmp_path / "x.gif").is_file()


def test_render_refuses_bad_input_in_one_line_and_writes_nothing(runs, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("kept")
    assert ".gif or .mp4" in one_line_error("render", runs.ff, "--out", tmp_path / "x.avi")
    assert "does not exist" in one_line_error("render", runs.ff, "--out", tmp_path / "missing" / "x.gif")
    assert "does not exist" in one_line_error("render", runs.ff, "--out", a_file / "x.gif")
    assert "directory" in one_line_error("render", runs.ff, "--out", tmp_path)
    assert "--seed" in one_line_error("render", runs.ff, "--out", tmp_path / "x.gif", "--seed", 2)
    assert "--fps" in one_line_error("render", runs.ff, "--out", tmp_path / "x.gif", "--fps", 0)
    unsaved = Path(shutil.copytree(runs.ff, tmp_path / "unsaved"))
    shutil.rmtree(unsaved / "checkpoints")
    assert "no checkpoint" in one_line_error("render", unsaved, "--out", tmp_path / "x.gif")
    other = Path(shutil.copytree(runs.ff, tmp_path / "other"))
    config = json.loads((other / "config.json").read_text())
    config["config"]["env_id"] = "DeepSea-bsuite"
    (other / "config.json").write_text(json.dumps(config))
    assert "has no renderer" in one_line_error("render", other, "--out", tmp_path / "x.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "other", "unsaved"]
    assert a_file.read_text() == "kept"


# ------------------------------------------------------------------ --video-every
def test_video_every_writes_the_render_of_each_checkpoint_and_changes_no_number(runs, tmp_path):
    assert (runs.gru / "metrics.csv").read_text() == (runs.gru_video / "metrics.csv").read_text()
    videos = sorted(p.name for p in (runs.gru_video / "videos").iterdir())
    assert videos == ["iteration_000002.gif", "iteration_000004.gif"]
    out = tmp_path / "last.gif"
    assert program("render", runs.gru_video, "--out", out).code == 0  # the final checkpoint's episode
    assert out.read_bytes() == (runs.gru_video / "videos" / "iteration_000004.gif").read_bytes()
    events = b"".join(p.read_bytes() for p in (runs.gru_video / "tensorboard").rglob("events*"))
    assert events.count(b"video/episode") == 2 and b"GIF89a" in events


def test_video_every_refuses_an_env_without_renderer_before_writing(tmp_path):
    jax.devices()  # the backends first: main's host-device request must not change this process's
    out = tmp_path / "run"
    result = program("run", "--env", "DeepSea-bsuite", "--video-every", "2", "--out", out, "--no-compile-cache")
    assert result.code == 2 and "--video-every" in result.err and "has no renderer" in result.err, result
    assert len(result.err.strip().splitlines()) == 1 and not out.exists()


# ------------------------------------------------------------------ export
LOADER = textwrap.dedent("""
    import sys
    sys.modules["jaxppo"] = None  # jaxppo cannot be imported here
    import jax, numpy as np
    try:
        import jaxppo  # noqa: F401
        raise SystemExit("jaxppo was importable")
    except ImportError:
        pass
    data = dict(np.load(sys.argv[1]))
    feed_forward = jax.export.deserialize(open(sys.argv[2], "rb").read())
    recurrent = jax.export.deserialize(open(sys.argv[3], "rb").read())
    out = {"ff": np.asarray(feed_forward.call(data["obs"]))}
    carry = {name: np.zeros((len(data["obs"]), 8), np.float32) for name in ("actor", "critic")}
    for t, obs in enumerate(data["sequence"]):
        carry, action = recurrent.call(carry, obs)
        out[f"gru{t}"] = np.asarray(action)
    np.savez(sys.argv[4], **out)
""")
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_export_example() -> str:
    match = re.search(r"<!-- readme-example: export -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README's export example not found"
    return match.group(1)


def test_exported_policies_run_without_jaxppo_and_act_as_load_policy(runs, tmp_path):
    for name in ("ff", "gru"):
        seed = ["--seed", "1"] if name == "ff" else []
        result = program("export", getattr(runs, name), "--out", tmp_path / f"{name}.jaxexport", *seed)
        assert result.code == 0 and "cpu" in result.out, result
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 4)).astype(np.float32)
    sequence = rng.normal(size=(3, 6, 4)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", obs=obs, sequence=sequence)
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, tmp_path / "inputs.npz", tmp_path / "ff.jaxexport",
                           tmp_path / "gru.jaxexport", tmp_path / "actions.npz"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shutil.copy(tmp_path / "ff.jaxexport", tmp_path / "policy.jaxexport")  # the README's example, as printed
    example = "import sys\nsys.modules['jaxppo'] = None\n" + readme_export_example() + "print('action', action)\n"
    proc = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "float32[N,4]" in proc.stdout, proc.stderr
    assert proc.stdout.split()[-1] == str(jaxppo.load_policy(runs.ff, seed=1).predict(np.zeros(4, np.float32)))
    actions = np.load(tmp_path / "actions.npz")
    np.testing.assert_array_equal(actions["ff"], jaxppo.load_policy(runs.ff, seed=1).predict(obs))
    policy, carry = jaxppo.load_policy(runs.gru), None
    for t, step_obs in enumerate(sequence):
        action, carry = policy.predict(step_obs, carry=carry)
        np.testing.assert_array_equal(actions[f"gru{t}"], action)


def test_export_refuses_bad_input_in_one_line(runs, tmp_path):
    assert ".jaxexport" in one_line_error("export", runs.ff, "--out", tmp_path / "policy.bin")
    assert "does not exist" in one_line_error("export", runs.ff, "--out", tmp_path / "missing" / "p.jaxexport")
    assert "--grid-point" in one_line_error("export", runs.ff, "--out", tmp_path / "p.jaxexport", "--grid-point", 1)
    assert "--help" in one_line_error("export", runs.ff)  # --out is required
    assert not list(tmp_path.iterdir())
    unsaved = Path(shutil.copytree(runs.ff, tmp_path / "unsaved"))
    shutil.rmtree(unsaved / "checkpoints")
    assert "no checkpoint" in one_line_error("export", unsaved, "--out", tmp_path / "p.jaxexport")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unsaved"]
