"""Dict observations: each leaf flattened and concatenated for the MLP, normalised per leaf, uint8
image leaves scaled by 1/255 instead of running statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import jaxppo
from envs_for_tests import Corridor, DictCorridor
from jaxppo.envs import ObsLeaf, VecEnv, make_env
from jaxppo.evaluation import make_act
from jaxppo.loading import Policy

CONFIG = jaxppo.PPOConfig(env_id="dict-corridor", total_timesteps=16_384, num_envs=8, num_steps=64)
HPARAMS = jaxppo.PPOHParams(learning_rate=2.5e-3)


def test_the_spec_describes_every_leaf():
    spec = make_env("dict-corridor", env=DictCorridor())
    assert spec.obs_leaves == {"constant": ObsLeaf((2,), False), "row": ObsLeaf((1, 6, 1), True)}
    assert spec.obs_shape == {"constant": (2,), "row": (1, 6, 1)} and spec.obs_size == 8


def test_uint8_leaves_reach_the_policy_scaled_to_one():
    env = VecEnv(make_env("dict-corridor", env=DictCorridor()), num_envs=2)
    obs, _ = env.reset(jax.random.key(0))
    assert obs["row"].dtype == jnp.float32 and obs["row"].shape == (2, 1, 6, 1)
    np.testing.assert_array_equal(obs["row"][:, 0, :, 0], [[1, 0, 0, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(obs["constant"], np.full((2, 2), 0.5))


def test_a_dict_observation_policy_learns_the_corridor():
    result = jax.jit(jaxppo.make_train(CONFIG, env=DictCorridor()))(jax.random.key(0), HPARAMS)
    lengths = np.asarray(result.metrics["episode_length"])
    assert lengths[-1] <= 6.0, lengths  # the shortest path is 5 steps; a random walk takes about 15
    kernel = result.state.params["actor"]["params"]["MLP_0"]["Dense_0"]["kernel"]
    assert kernel.shape == (8, 64)  # 2 + 6 inputs: both leaves, flattened and concatenated


def test_observation_statistics_are_per_leaf_and_skip_images():
    config = CONFIG.replace(total_timesteps=512, normalize_observations=True)
    result = jax.jit(jaxppo.make_train(config, env=DictCorridor()))(jax.random.key(0), HPARAMS)
    stats = result.state.obs_stats
    assert set(stats) == {"constant", "row"} and stats["row"] is None
    assert stats["constant"].mean.shape == (2,)
    np.testing.assert_allclose(stats["constant"].mean, 0.5, atol=1e-3)
    assert float(jnp.abs(result.state.obs["constant"]).max()) < 1e-2  # a constant leaf normalises to 0
    assert 0.0 <= float(result.state.obs["row"].min()) and float(result.state.obs["row"].max()) == 1.0


def test_a_dict_policy_acts_on_host_observations():
    trainer = jaxppo.make_trainer(CONFIG, env=DictCorridor())
    state = trainer.init(jax.random.key(0), HPARAMS)
    act = make_act(trainer)
    policy = Policy(jax.jit(lambda obs, key, mask=None, carry=None: act(state.params, None, obs, key, mask, carry)),
                    trainer.spec.obs_shape, "discrete", True)  # fmt: skip
    row = np.zeros((1, 6, 1), np.uint8)
    row[0, 0, 0] = 255
    one = {"row": row, "constant": np.full(2, 0.5, np.float32)}
    assert policy.predict(one) in (0, 1)
    batch = {key: np.stack([value] * 3) for key, value in one.items()}
    assert policy.predict(batch).shape == (3,)
    with pytest.raises(jaxppo.ConfigError, match="keys"):
        policy.predict({"row": row})
    with pytest.raises(jaxppo.ConfigError, match="shape"):
        policy.predict({"row": row[0], "constant": one["constant"]})


def test_a_dict_of_non_box_spaces_is_a_config_error():
    class DiscreteLeaf(Corridor):
        def observation_space(self, params):
            return spaces.Dict({"position": spaces.Discrete(6)})

    with pytest.raises(jaxppo.ConfigError, match="'position' Discrete"):
        make_env("bad", env=DiscreteLeaf())
