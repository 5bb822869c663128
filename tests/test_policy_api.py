"""``load_policy`` as a user drives an env with it: ``policy(obs)`` without a key when deterministic,
``policy.predict(obs)`` with NumPy / Python actions for a host-side loop (gymnasium), and
observation shapes checked against the env's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxppo import ConfigError, load_policy

pytestmark = pytest.mark.timeout(300)

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _train(out: Path, env_id: str) -> Path:
    args = ["--env", env_id, "--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "128", "--seeds", "2"]
    result = subprocess.run([sys.executable, "-m", "jaxppo.run", *args, "--no-progress", "--out", out],
                            env=ENV, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("policy") / "cartpole", "CartPole-v1")


OBS = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
BATCH = np.random.default_rng(0).normal(0.0, 0.1, (7, 4)).astype(np.float32)


def test_a_deterministic_policy_needs_no_key(cartpole):
    policy = load_policy(cartpole, seed=1)
    assert int(policy(OBS)) == int(policy(OBS, jax.random.key(3)))
    np.testing.assert_array_equal(np.asarray(policy(BATCH)), np.asarray(policy(BATCH, jax.random.key(0))))
    assert int(jax.jit(lambda obs: policy(obs))(OBS)) == int(policy(OBS))  # still jit-able


def test_predict_gives_python_and_numpy_actions(cartpole):
    policy = load_policy(cartpole)
    action = policy.predict(OBS)
    assert type(action) is int and action in (0, 1)
    assert policy.predict(OBS.tolist()) == action  # a list, as some envs return
    actions = policy.predict(BATCH)
    assert isinstance(actions, np.ndarray) and actions.shape == (7,) and np.issubdtype(actions.dtype, np.integer)
    assert actions[0] == policy.predict(BATCH[0])
    assert policy.obs_shape == (4,) and policy.action_kind == "discrete"


def test_a_stochastic_policy_asks_for_a_key_or_predicts_with_its_own(cartpole):
    policy = load_policy(cartpole, deterministic=False)
    with pytest.raises(ConfigError, match="key"):
        policy(OBS)
    assert int(policy(OBS, jax.random.key(0))) in (0, 1)
    first = [policy.predict(OBS) for _ in range(20)]
    again = load_policy(cartpole, deterministic=False)
    assert [again.predict(OBS) for _ in range(20)] == first  # reproducible from load
    assert all(type(a) is int for a in first)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 2, 4), ()])
def test_a_wrong_observation_shape_names_the_expected_one(cartpole, shape):
    policy = load_policy(cartpole)
    for call in (policy, policy.predict):
        with pytest.raises(ConfigError, match=r"\(4,\)"):
            call(np.zeros(shape, np.float32))
    with pytest.raises(ConfigError, match="observation"):
        policy.predict("not an observation")


def test_a_continuous_policy_predicts_numpy_arrays_within_bounds(tmp_path):
    policy = load_policy(_train(tmp_path / "pendulum", "Pendulum-v1"))
    action = policy.predict(np.array([1.0, 0.0, 0.5], np.float32))
    assert isinstance(action, np.ndarray) and action.shape == (1,) and np.all(np.abs(action) <= 2.0)
    assert policy.predict(np.zeros((5, 3), np.float32)).shape == (5, 1)


def test_gymnax_and_gymnasium_cartpole_share_their_observations_and_dynamics():
    gymnasium = pytest.importorskip("gymnasium")
    import gymnax

    env, params = gymnax.make("CartPole-v1")
    real = gymnasium.make("CartPole-v1")
    assert real.observation_space.shape == env.observation_space(params).shape == (4,)
    assert real.spec.max_episode_steps == params.max_steps_in_episode == 500
    obs, state = env.reset(jax.random.key(0), params)
    real.reset(seed=0)
    real.unwrapped.state = np.asarray(obs, np.float64)  # (x, x_dot, theta, theta_dot) in both
    for action in [0, 1, 1, 0, 1, 1, 1, 0]:
        obs, state, *_ = env.step_env(jax.random.key(1), state, action, params)  # no auto-reset
        real_obs, *_ = real.step(action)
        np.testing.assert_allclose(np.asarray(obs), real_obs, rtol=1e-5, atol=1e-6)
