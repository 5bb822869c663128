"""The craftax adapter against craftax's raw env (``step_env`` / ``reset_env`` without auto-reset).

Craftax compiles slowly (minutes per jitted function on 2 cores), so the contract checks share one
compiled program: one adapter reset, a scan of adapter steps, and a scan of the raw env's steps
with the same keys and actions, in three lanes at once (vmapped):

- ``LIVING``: a fresh world; nothing ends it before the time limit ``LIMIT``.
- ``DYING``: the same world with health 0 and one achievement unlocked: it dies on its first step.
- ``TIMING_OUT``: the same world at craftax's last step (``timestep = max_timesteps - 1``): craftax
  ends it on the first step (``done``, discount 0), the adapter does not.

Like every program the tests compile, these and the CLI run's compile without XLA's backend
optimisations (``utils.FAST_COMPILE``, set by conftest): craftax's programs compile about 40 %
faster so.
"""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("craftax")

import jaxppo  # noqa: E402
import suite_contract  # noqa: E402
from jaxppo.config import ConfigError  # noqa: E402

pytestmark = pytest.mark.timeout(900)

NAME = "Craftax-Classic-Symbolic-v1"
ENV_ID = f"craftax/{NAME}"
LIMIT = 6  # max_steps_in_episode of the contract program
STEPS = LIMIT + 2  # past the limit: the next episode, and DYING's second episode reaching it
LIVING, DYING, TIMING_OUT = 0, 1, 2
UNLOCKED = 0  # index of the achievement DYING has unlocked (collect_wood)


def lanes(state, raw_params):
    """The three lanes' adapter states, stacked, from one reset state."""
    inner = state.inner
    dying = inner.replace(
        player_health=jnp.zeros_like(inner.player_health), achievements=inner.achievements.at[UNLOCKED].set(True)
    )
    timing_out = inner.replace(timestep=jnp.full_like(jnp.asarray(inner.timestep), raw_params.max_timesteps - 1))
    return jax.tree.map(lambda *xs: jnp.stack(xs), state, state.replace(inner=dying), state.replace(inner=timing_out))


def contract_program(env, params, raw, raw_params):
    """``run(key, actions [STEPS]) -> dict``: the adapter's and the raw env's steps, lane by lane."""

    def adapter_step(states, inputs):
        key, action = inputs
        step = jax.vmap(env.step, in_axes=(None, 0, None, None))
        obs, states, reward, terminated, truncated, info = step(key, states, action, params)
        out = dict(obs=obs, reward=reward, terminated=terminated, truncated=truncated,
                   final_obs=info["final_observation"], metrics=info["episode_metrics"])  # fmt: skip
        return states, out

    def raw_step(inner, inputs):
        key, action = inputs
        step_key = jax.random.key_data(jax.random.split(key)[0])  # the key gymnax's step gives step_env
        step = jax.vmap(raw.step_env, in_axes=(None, 0, None, None))
        obs, inner, reward, done, info = step(step_key, inner, action, raw_params)
        return inner, dict(obs=obs, reward=reward, done=done, info=info, achievements=inner.achievements)

    def run(key, actions):
        reset_key, steps_key = jax.random.split(key)
        first_obs, state = env.reset(reset_key, params)
        keys = jax.random.split(steps_key, STEPS)
        states = lanes(state, raw_params)
        adapter = jax.lax.scan(adapter_step, states, (keys, actions))[1]
        raw_steps = jax.lax.scan(raw_step, states.inner, (keys[:LIMIT], actions[:LIMIT]))[1]
        # the raw env's reset with the adapter's reset key, and with the keys of the auto-resets
        # after LIVING's limit and after DYING's death
        next_key = lambda t: jax.random.key_data(jax.random.split(keys[t])[1])  # noqa: E731
        reset_keys = jnp.stack([jax.random.key_data(reset_key), next_key(LIMIT - 1), next_key(0)])
        raw_reset_obs, raw_reset_state = jax.vmap(raw.reset_env, in_axes=(0, None))(reset_keys, raw_params)
        return dict(first_obs=first_obs, first_inner=state.inner, adapter=adapter, raw=raw_steps,
                    raw_reset_obs=raw_reset_obs, raw_first_inner=jax.tree.map(lambda x: x[0], raw_reset_state))  # fmt: skip

    return run


@pytest.fixture(scope="module")
def craftax_pair():
    """The adapter (``max_steps_in_episode = LIMIT``) and craftax's own env and default params."""
    from craftax.craftax_env import make_craftax_env_from_name

    env, params = jaxppo.envs.make(ENV_ID)
    raw = make_craftax_env_from_name(NAME, auto_reset=False)
    return env, params.replace(max_steps_in_episode=LIMIT), raw, raw.default_params


@pytest.fixture(scope="module")
def steps(craftax_pair):
    actions = jnp.asarray(np.random.default_rng(0).integers(0, 17, STEPS), jnp.int32)
    key = jax.random.key(0)
    out = jax.jit(contract_program(*craftax_pair))(key, actions)
    return jax.tree.map(np.asarray, out)


def lane(tree, index):
    return jax.tree.map(lambda x: x[:, index], tree)


def test_the_time_limit_truncates_with_the_raw_envs_last_observation(steps):
    living, raw = lane(steps["adapter"], LIVING), lane(steps["raw"], LIVING)
    expected = np.zeros(STEPS, bool)
    expected[LIMIT - 1] = True
    np.testing.assert_array_equal(living["truncated"], expected)
    assert not living["terminated"].any() and not raw["done"].any()
    # every observation up to the limit, the limit's final observation included, is the raw env's
    np.testing.assert_array_equal(living["final_obs"][:LIMIT], raw["obs"])
    np.testing.assert_array_equal(living["obs"][: LIMIT - 1], raw["obs"][: LIMIT - 1])
    # at the limit the observation is the next episode's first: the raw env's reset with that key
    np.testing.assert_array_equal(living["obs"][LIMIT - 1], steps["raw_reset_obs"][1])
    assert not np.array_equal(living["obs"][LIMIT - 1], living["final_obs"][LIMIT - 1])


def test_the_adapters_reset_is_the_raw_reset_and_resets_are_re_randomised(steps):
    np.testing.assert_array_equal(steps["first_obs"], steps["raw_reset_obs"][0])
    for x, y in zip(jax.tree.leaves(steps["first_inner"]), jax.tree.leaves(steps["raw_first_inner"]), strict=True):
        np.testing.assert_array_equal(x, y)
    after_limit = steps["adapter"]["obs"][LIMIT - 1, LIVING]
    after_death = steps["adapter"]["obs"][0, DYING]
    suite_contract.assert_starts_differ(steps["first_obs"], after_limit)
    suite_contract.assert_starts_differ(after_limit, after_death)


def test_rewards_and_terminations_agree_with_the_raw_env(steps):
    adapter, raw = steps["adapter"], steps["raw"]
    for index in (LIVING, TIMING_OUT):  # nothing ends these before the limit
        np.testing.assert_allclose(adapter["reward"][:LIMIT, index], raw["reward"][:, index], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(adapter["final_obs"][:LIMIT, index], raw["obs"][:, index])
    dying = lane(adapter, DYING)
    assert raw["done"][0, DYING] and raw["info"]["discount"][0, DYING] == 0.0
    assert dying["terminated"][0] and not dying["truncated"][0]
    np.testing.assert_allclose(dying["reward"][0], raw["reward"][0, DYING], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(dying["final_obs"][0], raw["obs"][0, DYING])
    np.testing.assert_array_equal(dying["obs"][0], steps["raw_reset_obs"][2])  # reset on the same step
    # the episode after the death has its own step count: LIMIT steps later it is truncated
    np.testing.assert_array_equal(np.flatnonzero(dying["truncated"]), [LIMIT])
    assert not dying["terminated"][1:].any()


def test_craftax_own_time_out_is_no_termination(steps):
    # craftax's done at timestep >= max_timesteps (discount 0, like a death) never reaches the adapter
    raw_done, raw_discount = steps["raw"]["done"][:, TIMING_OUT], steps["raw"]["info"]["discount"][:, TIMING_OUT]
    assert raw_done.all() and (raw_discount == 0.0).all()
    timing_out = lane(steps["adapter"], TIMING_OUT)
    assert not timing_out["terminated"].any()
    np.testing.assert_array_equal(np.flatnonzero(timing_out["truncated"]), [LIMIT - 1])


def test_episode_metrics_say_which_achievements_the_episode_unlocked(steps, craftax_pair):
    metrics, raw = steps["adapter"]["metrics"], steps["raw"]
    names = {name for name in raw["info"] if name.startswith("Achievements/")}
    assert set(metrics) == names and len(names) == 22
    env = craftax_pair[0]
    order = [f"Achievements/{name}" for name in env.achievements]
    # at DYING's death they are craftax's own end-of-episode values (100 = unlocked)
    for name in names:
        assert metrics[name][0, DYING] == raw["info"][name][0, DYING], name
    assert metrics[order[UNLOCKED]][0, DYING] == 100.0
    # at LIVING's truncation (where craftax's info, without a done, says 0) they are the episode's flags
    unlocked = np.stack([metrics[name][LIMIT - 1, LIVING] for name in order])
    np.testing.assert_array_equal(unlocked, raw["achievements"][LIMIT - 1, LIVING] * 100.0)


def test_spaces_and_time_limits():
    from gymnax.environments import spaces

    from jaxppo.suites.craftax import CRAFTAX_TIME_LIMIT

    for name, size, actions, limit in (("Craftax-Classic-Symbolic-v1", 1345, 17, 10_000),
                                       ("Craftax-Symbolic-v1", 8268, 43, 100_000)):  # fmt: skip
        env, params = jaxppo.envs.make(f"craftax/{name}")
        assert params.max_steps_in_episode == limit  # craftax's own max_timesteps
        assert env.craftax_params.max_timesteps == CRAFTAX_TIME_LIMIT  # craftax's time-out switched off
        space, action_space = env.observation_space(params), env.action_space(params)
        assert isinstance(space, spaces.Box) and space.shape == (size,) and space.dtype == jnp.float32
        assert isinstance(action_space, spaces.Discrete) and action_space.n == actions
    env, params = jaxppo.envs.make(ENV_ID, max_steps_in_episode=500, day_length=100, max_zombies=1)
    assert params.max_steps_in_episode == 500
    assert env.craftax_params.day_length == 100 and env.raw_env.static_env_params.max_zombies == 1
    assert jaxppo.envs.make(ENV_ID, max_timesteps=300)[1].max_steps_in_episode == 300


def test_unknown_names_and_bad_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean craftax-Classic|did you mean Craftax-Classic-Symbolic-v1"):
        jaxppo.envs.make("craftax/Craftax-Classic-Symbolic-v2")
    with pytest.raises(ConfigError, match=r"daylength rejected by craftax/.*did you mean day_length"):
        jaxppo.envs.make(ENV_ID, daylength=100)
    with pytest.raises(ConfigError, match="once"):
        jaxppo.envs.make(ENV_ID, max_timesteps=10, max_steps_in_episode=10)
    with pytest.raises(ConfigError, match="integer"):
        jaxppo.envs.make(ENV_ID, max_steps_in_episode=0)


CLI_CONFIG = dict(num_envs=4, num_steps=16, total_timesteps=128, num_minibatches=2, update_epochs=1)  # 2 iterations
CLI_LIMIT = 8  # episodes end inside each iteration, so every iteration reports achievements


def test_cli_run_reports_achievements_per_seed(tmp_path):
    # The seed-vmap check (the CLI's seeds against each seed trained alone) runs on the navix,
    # xminigrid, pgx and jumanji adapters (suite_contract); here it would cost another craftax compile.
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in CLI_CONFIG.items()]
    summary = suite_contract.cli_training_run(
        tmp_path, ENV_ID, "--seeds", 2, "--seed", 0, "--env-kwarg", f"max_steps_in_episode={CLI_LIMIT}", *flags
    )
    assert summary["env_id"] == ENV_ID and summary["seeds"] == 2
    rows = csv_rows(tmp_path / "run" / "metrics.csv")
    achievements = [name for name in rows[0] if name.startswith("episode/Achievements/")]
    assert len(achievements) == 22 and "episode/Achievements/collect_wood" in achievements
    values = np.array([[float(row[name]) for name in achievements] for row in rows])
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 100)).all()  # percentages of episodes
    # summary.json: per seed, the mean over its last iterations (here both) of each achievement
    (point,) = summary["grid_points"]
    wood = point["episode_metrics"]["Achievements/collect_wood"]
    per_seed = [np.mean([float(row["episode/Achievements/collect_wood"]) for row in rows if int(row["seed"]) == s])
                for s in range(2)]  # fmt: skip
    assert wood["n"] == 2 and wood["mean"] == pytest.approx(np.mean(per_seed))


def csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
