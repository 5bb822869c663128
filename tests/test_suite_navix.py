"""``navix/<id>`` envs against raw navix: navix's own time limit disabled and replaced by
``max_steps_in_episode``, the reset on the same step (navix resets one step late and ignores
that step's action), goal terminations, and navix's observations as given to the policy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

navix = pytest.importorskip("navix")

from jaxppo import envs  # noqa: E402
from jaxppo.config import ConfigError  # noqa: E402
from suite_contract import (  # noqa: E402
    assert_goal_episodes_equal_raw,
    assert_starts_differ,
    assert_time_limit,
    cli_seeds_equal_seeds_trained_alone,
    scripted_steps,
)

pytestmark = pytest.mark.timeout(300)

NAME = "Navix-Empty-5x5-v0"
ENV_ID = f"navix/{NAME}"
RANDOM_NAME = "Navix-Empty-Random-5x5-v0"
RANDOM_ENV_ID = f"navix/{RANDOM_NAME}"
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
# From (1, 1) facing east to the goal at (3, 3): two cells east, turn to face south, two cells south.
TO_GOAL = [FORWARD, FORWARD, RIGHT, FORWARD, FORWARD]
# Actions that never move the agent (so never reach the goal), with a net rotation at every step.
IN_PLACE = [RIGHT, PICKUP, RIGHT, DROP, RIGHT, TOGGLE, DONE]


def test_navix_time_limit_is_replaced_by_max_steps_in_episode_and_starts_are_redrawn():
    env, params = envs.make(RANDOM_ENV_ID, max_steps=4)
    assert params.max_steps_in_episode == 4  # navix's own limit is the default
    actions = jnp.asarray((IN_PLACE * 2)[:13], jnp.int32)
    key = jax.random.key(0)
    # Past navix's limit (4) the episode goes on; it ends at the adapter's limit (6), truncated.
    first_obs, out = assert_time_limit(env, params, 6, actions, key)
    assert not np.asarray(out["terminated"]).any()
    assert_starts_differ(first_obs, out["obs"][5])  # a random start drawn afresh after the limit
    # Raw navix from the same first state (scripted_steps resets with the first half of its key),
    # with navix's own time limit at 6: it truncates there, with the observation the adapter kept.
    timestep = env.reset(jax.random.split(key)[0], params)[1].inner
    np.testing.assert_array_equal(np.asarray(first_obs), np.asarray(timestep.observation))
    raw_step = jax.jit(navix.make(RANDOM_NAME, max_steps=6).step)
    raw_obs, step_types = [], []
    for action in np.asarray(actions)[:6]:
        timestep = raw_step(timestep, jnp.asarray(action))
        raw_obs.append(np.asarray(timestep.observation))
        step_types.append(int(timestep.step_type))
    assert step_types == [0] * 5 + [1]
    np.testing.assert_array_equal(np.asarray(out["final_obs"])[:6], np.stack(raw_obs))


def test_terminations_rewards_and_resets_agree_with_raw_navix_and_no_action_is_lost():
    # A termination penalty (navix's own, scaled by its max_steps) shows the reward is navix's.
    kwargs = dict(max_steps=1000, penality_coeff=0.5)
    env, params = envs.make(ENV_ID, **kwargs)
    # Mostly forward moves after the scripted goal, so that the goal is reached several times.
    moves = jax.random.choice(jax.random.key(5), jnp.asarray([*range(7), FORWARD, FORWARD, RIGHT]), (200,))
    actions = np.concatenate([TO_GOAL, [FORWARD, FORWARD], np.asarray(moves)])
    _, out = scripted_steps(env, params, jax.random.key(2), jnp.asarray(actions, jnp.int32))
    raw_env = navix.make(NAME, **kwargs)
    raw_step = jax.jit(raw_env.step)
    start = raw_env.reset(jax.random.PRNGKey(0))  # Empty-5x5 always starts alike, whatever the key
    timestep, raw = start, {"reward": [], "end": [], "final_obs": [], "obs": []}
    for action in actions:
        timestep = raw_step(timestep, jnp.asarray(action))
        raw["reward"].append(float(timestep.reward))
        raw["end"].append(int(timestep.step_type) == 2)
        raw["final_obs"].append(np.asarray(timestep.observation))
        if raw["end"][-1]:
            # Raw navix resets one step late: its next step ignores the action (here FORWARD)...
            late = raw_step(timestep, jnp.asarray(FORWARD))
            np.testing.assert_array_equal(np.asarray(late.observation), np.asarray(start.observation))
            assert int(late.t) == 0
            timestep = start  # ...the adapter resets on the same step instead.
        raw["obs"].append(np.asarray(timestep.observation))
    assert_goal_episodes_equal_raw(out, raw, start.observation, goal_step=4)
    assert float(out["reward"][4]) == pytest.approx(1 - 0.5 * 5 / 1000)  # navix's penalty


def test_observations_are_float_codes_or_uint8_images():
    spec = envs.make_env(ENV_ID)
    assert spec.obs_shape == (5, 5, 3) and not spec.obs_leaves.uint8 and spec.action_size == 7
    obs, _ = spec.env.reset(jax.random.key(0), spec.env_params)
    assert obs.dtype == jnp.float32 and float(obs.max()) == 10  # navix's player tag, unscaled
    first_person = envs.make_env(ENV_ID, {"observation_fn": "symbolic_first_person"})
    assert first_person.obs_shape == (7, 7, 3) and not first_person.obs_leaves.uint8
    rgb = envs.make_env(ENV_ID, {"observation_fn": "rgb"})
    assert rgb.obs_shape == (40, 40, 3) and rgb.obs_leaves.uint8  # pixels, scaled by 1/255
    assert rgb.env.observation_space(rgb.env_params).dtype == jnp.uint8


def test_bad_names_and_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown navix env 'Navix-Empty-5x5-v9'.*navix/Navix-Empty-5x5-v0"):
        envs.make("navix/Navix-Empty-5x5-v9")
    with pytest.raises(ConfigError, match=r"rejected by navix/Navix-Empty-5x5-v0") as error:
        envs.make(ENV_ID, no_such_kwarg=1)
    assert "\n" not in str(error.value) and "no_such_kwarg" in str(error.value)
    with pytest.raises(ConfigError, match=r"unknown navix observation_fn 'symbolc'.*symbolic"):
        envs.make(ENV_ID, observation_fn="symbolc")


def test_cli_training_run_and_its_vmapped_seeds_equal_seeds_trained_alone(tmp_path):
    summary = cli_seeds_equal_seeds_trained_alone(tmp_path, ENV_ID, {"max_steps": 20})
    assert summary["env_id"] == ENV_ID
