"""The MuJoCo Playground adapter against Playground's raw env stepped by hand.

``playground/CartpoleBalance`` (MJX's JAX implementation, the adapter's default): one scripted run
of random actions over three episodes with a time limit of 6, compiled once, against the raw
env. CartpoleBalance ends an episode only on a NaN, so terminations are checked on brax's
inverted pendulum (``test_suite_brax``), which goes through the same code (``_brax_like``).
The CLI run uses ``playground/PendulumSwingup``, the dm_control env that compiles fastest (one
hinge, no constraints: about half CartpoleBalance's time); the trainer's program with an MJX env
still takes 35-40 CPU seconds to compile on a 2-core CPU. The seed-vmap check, two more such
compilations, runs on ``brax/fast`` in ``test_suite_brax``: the adapter class is the same, and
MJX's ``impl="jax"`` is plain JAX.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

pytest.importorskip("mujoco_playground")

import suite_contract  # noqa: E402
from jaxppo.config import ConfigError  # noqa: E402
from jaxppo.envs import make, make_env  # noqa: E402

pytestmark = pytest.mark.timeout(600)

ENV_ID = "playground/CartpoleBalance"
TRAIN_ENV_ID = "playground/PendulumSwingup"
LIMIT = 6
ACTIONS = np.random.default_rng(5).uniform(-1.0, 1.0, (2 * LIMIT + 2, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def env_and_params():
    return make(ENV_ID)


@pytest.fixture(scope="module")
def scripted_run(env_and_params):
    """The adapter's run (through ``assert_time_limit``) and the raw env's, same keys and actions."""
    env, params = env_and_params
    first_obs, out = suite_contract.assert_time_limit(env, params, LIMIT, ACTIONS)
    raw = env.raw_env  # the env registry.load built, no wrapper
    reference = suite_contract.brax_like_reference(
        jax.jit(raw.reset), jax.jit(raw.step), jax.random.key(0), ACTIONS, LIMIT
    )
    return first_obs, out, reference


def test_spaces_config_and_time_limit_are_the_raw_envs(env_and_params):
    env, params = env_and_params
    spec = make_env(ENV_ID)
    assert (spec.action_kind, spec.action_shape, spec.obs_shape) == ("continuous", (1,), (5,))
    np.testing.assert_array_equal(spec.action_low, [-1.0])
    np.testing.assert_array_equal(spec.action_high, [1.0])
    assert env.raw_env._config.impl == "jax"  # the adapter's default; Playground's is "warp"
    assert params.max_steps_in_episode == env.raw_env._config.episode_length == 1000
    # MJX's empty buffers are kept out of the state (see jaxppo.suites._brax_like)
    _, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    assert all(leaf.size > 0 for leaf in jax.tree.leaves(state))
    other, other_params = make(ENV_ID, ctrl_dt=0.02, episode_length=250)  # config overrides
    assert other.raw_env.n_substeps == 2 and other_params.max_steps_in_episode == 250


def test_every_step_equals_the_raw_envs(scripted_run):
    first_obs, out, (ref_first_obs, ref) = scripted_run
    suite_contract.assert_matches_reference(first_obs, out, ref_first_obs, ref)
    assert not np.asarray(out["terminated"]).any()
    assert len(np.unique(np.asarray(out["reward"]))) > 1  # the rewards depend on the actions


def test_time_limit_is_a_truncation_with_the_raw_final_observation(scripted_run):
    _, out, (_, ref) = scripted_run
    for last in (LIMIT - 1, 2 * LIMIT - 1):
        assert bool(out["truncated"][last]) and not bool(out["terminated"][last])
        np.testing.assert_allclose(np.asarray(out["final_obs"][last]), ref["final_obs"][last], atol=1e-5)
        assert not np.allclose(np.asarray(out["final_obs"][last]), np.asarray(out["obs"][last]))


def test_every_episode_starts_from_a_fresh_reset(scripted_run):
    first_obs, out, _ = scripted_run
    second, third = out["obs"][LIMIT - 1], out["obs"][2 * LIMIT - 1]
    suite_contract.assert_starts_differ(first_obs, second)
    suite_contract.assert_starts_differ(second, third)


def test_cli_training_run(tmp_path):
    summary = suite_contract.cli_training_run(
        tmp_path, TRAIN_ENV_ID, "--env-kwarg", "episode_length=32", "--seeds", 2, "--num-envs", 4, "--num-steps", 16,
        "--total-timesteps", 128, "--num-minibatches", 2, "--update-epochs", 1,
    )  # fmt: skip
    assert summary["env_id"] == TRAIN_ENV_ID
    assert np.isfinite(summary["grid_points"][0]["final_return"]["mean"])  # 32-step episodes completed


def test_unknown_names_and_rejected_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean CartpoleBalance"):
        make("playground/CartpolBalance")
    with pytest.raises(ConfigError, match="needs mujoco_menagerie"):
        make("playground/Go1JoystickFlatTerrain")
    with pytest.raises(ConfigError, match=r"\['colour'\] rejected by playground/CartpoleBalance"):
        make(ENV_ID, colour=1)
    with pytest.raises(ConfigError, match=r"\['ctrl_dt'\] rejected"):
        make(ENV_ID, ctrl_dt="fast")
