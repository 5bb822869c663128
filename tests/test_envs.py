"""Every kind of gymnax env the issue names trains (a short run, finite losses, raw returns)."""

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import jaxppo

ENVS = ["Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Breakout-MinAtar", "Catch-bsuite"]


@pytest.mark.parametrize("env_id", ENVS)
def test_short_run_on(env_id):
    config = jaxppo.PPOConfig(env_id=env_id, num_envs=2, num_steps=64, num_minibatches=2, total_timesteps=256)
    result = jax.jit(jaxppo.make_train(config))(jax.random.key(0), jaxppo.PPOHParams())
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        assert np.all(np.isfinite(result.metrics[name])), (env_id, name)
    assert result.metrics["env_steps"][-1] == 256
    spec = jaxppo.make_trainer(config).spec
    assert spec.action_kind == ("continuous" if "Continuous" in env_id else "discrete")


def test_minatar_observations_are_flattened_for_the_mlp():
    spec = jaxppo.make_trainer(jaxppo.PPOConfig(env_id="Breakout-MinAtar")).spec
    assert spec.obs_shape == (10, 10, 4) and spec.obs_size == 400


def test_start_up_defers_gymnax_rendering_modules_until_used():
    # A fresh interpreter: building a trainer must not import seaborn/scipy.stats/matplotlib (seconds of
    # start-up), and gymnax's renderers must still find them when they draw.
    script = textwrap.dedent(
        """
        import sys
        import jaxppo
        jaxppo.make_trainer(jaxppo.PPOConfig(env_id="CartPole-v1"))
        slow = [m for m in ("seaborn", "scipy.stats", "pandas", "matplotlib") if m in sys.modules]
        assert slow == [], slow
        from gymnax.environments.misc import pong
        assert len(pong.sns.color_palette("cubehelix", 3)) == 3
        assert pong.colors.ListedColormap(["red", "blue"]).N == 2
        import matplotlib.colors, matplotlib.pyplot as plt, seaborn
        assert seaborn.color_palette is pong.sns.color_palette and plt.figure is pong.plt.figure
        assert matplotlib.colors.ListedColormap is pong.colors.ListedColormap
        print("OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]
