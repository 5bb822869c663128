"""The README's examples run as printed: the custom environment learns the corridor, and a policy
trained in gymnax drives gymnasium's CartPole-v1."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
RENDERING = README.parent / "docs" / "rendering.md"
LIBRARY = README.parent / "docs" / "library.md"


def _example(name: str, page: Path = README) -> str:
    match = re.search(rf"<!-- readme-example: {name} -->\s*```python\n(.*?)```", page.read_text(), re.S)
    assert match, f"{page.name} example {name!r} not found"
    return match.group(1)


@pytest.mark.timeout(300)
def test_custom_env_example_learns_the_shortest_path_and_renders_it(capsys, tmp_path, monkeypatch):
    namespace: dict = {}
    exec(compile(_example("custom-env"), "README.md", "exec"), namespace)
    lengths = np.asarray(namespace["result"].metrics["episode_length"])
    assert lengths[-1] <= 6.0, lengths  # the shortest path is 5 steps; a random walk takes about 15
    assert capsys.readouterr().out.strip()
    monkeypatch.chdir(tmp_path)
    exec(compile(_example("render-hook", RENDERING), "docs/rendering.md", "exec"), namespace)
    episodes = namespace["episodes"]
    assert [len(e.frames) for e in episodes] == [e.length for e in episodes] and (tmp_path / "corridor.gif").is_file()
    assert "[(1.0, 5), (1.0, 5)]" in capsys.readouterr().out  # as the example's comment says


@pytest.mark.timeout(300)
def test_gymnasium_example_drives_cartpole_with_a_gymnax_policy(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gymnasium")
    run = tmp_path / "runs" / "cartpole"  # where the example's comment trains it, relative to the cwd
    args = ["--env", "CartPole-v1", "--seeds", "1", "--total-timesteps", "2048", "--no-progress", "--out", run]
    trained = subprocess.run([sys.executable, "-m", "jaxppo.run", *map(str, args)], capture_output=True, text=True,
                             env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=240)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example("gymnasium", LIBRARY), "docs/library.md", "exec"), namespace)
    assert namespace["done"] and 1 <= namespace["episode_return"] <= 500
    assert "gymnasium CartPole-v1: return" in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_pbt_example_explores_the_learning_rate_up_from_a_value_too_small_to_learn(capsys):
    namespace: dict = {}
    exec(compile(_example("pbt"), "README.md", "exec"), namespace)
    metrics = namespace["result"].metrics
    assert np.asarray(metrics["hp_learning_rate"]).shape == (4, 39)
    assert (np.asarray(metrics["pbt_parent"]) >= 0).any()  # members copied others
    assert np.asarray(metrics["hp_learning_rate"])[:, -1].max() > 1e-6
    assert capsys.readouterr().out.strip()
