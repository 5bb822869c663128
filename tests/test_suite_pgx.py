"""The pgx adapter against pgx itself: ``pgx/2048`` and ``pgx/minatar-breakout`` stepped through
``jaxppo.envs.make`` and by hand with the same keys and actions (rewards, terminations, masks,
the time limit's truncation and final observation, fresh resets), masks in a trainer rollout,
seed-vmap equivalence, a CLI run, and the ``ConfigError``s."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pgx = pytest.importorskip("pgx")

import jaxppo  # noqa: E402
import suite_contract  # noqa: E402
from jaxppo.config import ConfigError  # noqa: E402
from jaxppo.envs import make  # noqa: E402

pytestmark = pytest.mark.timeout(400)


def adapter_rollout(env, params, key, steps):
    """The adapter stepped ``steps`` times, each action drawn uniformly among the legal ones."""
    reset_key, step_key, action_key = jax.random.split(key, 3)

    def step(carry, inputs):
        state = carry
        key, action_key = inputs
        mask = env.action_mask(state, params)
        action = jax.random.categorical(action_key, jnp.where(mask, 0.0, -jnp.inf))
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        metrics = info.get("episode_metrics", {})
        return state, dict(action=action, mask=mask, obs=obs, reward=reward, terminated=terminated,
                           truncated=truncated, final_obs=info["final_observation"], metrics=metrics)  # fmt: skip

    @jax.jit
    def run():
        obs, state = env.reset(reset_key, params)
        inputs = (jax.random.split(step_key, steps), jax.random.split(action_key, steps))
        return obs, jax.lax.scan(step, state, inputs)[1]

    return reset_key, jax.random.split(step_key, steps), run()


def raw_rollout(game, reset_key, step_keys, actions, limit):
    """pgx by hand: ``init``, then ``step`` with the key gymnax's step hands ``step_env`` (the first
    half of the step key; the second half draws the reset), a fresh ``init`` where the game
    terminated or ``limit`` steps were taken."""

    def step(carry, inputs):
        state, time = carry
        key, action = inputs
        step_key, next_reset_key = jax.random.split(key)
        after = game.step(state, action, jax.random.key_data(step_key))
        time = time + 1
        truncated = (time >= limit) & ~after.terminated
        done = after.terminated | truncated
        fresh = game.init(jax.random.key_data(next_reset_key))
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, after)
        out = dict(mask=carry[0].legal_action_mask, reward=after.rewards[0], terminated=after.terminated,
                   truncated=truncated, final_obs=after.observation, obs=state.observation,
                   board=getattr(after, "_board", jnp.zeros(16, jnp.int32)))  # fmt: skip
        return (state, jnp.where(done, 0, time)), out

    @jax.jit
    def run(step_keys, actions):
        first = game.init(jax.random.key_data(reset_key))
        return first.observation, jax.lax.scan(step, (first, jnp.int32(0)), (step_keys, actions))[1]

    return run(step_keys, actions)


def compare_with_raw(env_id, limit, steps, key):
    env, params = make(env_id)
    params = params.replace(max_steps_in_episode=limit)
    reset_key, step_keys, (first_obs, out) = adapter_rollout(env, params, key, steps)
    raw_first, raw = raw_rollout(pgx.make(env_id.removeprefix("pgx/")), reset_key, step_keys, out["action"], limit)
    np.testing.assert_array_equal(first_obs, raw_first)
    for name in ("mask", "reward", "terminated", "truncated", "final_obs", "obs"):
        np.testing.assert_array_equal(np.asarray(out[name]), np.asarray(raw[name]), err_msg=name)
    return out, raw


@pytest.fixture(scope="module")
def play2048():
    return compare_with_raw("pgx/2048", limit=100, steps=300, key=jax.random.key(1))


@pytest.fixture(scope="module")
def breakout():
    return compare_with_raw("pgx/minatar-breakout", limit=30, steps=160, key=jax.random.key(2))


def test_2048_agrees_with_raw_pgx_on_rewards_terminations_and_masks(play2048):
    out, raw = play2048
    assert np.asarray(out["terminated"]).any(), "no board filled up: the test sees no termination"
    assert np.asarray(out["truncated"]).any(), "no episode reached the limit"
    assert not np.asarray(out["mask"]).all(), "every action was always legal: the masks went untested"
    assert (np.asarray(out["reward"]) > 0).any()
    # max_tile: the largest tile of the board the episode ended on
    done = np.asarray(out["terminated"] | out["truncated"])
    largest = 2.0 ** np.asarray(raw["board"]).max(axis=-1)
    np.testing.assert_array_equal(np.asarray(out["metrics"]["max_tile"])[done], largest[done])


def test_breakout_agrees_with_raw_pgx_including_sticky_actions(breakout):
    out, _ = breakout
    assert np.asarray(out["terminated"]).sum() >= 2
    assert np.asarray(out["truncated"]).any()
    assert np.asarray(out["mask"]).all()  # MinAtar's minimal action set: every action always legal


def test_at_the_time_limit_the_step_is_truncated_with_the_raw_last_observation(play2048, breakout):
    for out, raw in (play2048, breakout):
        truncated, terminated = np.asarray(out["truncated"]), np.asarray(out["terminated"])
        assert not (truncated & terminated).any()
        at_limit = np.flatnonzero(truncated)
        final = np.asarray(out["final_obs"])[at_limit]
        np.testing.assert_array_equal(final, np.asarray(raw["final_obs"])[at_limit])
        assert not np.array_equal(final, np.asarray(out["obs"])[at_limit])  # reset, not the final obs


def test_time_limit_contract_on_breakout():
    env, params = make("pgx/minatar-breakout")
    # The ball needs six steps to fall from row 3 to the bottom: no episode ends within 4 steps.
    first_obs, out = suite_contract.assert_time_limit(env, params, 4, jnp.zeros(9, jnp.int32))
    assert not np.asarray(out["terminated"]).any()


def test_2048_episodes_start_from_fresh_random_boards(play2048):
    out, _ = play2048
    done = np.flatnonzero(np.asarray(out["terminated"] | out["truncated"]))
    starts = np.asarray(out["obs"])[done]
    assert len(starts) >= 2
    suite_contract.assert_starts_differ(starts[0], starts[1])
    assert (starts.reshape(len(starts), 16, 31)[:, :, 1:].sum(axis=(1, 2)) == 2).all()  # two tiles


def test_freeways_clock_is_a_truncation():
    env, params = make("pgx/minatar-freeway")
    assert params.max_steps_in_episode == 2501
    _, state = env.reset_env(jax.random.key(0), params)
    state = state.replace(inner=state.inner.replace(_terminate_timer=jnp.int32(0)))  # one step left

    @jax.jit
    def last_step(state):  # step_env alone: gymnax's step would also compile the reset
        _, state, _, terminated, _ = env.step_env(jax.random.key(1), state, 0, params)
        return terminated, env.is_truncated(state, params)

    terminated, truncated = last_step(state)
    assert bool(truncated) and not bool(terminated)


def test_a_trainer_rollout_never_samples_an_illegal_2048_move():
    config = jaxppo.PPOConfig(env_id="pgx/2048", num_envs=8, num_steps=64, total_timesteps=8 * 64)
    trainer = jaxppo.make_trainer(config)
    hparams = jaxppo.PPOHParams()
    state = trainer.init(jax.random.key(0), hparams)
    _, transitions = jax.jit(trainer.rollout)(state, hparams)
    mask, action = np.asarray(transitions.action_mask), np.asarray(transitions.action)
    assert not mask.all(), "no illegal move was on offer: the probe shows nothing"
    assert np.take_along_axis(mask, action[..., None], axis=-1).all()
    assert (np.asarray(transitions.reward) >= 0).all()  # pgx's illegal-move penalty is -1


def test_cli_training_run_and_its_vmapped_seeds_equal_seeds_trained_alone(tmp_path):
    summary = suite_contract.cli_seeds_equal_seeds_trained_alone(tmp_path, "pgx/minatar-breakout")
    assert summary["env_id"] == "pgx/minatar-breakout"


def test_every_single_agent_id_is_a_one_player_game():
    from jaxppo.suites import pgx as adapter

    for name in adapter.SINGLE_AGENT_IDS:
        assert pgx.make(name).num_players == 1, name


def test_zero_size_arrays_are_kept_out_of_the_state():
    # MinAtar Asterix's state holds a zero-size array, which the adapter keeps out of the state.
    env, params = make("pgx/minatar-asterix")
    key = jax.random.key(0)
    state = jax.eval_shape(lambda k: env.reset(k, params)[1], key)
    assert all(leaf.size > 0 for leaf in jax.tree.leaves(state))
    stepped = jax.eval_shape(lambda k, s: env.step(k, s, 0, params)[1], key, state)
    assert jax.tree.structure(stepped) == jax.tree.structure(state)


def test_kwargs_reach_the_game():
    env, params = make("pgx/minatar-breakout", sticky_action_prob=0.0, use_minimal_action_set=False,
                       max_steps_in_episode=1000)  # fmt: skip
    assert env.game.sticky_action_prob == 0.0 and env.num_actions == 6
    assert params.max_steps_in_episode == 1000
    assert make("pgx/2048")[1].max_steps_in_episode == 100_000


def test_unknown_multi_player_and_bad_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="pgx/minatar-breakout"):
        make("pgx/breakout")
    with pytest.raises(ConfigError, match="several players.*pgx/2048"):
        make("pgx/chess")
    with pytest.raises(ConfigError, match="sticky"):
        make("pgx/minatar-breakout", sticky=0.0)
    with pytest.raises(ConfigError, match="size"):
        make("pgx/2048", size=5)


def test_breakout_without_sticky_actions_is_gymnax_breakout_minatar():
    # Both implement MinAtar Breakout with the same channels (paddle, ball, trail, bricks) and draw
    # the ball's start alike; pgx adds MinAtar's sticky actions (0.1), which are switched off here.
    pgx_env, pgx_params = make("pgx/minatar-breakout", sticky_action_prob=0.0, max_steps_in_episode=50)
    gym_env, gym_params = make("Breakout-MinAtar")
    gym_params = gym_params.replace(max_steps_in_episode=50)
    actions = jax.random.randint(jax.random.key(4), (120,), 0, 3)
    pgx_first, pgx_out = suite_contract.scripted_steps(pgx_env, pgx_params, jax.random.key(5), actions)
    gym_first, gym_out = suite_contract.scripted_steps(gym_env, gym_params, jax.random.key(5), actions)
    np.testing.assert_array_equal(np.asarray(pgx_first, np.float32), gym_first)
    assert np.asarray(gym_out["terminated"]).sum() >= 2
    for name in ("obs", "final_obs", "reward", "terminated", "truncated"):
        np.testing.assert_array_equal(np.asarray(pgx_out[name], np.float32), np.asarray(gym_out[name], np.float32))
