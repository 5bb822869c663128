"""Frames of every suite jaxppo renders (``jaxppo.frames``), and the refusal of an env without a renderer.

Stepping most suites' envs compiles for seconds to minutes, so each suite's renderer draws the
states of a few fresh resets (envs whose episodes start at random places, so the frames differ);
whole episodes, whose frames number their steps, are played by an untrained policy in pgx's MinAtar
Breakout and in a user's env with the ``render_frame`` hook (and in ``test_render``'s trained runs).
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from envs_for_tests import Corridor
from jaxppo.envs import make_env
from jaxppo.frames import renderer

pytestmark = pytest.mark.timeout(300)

RESETS = 6
# env id -> the package its suite needs (None: gymnax, always there)
SUITE_ENVS = {
    "CartPole-v1": None,
    "Pendulum-v1": None,
    "Acrobot-v1": None,
    "MountainCar-v0": None,
    "MountainCarContinuous-v0": None,
    "Catch-bsuite": None,  # gymnax's own matplotlib renderer
    "Breakout-MinAtar": None,  # the ball starts to the left or the right
    "navix/Navix-Empty-Random-5x5-v0": "navix",
    "xminigrid/MiniGrid-EmptyRandom-6x6": "xminigrid",
    "craftax/Craftax-Classic-Symbolic-v1": "craftax",
    "jumanji/Snake-v1": "jumanji",
    "pgx/2048": "pgx",
    "brax/inverted_pendulum": "brax",
    "playground/CartpoleBalance": "mujoco_playground",
}


def assert_frames(frames: np.ndarray, count: int) -> None:
    assert frames.dtype == np.uint8 and frames.shape[0] == count and frames.shape[-1] == 3 and frames.ndim == 4
    assert min(frames.shape[1:3]) >= 16
    assert any((frames[k] != frames[k + 1]).any() for k in range(count - 1)), "the frames never change"


@pytest.mark.parametrize("env_id", SUITE_ENVS)
def test_each_suite_draws_its_states(env_id):
    package = SUITE_ENVS[env_id]
    if package is not None and importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    spec = make_env(env_id)
    keys = jax.random.split(jax.random.key(1), RESETS)
    _, states = jax.jit(jax.vmap(spec.env.reset, in_axes=(0, None)))(keys, spec.env_params)
    assert_frames(renderer(spec.env, spec.env_params)(states), RESETS)


def test_an_untrained_policy_plays_minatar_one_frame_per_step():
    pytest.importorskip("pgx")
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(env_id="pgx/minatar-breakout", num_envs=2, num_steps=8))
    state = trainer.init(jax.random.key(0), jaxppo.PPOHParams())
    episodes = jaxppo.render_agent(trainer, state.params, state.obs_stats, num_episodes=2, max_steps=30)
    for episode in episodes:
        assert_frames(episode.frames, episode.length)
        assert 0 < episode.length <= 30


class DrawnCorridor(Corridor):
    """The corridor with the hook: a bar of ``length + 1`` cells, the agent's one lit."""

    def render_frame(self, state, params):
        cells = jnp.arange(params.length + 1) == state.position
        return jnp.repeat(jnp.repeat(cells[None, :, None] * jnp.array([255, 200, 0], jnp.uint8), 8, 0), 8, 1)


def test_a_users_env_renders_through_its_hook_and_one_without_is_refused():
    config = jaxppo.PPOConfig(env_id="corridor", num_envs=2, num_steps=8)
    trainer = jaxppo.make_trainer(config, env=DrawnCorridor())
    state = trainer.init(jax.random.key(0), jaxppo.PPOHParams())
    (episode,) = jaxppo.render_agent(trainer, state.params, state.obs_stats, max_steps=20)
    assert_frames(episode.frames, episode.length)
    plain = jaxppo.make_trainer(config, env=Corridor())
    with pytest.raises(jaxppo.ConfigError, match="has no renderer.*render_frame") as error:
        jaxppo.render_agent(plain, state.params, state.obs_stats)
    assert "\n" not in str(error.value)
