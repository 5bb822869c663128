"""``jaxppo.envs.make`` and ``suites.base.SuiteEnv``: the semantics every suite adapter inherits,
on a tiny counting env whose raw step is known exactly."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from jaxppo import envs, suites
from jaxppo.config import ConfigError
from jaxppo.suites import base
from suite_contract import assert_time_limit, scripted_steps

pytestmark = pytest.mark.timeout(300)


class Counter(base.SuiteEnv):
    """Raw state: a position that starts at a random integer in [0, 100) and moves by the action
    (0: stay, 1: +1); position 3 above the start terminates (reward 1), and every 7th raw step
    the suite itself truncates when ``suite_limit``. Reports the start as an episode statistic."""

    def __init__(self, suite_limit=False, max_steps=5):
        super().__init__("Counter", max_steps)
        self.suite_limit = suite_limit

    def raw_reset(self, key):
        assert key.dtype == jnp.uint32  # suites get raw key data
        start = jax.random.randint(jax.random.wrap_key_data(key), (), 0, 100)
        inner = (start, start, jnp.zeros((), jnp.int32))
        return self._obs(inner), inner

    def raw_step(self, key, inner, action):
        start, position, steps = inner
        inner = (start, position + action, steps + 1)
        terminated = inner[1] - start >= 3
        truncated = self.suite_limit & (inner[2] % 7 == 0)
        info = {base.EPISODE_METRICS: {"start": start.astype(jnp.float32)}}
        return base.RawStep(self._obs(inner), inner, terminated.astype(jnp.float32), terminated, truncated, info)

    def _obs(self, inner):
        return jnp.stack([inner[0], inner[1]]).astype(jnp.float32)

    def action_space(self, params):
        from gymnax.environments import spaces

        return spaces.Discrete(2)

    def observation_space(self, params):
        from gymnax.environments import spaces

        return spaces.Box(0.0, 200.0, (2,), jnp.float32)


def test_time_limit_is_a_truncation_with_the_pre_reset_observation_and_a_fresh_start():
    env = Counter()
    params = env.default_params
    assert params.max_steps_in_episode == 5
    first_obs, out = assert_time_limit(env, params, 4, jnp.zeros(9, jnp.int32))
    obs = np.asarray(out["obs"])
    # The episode after the limit starts afresh (a new random start), on the same step.
    assert obs[3, 0] != first_obs[0] and obs[3, 0] == obs[3, 1]
    np.testing.assert_array_equal(np.asarray(out["final_obs"])[3], np.asarray(first_obs))


def test_termination_wins_over_a_time_limit_on_the_same_step():
    env = Counter()
    params = env.default_params.replace(max_steps_in_episode=3)
    _, out = scripted_steps(env, params, jax.random.key(1), jnp.ones(4, jnp.int32))
    np.testing.assert_array_equal(np.asarray(out["terminated"]), [False, False, True, False])
    np.testing.assert_array_equal(np.asarray(out["truncated"]), [False, False, False, False])
    np.testing.assert_array_equal(np.asarray(out["reward"]), [0, 0, 1, 0])


def test_the_suites_own_truncation_is_a_truncation():
    env = Counter(suite_limit=True, max_steps=100)
    _, out = scripted_steps(env, env.default_params, jax.random.key(2), jnp.zeros(8, jnp.int32))
    np.testing.assert_array_equal(np.asarray(out["truncated"]), [False] * 6 + [True, False])
    assert not np.asarray(out["terminated"]).any()


def test_episode_statistics_become_metrics_averaged_over_completed_episodes():
    env = Counter(max_steps=2)
    config = jaxppo.PPOConfig(num_envs=4, num_steps=8, total_timesteps=64, num_minibatches=2, update_epochs=1)
    trainer = jaxppo.make_trainer(config, env=env)
    hparams = jaxppo.PPOHParams()
    state = trainer.init(jax.random.key(0), hparams)
    _, traj = jax.jit(trainer.rollout)(state, hparams)
    done = np.asarray(traj.episode_done)
    starts = np.asarray(traj.done_metrics["start"])
    assert done.sum() >= 4 and np.all(starts[~done] == 0)
    assert np.all(starts[done] == np.asarray(traj.final_obs)[..., 0][done])  # each episode's own start
    result = jax.jit(jaxppo.make_train(config, env=env))(jax.random.key(0))
    assert np.isfinite(result.metrics["episode/start"]).all()
    assert 0 <= float(result.metrics["episode/start"].min()) and float(result.metrics["episode/start"].max()) < 100


def test_make_dispatches_suite_ids_and_keeps_gymnax_ids():
    env, params = envs.make("CartPole-v1")
    assert env.name == "CartPole-v1" and params.max_steps_in_episode == 500
    with pytest.raises(ConfigError, match=r"unknown env suite 'nosuch'.*brax"):
        envs.make("nosuch/Thing")
    with pytest.raises(ConfigError, match=r"names no env"):
        envs.make("brax/")
    with pytest.raises(ConfigError, match=r"unknown env id 'CartPol-v1'.*CartPole-v1"):
        jaxppo.make_trainer(jaxppo.PPOConfig(env_id="CartPol-v1"))


def test_the_time_limit_is_an_env_kwarg_for_every_env():
    env, params = envs.make("CartPole-v1", max_steps_in_episode=50)
    assert params.max_steps_in_episode == 50
    spec = envs.make_env("CartPole-v1", (("max_steps_in_episode", 7),))
    assert spec.env_params.max_steps_in_episode == 7
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="max_steps_in_episode must be a positive integer"):
            envs.make("CartPole-v1", max_steps_in_episode=bad)


def test_evaluation_stops_once_every_episode_ended_and_counts_each_episode_once():
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(num_envs=2, num_steps=8, total_timesteps=16), env=Counter(max_steps=3))
    state = trainer.init(jax.random.key(0), jaxppo.PPOHParams())
    returns = jax.jit(jaxppo.evaluate, static_argnums=(0, 4))(trainer, state.params, None, jax.random.key(1), 5)
    assert returns.shape == (5,) and set(np.asarray(returns).tolist()) <= {0.0, 1.0}


def test_a_suite_that_is_not_installed_names_its_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jumanji" else real(name, *a))
    with pytest.raises(ConfigError) as error:
        jaxppo.make_trainer(jaxppo.PPOConfig(env_id="jumanji/Snake-v1"))
    assert 'pip install "jaxppo[jumanji]"' in str(error.value) and "\n" not in str(error.value)


def test_every_suite_has_an_extra_and_an_adapter_module():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name, suite in suites.SUITES.items():
        assert suite.extra in extras, name
        assert f"jaxppo[{','.join(suites.SUITES)}]" == extras["envs"][0]
        # (each adapter module is checked by its own test module)
