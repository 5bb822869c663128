"""Learning-curve plots: a bootstrap band of the mean across seeds that stays within the returns
reached, optional smoothing, and comparisons labelled by env and swept values (a warning when
they mix envs)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxppo.plotting import comparison, curve_band

pytestmark = pytest.mark.timeout(300)

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
plot_main = importlib.import_module("jaxppo.plot").main


def test_the_band_stays_within_the_returns_the_seeds_reached():
    rng = np.random.default_rng(0)
    # CartPole near its 500 cap (one seed lagging); Acrobot near its -500 floor.
    capped = np.minimum(500.0, rng.normal(495.0, 4.0, (5, 50)))
    capped[0] = 380.0
    floored = np.maximum(-500.0, rng.normal(-497.0, 5.0, (4, 50)))
    floored[1] = -300.0
    for returns in (capped, floored):
        mean, low, high = curve_band(returns)
        assert np.all(low <= mean) and np.all(mean <= high)
        assert np.all(high <= returns.max(axis=0)) and np.all(low >= returns.min(axis=0)), (low.min(), high.max())


def test_the_band_is_reproducible_fast_and_skips_what_no_seed_reached():
    rng = np.random.default_rng(1)
    returns = rng.normal(100.0, 30.0, (64, 1000))
    returns[:, :3] = np.nan  # no episode finished yet
    returns[:10, 3:6] = np.nan  # some seeds finished theirs later
    start = time.perf_counter()
    mean, low, high = curve_band(returns)
    assert time.perf_counter() - start < 2.0
    for a, b in zip((mean, low, high), curve_band(returns), strict=True):
        np.testing.assert_array_equal(a, b)  # a fixed seed: the same plot every time
    assert np.all(np.isnan(low[:3])) and np.all(np.isfinite(low[3:])) and np.all(np.isfinite(high[3:]))
    sem = returns[:, 10:].std(axis=0) / np.sqrt(64)  # many seeds: close to the normal approximation
    np.testing.assert_allclose((high - low)[10:].mean(), 2 * 1.96 * sem.mean(), rtol=0.05)


def test_smoothing_averages_a_trailing_window_of_iterations():
    returns = np.array([[0.0, 10.0, 20.0, 30.0, 40.0], [np.nan, 10.0, 20.0, 30.0, 40.0]])
    mean, low, high = curve_band(returns, smooth=3)
    np.testing.assert_allclose(mean, [0.0, 7.5, 12.5, 20.0, 30.0])  # seed 1: 10, 15, 20, 30 from iteration 2
    np.testing.assert_allclose(curve_band(returns, smooth=1)[0], [0.0, 10.0, 20.0, 30.0, 40.0])
    assert np.all(low <= mean) and np.all(mean <= high)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A CartPole run, the same with another learning rate, and a copy that says it is Acrobot."""
    root = tmp_path_factory.mktemp("plot")
    tiny = ["--env", "CartPole-v1", "--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "128",
            "--seeds", "2", "--no-progress"]  # fmt: skip
    for name, extra in (("a", []), ("b", ["--learning-rate", "0.001"])):
        result = subprocess.run([sys.executable, "-m", "jaxppo.run", *tiny, *extra, "--out", root / name],
                                env=ENV, capture_output=True, text=True, timeout=240)  # fmt: skip
        assert result.returncode == 0, result.stderr
    shutil.copytree(root / "a", root / "acrobot")
    config = json.loads((root / "acrobot" / "config.json").read_text())
    config["config"]["env_id"] = "Acrobot-v1"
    config["resolved_config"]["env_id"] = "Acrobot-v1"
    (root / "acrobot" / "config.json").write_text(json.dumps(config))
    return root


def test_a_comparison_names_env_and_swept_values_not_directories(runs):
    curves, title, warnings = comparison([runs / "a", runs / "b"])
    labels = [label for label, _, _ in curves]
    assert labels == ["learning_rate=0.00025", "learning_rate=0.001"], labels
    assert "CartPole-v1" in title and "learning_rate" in title and not warnings
    curves, title, warnings = comparison([runs / "a", runs / "acrobot"])
    assert [label for label, _, _ in curves] == ["env=CartPole-v1", "env=Acrobot-v1"]
    assert "CartPole-v1" in title and "Acrobot-v1" in title
    assert len(warnings) == 1 and "CartPole-v1" in warnings[0] and "Acrobot-v1" in warnings[0]


def test_plot_warns_in_one_line_when_it_mixes_envs_and_smooths_on_request(runs, tmp_path, capsys):
    assert plot_main([str(runs / "a"), str(runs / "acrobot"), "--out", str(tmp_path / "x.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m jaxppo.plot: warning: "), err
    assert plot_main([str(runs / "a"), "--smooth", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")
    assert capsys.readouterr().err == ""
    assert plot_main([str(runs / "a"), "--smooth", "0", "--out", str(tmp_path / "z.png")]) == 2
    assert "--smooth" in capsys.readouterr().err and not (tmp_path / "z.png").exists()


def test_plot_help_documents_smoothing(capsys):
    with pytest.raises(SystemExit):
        plot_main(["--help"])
    assert "--smooth" in capsys.readouterr().out
