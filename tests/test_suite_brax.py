"""The brax adapter against brax's raw env stepped by hand.

``brax/inverted_pendulum`` on the ``spring`` backend (the cheapest to compile) for the checks
against the raw env: one scripted run of 18 steps with a time limit of 10 holds a truncated
episode (action 0 keeps the pole up), a terminated one (action +1 tips it past 0.2 rad in 7
steps) and the start of a third, compiled once. ``brax/fast`` (brax's trivial test env, with a
dict observation) for the trainer's checks (seed vmap, the CLI), whose cost is then the
trainer's own compilation.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

pytest.importorskip("brax")

import jaxppo  # noqa: E402
import suite_contract  # noqa: E402
from jaxppo.config import ConfigError  # noqa: E402
from jaxppo.envs import make, make_env  # noqa: E402

pytestmark = pytest.mark.timeout(600)

ENV_ID = "brax/inverted_pendulum"
KWARGS = {"backend": "spring"}
LIMIT = 10
# Episode 1: action 0 for LIMIT steps (truncated); episode 2: +1 until the pole falls (terminated
# on step 7); then the first step of episode 3.
ACTIONS = np.concatenate([np.zeros((LIMIT, 1)), np.ones((8, 1))]).astype(np.float32)  # NumPy: no jax at import


@pytest.fixture(scope="module")
def env_and_params():
    return make(ENV_ID, **KWARGS)


@pytest.fixture(scope="module")
def scripted_run(env_and_params):
    """The adapter's run (through ``assert_time_limit``) and the raw env's, same keys and actions."""
    env, params = env_and_params
    first_obs, out = suite_contract.assert_time_limit(env, params, LIMIT, ACTIONS)
    raw = env.raw_env  # the env brax.envs.get_environment built, no wrapper
    reference = suite_contract.brax_like_reference(
        jax.jit(raw.reset), jax.jit(raw.step), jax.random.key(0), ACTIONS, LIMIT
    )
    return first_obs, out, reference


def test_spaces_are_the_raw_envs(env_and_params):
    env, params = env_and_params
    spec = make_env(ENV_ID, KWARGS)
    assert (spec.action_kind, spec.action_shape, spec.obs_shape) == ("continuous", (1,), (4,))
    np.testing.assert_array_equal(spec.action_low, [-1.0])
    np.testing.assert_array_equal(spec.action_high, [1.0])
    assert env.raw_env.backend == "spring"
    assert params.max_steps_in_episode == 1000  # brax's episode_length
    assert params.replace(max_steps_in_episode=7).max_steps_in_episode == 7


def test_every_step_equals_the_raw_envs(scripted_run):
    first_obs, out, (ref_first_obs, ref) = scripted_run
    suite_contract.assert_matches_reference(first_obs, out, ref_first_obs, ref)


def test_time_limit_is_a_truncation_with_the_raw_final_observation(scripted_run):
    _, out, (_, ref) = scripted_run
    last = LIMIT - 1
    assert bool(out["truncated"][last]) and not bool(out["terminated"][last])
    np.testing.assert_allclose(np.asarray(out["final_obs"][last]), ref["final_obs"][last], atol=1e-5)
    assert not np.allclose(np.asarray(out["final_obs"][last]), np.asarray(out["obs"][last]))


def test_a_fall_is_a_termination_with_the_raw_final_observation(scripted_run):
    _, out, (_, ref) = scripted_run
    terminated = np.flatnonzero(np.asarray(out["terminated"]))
    assert terminated.tolist() == [LIMIT + 6], "the pole falls on the 7th step of +1"
    step = terminated[0]
    assert not bool(out["truncated"][step])
    final_obs = np.asarray(out["final_obs"][step])
    np.testing.assert_allclose(final_obs, ref["final_obs"][step], atol=1e-5)
    assert abs(final_obs[1]) > 0.2  # the pole's angle past brax's threshold, not a reset state
    np.testing.assert_array_equal(np.asarray(out["reward"]), np.ones(len(ACTIONS)))


def test_every_episode_starts_from_a_fresh_reset(scripted_run):
    """Three episodes, three starts: brax's AutoResetWrapper would start the second and the
    third from the same cached state."""
    first_obs, out, _ = scripted_run
    second, third = out["obs"][LIMIT - 1], out["obs"][LIMIT + 6]
    suite_contract.assert_starts_differ(first_obs, second)
    suite_contract.assert_starts_differ(second, third)
    for start in (first_obs, second, third):  # near upright: reset draws within +-0.01
        assert np.abs(np.asarray(start)).max() <= 0.01


def test_dict_observations_and_seed_vmap():
    env, params = make("brax/fast", obs_mode="dict_state")
    spec = make_env("brax/fast", {"obs_mode": "dict_state"})
    assert spec.obs_shape == {"state": (2,)}
    config = jaxppo.PPOConfig(
        env_id="brax/fast", env_kwargs={"obs_mode": "dict_state"}, num_envs=2, num_steps=8,
        total_timesteps=32, num_minibatches=2, update_epochs=1,
    )  # fmt: skip
    together = suite_contract.assert_vmapped_seeds_equal_separate(config)
    losses = {name: together.metrics[name] for name in ("policy_loss", "value_loss", "entropy")}
    assert suite_contract.finite(losses)


def test_cli_training_run(tmp_path):
    summary = suite_contract.cli_training_run(
        tmp_path, "brax/fast", "--env-kwarg", 'obs_mode="dict_state"', "--seeds", 2, "--num-envs", 4,
        "--num-steps", 16, "--total-timesteps", 128, "--num-minibatches", 2, "--update-epochs", 1,
    )  # fmt: skip
    assert summary["env_id"] == "brax/fast" and summary["env_steps_per_seed"] == 128


def test_unknown_names_and_rejected_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean inverted_pendulum"):
        make("brax/invertedpendulum")
    with pytest.raises(ConfigError, match=r"\['colour'\] rejected by brax/inverted_pendulum"):
        make(ENV_ID, colour=1)
    with pytest.raises(ConfigError, match="backend should be in"):
        make(ENV_ID, backend="nope")


def test_fluid_forces_that_brax_cannot_step_on_this_jax_are_a_config_error():
    import inspect

    import jax.numpy as jnp

    if "a_min" in inspect.signature(jnp.clip).parameters:
        pytest.skip("this jax takes jnp.clip(a_min=...), which brax's fluid forces call")
    with pytest.raises(ConfigError, match="brax/swimmer simulates fluid forces") as error:
        make("brax/swimmer")  # the only brax env with fluid forces
    assert "\n" not in str(error.value)
