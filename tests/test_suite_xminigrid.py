"""``xminigrid/<id>`` envs against raw xminigrid: its own time limit ignored and replaced by
``max_steps_in_episode``, goal terminations and rewards (scaled by xminigrid's ``max_steps``),
the reset on the same step, and the XLand ids that need a benchmark download."""

from __future__ import annotations

import bz2
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

xminigrid = pytest.importorskip("xminigrid")

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

NAME = "MiniGrid-Empty-6x6"
ENV_ID = f"xminigrid/{NAME}"
RANDOM_NAME = "MiniGrid-EmptyRandom-5x5"
FORWARD, RIGHT, LEFT, PICKUP, PUTDOWN, TOGGLE = range(6)
# From (1, 1) facing east to the goal at (4, 4): three cells east, turn to face south, three south.
TO_GOAL = [FORWARD, FORWARD, FORWARD, RIGHT, FORWARD, FORWARD, FORWARD]
# Actions that never move the agent (so never reach the goal), with a net rotation at every step.
IN_PLACE = [RIGHT, PICKUP, RIGHT, PUTDOWN, RIGHT, TOGGLE]


def test_xminigrid_time_limit_is_replaced_by_max_steps_in_episode_and_starts_are_redrawn():
    env, params = envs.make(f"xminigrid/{RANDOM_NAME}", max_steps=4)
    assert params.max_steps_in_episode == 4  # xminigrid's own limit is the default
    actions = jnp.asarray((IN_PLACE * 3)[:13], jnp.int32)
    key = jax.random.key(0)
    # Past xminigrid's limit (4) the episode goes on; it ends at the adapter's limit (6), truncated.
    first_obs, out = assert_time_limit(env, params, 6, actions, key)
    assert not np.asarray(out["terminated"]).any()
    assert_starts_differ(first_obs, out["obs"][5])  # a random start drawn afresh after the limit
    # Raw xminigrid from the same first state (scripted_steps resets with the first half of its
    # key), with its own limit at 6: LAST with discount 1 there, with the observation kept.
    timestep = env.reset(jax.random.split(key)[0], params)[1].inner
    np.testing.assert_array_equal(np.asarray(first_obs), np.asarray(timestep.observation))
    raw_env, raw_params = xminigrid.make(RANDOM_NAME, max_steps=6)
    raw_step = jax.jit(raw_env.step)
    raw_obs, ends = [], []
    for action in np.asarray(actions)[:6]:
        timestep = raw_step(raw_params, timestep, jnp.asarray(action))
        raw_obs.append(np.asarray(timestep.observation))
        ends.append((bool(timestep.last()), float(timestep.discount)))
    assert ends == [(False, 1.0)] * 5 + [(True, 1.0)]
    np.testing.assert_array_equal(np.asarray(out["final_obs"])[:6], np.stack(raw_obs))


def test_terminations_rewards_and_resets_agree_with_raw_xminigrid():
    env, params = envs.make(ENV_ID)
    assert params.max_steps_in_episode == 4 * 6 * 6
    params = params.replace(max_steps_in_episode=10_000)  # no truncation in this test
    # Mostly forward moves after the scripted goal, so that the goal is reached several times.
    moves = jax.random.choice(jax.random.key(5), jnp.asarray([*range(6), FORWARD, FORWARD, RIGHT]), (250,))
    actions = np.concatenate([TO_GOAL, [FORWARD, FORWARD], np.asarray(moves)])
    _, out = scripted_steps(env, params, jax.random.key(2), jnp.asarray(actions, jnp.int32))
    raw_env, raw_params = xminigrid.make(NAME)
    raw_step = jax.jit(raw_env.step)
    start = raw_env.reset(raw_params, jax.random.PRNGKey(0))  # Empty-6x6 always starts alike
    timestep, raw = start, {"reward": [], "end": [], "final_obs": [], "obs": []}
    for action in actions:
        timestep = raw_step(raw_params, timestep, jnp.asarray(action))
        raw["reward"].append(float(timestep.reward))
        raw["end"].append(bool(timestep.last()) and float(timestep.discount) == 0.0)
        raw["final_obs"].append(np.asarray(timestep.observation))
        timestep = start if raw["end"][-1] else timestep  # xminigrid has no reset of its own
        raw["obs"].append(np.asarray(timestep.observation))
    assert_goal_episodes_equal_raw(out, raw, start.observation, goal_step=6)
    assert float(out["reward"][6]) == pytest.approx(1 - 0.9 * 7 / 144)  # xminigrid's scaling


def test_observations_are_float_codes():
    spec = envs.make_env(ENV_ID)
    assert spec.obs_shape == (7, 7, 2) and not spec.obs_leaves.uint8 and spec.action_size == 6
    obs, _ = spec.env.reset(jax.random.key(0), spec.env_params)
    assert obs.dtype == jnp.float32 and float(obs.max()) == 7  # black (the floor's colour code), unscaled
    assert envs.make_env(ENV_ID, {"view_size": 5}).obs_shape == (5, 5, 2)


def test_bad_names_and_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown xminigrid env 'MiniGrid-Empty-6x7'.*xminigrid/MiniGrid-Empty-6x6"):
        envs.make("xminigrid/MiniGrid-Empty-6x7")
    with pytest.raises(ConfigError, match=r"rejected by xminigrid/MiniGrid-Empty-6x6") as error:
        envs.make(ENV_ID, no_such_kwarg=1)
    assert "\n" not in str(error.value) and "no_such_kwarg" in str(error.value)
    with pytest.raises(ConfigError, match=r"takes no benchmark"):
        envs.make(ENV_ID, benchmark="trivial-21k")


def test_xland_ids_need_a_benchmark_that_is_here(tmp_path, monkeypatch):
    from xminigrid import benchmarks

    monkeypatch.setattr(benchmarks, "DATA_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"meta-RL env.*benchmark=.*ruleset="):
        envs.make("xminigrid/XLand-MiniGrid-R1-9x9")
    with pytest.raises(ConfigError, match=r"unknown xminigrid benchmark 'trivial-2k'.*trivial-21k"):
        envs.make("xminigrid/XLand-MiniGrid-R1-9x9", benchmark="trivial-2k")
    with pytest.raises(ConfigError, match=r"needs a download.*load_benchmark\('trivial-21k'\)") as error:
        envs.make("xminigrid/XLand-MiniGrid-R1-9x9", benchmark="trivial-21k")
    assert "\n" not in str(error.value)
    # A local benchmark file (two rulesets, as xminigrid stores them) is read without a download.
    from xminigrid.envs import xland

    ruleset = xland._empty_ruleset
    stacked = {
        "goals": np.stack([ruleset.goal, ruleset.goal + 1]),
        "rules": np.stack([ruleset.rules] * 2),
        "init_tiles": np.stack([ruleset.init_tiles] * 2),
        "num_rules": np.ones(2, np.int32),
    }
    with bz2.open(tmp_path / benchmarks.NAME2HFFILENAME["trivial-21k"], "wb") as file:
        pickle.dump(stacked, file)
    env, params = envs.make("xminigrid/XLand-MiniGrid-R1-9x9", benchmark="trivial-21k", ruleset=1)
    np.testing.assert_array_equal(np.asarray(env.raw_params.ruleset.goal), stacked["goals"][1])
    assert params.max_steps_in_episode == 3 * 9 * 9
    with pytest.raises(ConfigError, match=r"ruleset must be an index in \[0, 2\)"):
        envs.make("xminigrid/XLand-MiniGrid-R1-9x9", benchmark="trivial-21k", ruleset=2)


def test_cli_training_run_and_its_vmapped_seeds_equal_seeds_trained_alone(tmp_path):
    summary = cli_seeds_equal_seeds_trained_alone(tmp_path, ENV_ID, {"max_steps": 20})
    assert summary["env_id"] == ENV_ID
