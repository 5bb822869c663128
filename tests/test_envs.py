"""Every kind of gymnax env the issue names trains (a short run, finite losses, raw returns)."""

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
