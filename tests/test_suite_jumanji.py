"""jumanji envs through ``jaxppo.envs.make``, checked against the raw jumanji env stepped by hand:
rewards, terminations, truncation at the env's own time limit (which jumanji reports as a
termination), final observations, fresh resets and action masks; masks through the trainer;
seed-vmap equivalence and a CLI run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jumanji")

import jaxppo  # noqa: E402
import suite_contract as contract  # noqa: E402
from jaxppo.config import ConfigError  # noqa: E402
from jaxppo.spaces import MultiDiscrete  # noqa: E402
from jaxppo.suites.base import raw_key  # noqa: E402
from utils import tree_equal  # noqa: E402

pytestmark = pytest.mark.timeout(300)

SNAKE_LIMIT = 6
ENVS = {  # small and cheap to compile; each has a mask, Snake and Cleaner their own time limit
    "snake": ("jumanji/Snake-v1", dict(num_rows=6, num_cols=6, time_limit=SNAKE_LIMIT)),
    "game2048": ("jumanji/Game2048-v1", {}),
    "cleaner": ("jumanji/Cleaner-v0", dict(time_limit=5)),  # MultiDiscrete [4, 4, 4], a mask per agent
}
LAST = 2
STEPS = 24  # every rollout's length, so each env's rollout compiles once


class Case:
    """One env: the adapter, its jitted rollout (params traced, so one compile serves every
    time limit) and the raw jumanji env's jitted reset and step."""

    def __init__(self, env_id, kwargs):
        self.env, self.params = jaxppo.envs.make(env_id, **kwargs)
        self.raw = self.env.raw_env
        self.raw_reset, self.raw_step = jax.jit(self.raw.reset), jax.jit(self.raw.step)
        self.rollout = jax.jit(self._rollout)

    def _rollout(self, key, actions, params):
        """Reset with ``key``'s first half and step once per action (keys from its second half,
        as ``suite_contract.scripted_steps``), recording the mask after every step."""
        env = self.env

        def step(carry, inputs):
            _, state = carry
            step_key, action = inputs
            obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            out = dict(obs=obs, reward=reward, terminated=terminated, truncated=truncated,
                       final_obs=info["final_observation"], mask=env.action_mask(state, params),
                       metrics=info["episode_metrics"])  # fmt: skip
            return (obs, state), out

        reset_key, step_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)
        keys = jax.random.split(step_key, actions.shape[0])
        return obs, env.action_mask(state, params), jax.lax.scan(step, (obs, state), (keys, actions))[1]

    def reference(self, key, actions, max_steps):
        """The same steps on the raw env by hand: LAST with discount 0 before the env's own time
        limit terminates; LAST at that limit, or ``max_steps`` steps, truncates; every reset
        uses the key gymnax's step draws for it (the second half of the step key)."""
        reset_key, step_key = jax.random.split(key)
        step_keys = jax.random.split(step_key, len(actions))
        state, timestep = self.raw_reset(raw_key(reset_key))
        first, steps, rows = timestep.observation, 0, []
        for i, action in enumerate(actions):
            state, timestep = self.raw_step(state, jnp.asarray(action))
            steps += 1
            last = int(timestep.step_type) == LAST
            env_limit = self.raw_time_limit is not None and steps >= self.raw_time_limit
            terminated = last and float(jnp.max(timestep.discount)) == 0.0 and not env_limit
            truncated = not terminated and (last or steps >= max_steps)
            row = dict(final_obs=timestep.observation, reward=float(jnp.sum(timestep.reward)),
                       terminated=terminated, truncated=truncated)  # fmt: skip
            if terminated or truncated:
                state, timestep = self.raw_reset(raw_key(jax.random.split(step_keys[i])[1]))
                steps = 0
            rows.append({**row, "obs": timestep.observation})
        return first, rows

    @property
    def raw_time_limit(self):
        return getattr(self.raw, "time_limit", None)

    def safe_actions(self, key, count=STEPS):
        """Actions the mask allows, from the episode ``key`` starts, cycling through the allowed ones."""
        reset_key, _ = jax.random.split(key)
        state, timestep = self.raw_reset(raw_key(reset_key))
        actions = []
        for i in range(count):
            mask = np.asarray(timestep.observation.action_mask)
            if mask.ndim == 1:
                action = np.flatnonzero(mask)[i % mask.sum()]
            else:  # one allowed action per agent
                action = np.array([np.flatnonzero(row)[i % row.sum()] for row in mask], np.int32)
            actions.append(action)
            state, timestep = self.raw_step(state, jnp.asarray(action))
        return np.stack(actions).astype(np.int32)


def fields(observation) -> dict:
    """A raw jumanji observation as the adapter's dict: every field but the action mask."""
    return {name: value for name, value in observation._asdict().items() if name != "action_mask"}


def padded_mask(observation, width):
    mask = np.asarray(observation.action_mask)
    return mask if mask.ndim == 1 else np.pad(mask, ((0, 0), (0, width - mask.shape[-1])))


def assert_matches_reference(case, key, actions, max_steps):
    params = case.params.replace(max_steps_in_episode=max_steps)
    first_obs, first_mask, out = case.rollout(key, jnp.asarray(actions), params)
    raw_first, rows = case.reference(key, actions, max_steps)
    width = int(np.asarray(first_mask).shape[-1])
    assert tree_equal(first_obs, fields(raw_first))
    np.testing.assert_array_equal(first_mask, padded_mask(raw_first, width))
    for t, row in enumerate(rows):
        at = jax.tree.map(lambda x: x[t], out)
        assert bool(at["terminated"]) == row["terminated"], t
        assert bool(at["truncated"]) == row["truncated"], t
        np.testing.assert_allclose(float(at["reward"]), row["reward"], rtol=1e-6)
        assert tree_equal(at["final_obs"], fields(row["final_obs"])), t
        assert tree_equal(at["obs"], fields(row["obs"])), t
        np.testing.assert_array_equal(at["mask"], padded_mask(row["obs"], width))
    return out


@pytest.fixture(scope="module")
def cases():
    return {}


def case_for(cases, name) -> Case:
    if name not in cases:
        cases[name] = Case(*ENVS[name])
    return cases[name]


# --------------------------------------------------------------------------- spaces
def test_spaces_mask_and_default_time_limits(cases):
    from gymnax.environments import spaces

    snake, game, cleaner = (case_for(cases, name) for name in ("snake", "game2048", "cleaner"))
    space = snake.env.observation_space(snake.params)
    assert isinstance(space, spaces.Dict) and sorted(space.spaces) == ["grid", "step_count"]  # no action_mask
    assert space.spaces["grid"].shape == (6, 6, 5) and space.spaces["step_count"].dtype == jnp.int32
    assert game.env.observation_space(game.params).spaces["board"].dtype == jnp.int32
    assert isinstance(snake.env.action_space(snake.params), spaces.Discrete)
    assert isinstance(cleaner.env.action_space(cleaner.params), MultiDiscrete)
    assert cleaner.env.action_space(cleaner.params).nvec == (4, 4, 4)
    # The env's own limit is the default; envs without one get a large one.
    assert snake.params.max_steps_in_episode == SNAKE_LIMIT and cleaner.params.max_steps_in_episode == 5
    assert game.params.max_steps_in_episode == 10_000
    spec = jaxppo.envs.make_env("jumanji/Game2048-v1")
    assert spec.has_action_mask and spec.action_size == 4 and spec.obs_shape == {"board": (4, 4)}
    assert not jaxppo.envs.make_env("jumanji/RubiksCube-v0").has_action_mask  # MultiDiscrete without a mask


def test_a_joint_mask_becomes_one_discrete_action_over_the_combinations():
    # Tetris allows only some (rotation, column) pairs: the policy picks one of 4 x num_cols.
    from gymnax.environments import spaces

    env, params = jaxppo.envs.make("jumanji/Tetris-v0", num_rows=6, num_cols=5)
    space = env.action_space(params)
    assert isinstance(space, spaces.Discrete) and space.n == 20
    np.testing.assert_array_equal(env.actions.env_action(jnp.asarray([0, 7, 19])), [[0, 0], [1, 2], [3, 4]])
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    raw_mask = np.asarray(state.inner.state.action_mask)  # Tetris keeps its [4, num_cols] mask in its state
    assert raw_mask.shape == (4, 5) and not raw_mask.all()
    np.testing.assert_array_equal(env.action_mask(state, params), raw_mask.reshape(-1))


def test_unknown_names_and_rejected_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="Snake-v1"):
        jaxppo.envs.make("jumanji/Snake-v2")
    with pytest.raises(ConfigError, match="time_limit") as error:
        jaxppo.envs.make("jumanji/Game2048-v1", time_limit=5)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="jumanji/RubiksCube-v0"):
        jaxppo.envs.make("jumanji/RubiksCube-v0", time_limit=0)  # the constructor's own ValueError


def test_an_env_that_downloads_its_data_is_refused_unless_the_data_is_given():
    with pytest.raises(ConfigError, match="Hugging Face hub.*generator") as error:
        jaxppo.envs.make("jumanji/Sokoban-v0")
    assert "\n" not in str(error.value)
    from jumanji.environments.routing.sokoban.generator import ToyGenerator

    env, params = jaxppo.envs.make("jumanji/Sokoban-v0", generator=ToyGenerator())  # levels made locally
    assert env.action_space(params).n == 4


# --------------------------------------------------------------------------- against the raw env
@pytest.mark.parametrize("name", list(ENVS))
def test_random_actions_agree_with_the_raw_env(cases, name):
    # Unmasked random actions: Snake and Cleaner die on illegal moves (Cleaner's three random
    # agents within a step or two), 2048 ignores them; the 8-step limit adds truncations.
    case = case_for(cases, name)
    key = jax.random.key(11)
    space = case.env.action_space(case.params)
    actions = np.asarray(jax.vmap(space.sample)(jax.random.split(jax.random.key(5), STEPS)))
    out = assert_matches_reference(case, key, actions, max_steps=8)
    assert np.asarray(out["terminated"]).any() or name == "game2048"
    assert np.asarray(out["truncated"]).any() or name == "cleaner"
    if name == "game2048":  # rewards: merged tiles' values
        assert float(np.asarray(out["reward"]).max()) >= 4


@pytest.mark.parametrize("name", ["snake", "cleaner"])
def test_the_envs_own_time_limit_is_a_truncation_with_the_raw_last_observation(cases, name):
    case = case_for(cases, name)
    limit = case.raw_time_limit
    key = jax.random.key(3)
    actions = case.safe_actions(key)
    out = assert_matches_reference(case, key, actions, max_steps=case.params.max_steps_in_episode)
    truncated, terminated = np.asarray(out["truncated"]), np.asarray(out["terminated"])
    assert not terminated[:limit].any() and truncated[limit - 1] and not truncated[: limit - 1].any()
    # jumanji itself ends that step with discount 0 (a termination): the adapter reports a truncation.
    state, timestep = case.raw_reset(raw_key(jax.random.split(key)[0]))
    for action in actions[:limit]:
        state, timestep = case.raw_step(state, jnp.asarray(action))
    assert int(timestep.step_type) == LAST and float(jnp.max(timestep.discount)) == 0.0
    # A longer limit in params cannot outlast the env's own; a shorter one truncates first.
    longer = assert_matches_reference(case, key, actions, max_steps=limit * 10)
    assert np.asarray(longer["truncated"])[limit - 1]
    shorter = assert_matches_reference(case, key, actions, max_steps=limit - 2)
    assert np.asarray(shorter["truncated"])[limit - 3] and not np.asarray(shorter["terminated"])[: limit - 2].any()


def test_time_limit_contract_and_fresh_resets_on_snake(cases):
    case = case_for(cases, "snake")
    key = jax.random.key(3)
    actions = jnp.asarray(case.safe_actions(key, SNAKE_LIMIT + 2))  # (its own compile: the contract's scan)
    first_obs, out = contract.assert_time_limit(case.env, case.params, SNAKE_LIMIT, actions, key=key)
    contract.assert_starts_differ(first_obs, jax.tree.map(lambda x: x[SNAKE_LIMIT - 1], out["obs"]))


@pytest.mark.parametrize("name", ["game2048", "cleaner"])
def test_episodes_start_afresh(cases, name):
    case = case_for(cases, name)
    key = jax.random.key(4)
    actions = case.safe_actions(key)
    first_obs, _, out = case.rollout(key, jnp.asarray(actions), case.params.replace(max_steps_in_episode=2))
    assert np.asarray(out["truncated"])[1]
    contract.assert_starts_differ(first_obs, jax.tree.map(lambda x: x[1], out["obs"]))


def test_episode_statistics_are_the_extras_of_the_step(cases):
    case = case_for(cases, "game2048")
    key = jax.random.key(6)
    actions = case.safe_actions(key)
    _, _, out = case.rollout(key, jnp.asarray(actions), case.params)
    _, rows = case.reference(key, actions, case.params.max_steps_in_episode)
    assert set(out["metrics"]) == {"highest_tile"} and out["metrics"]["highest_tile"].dtype == jnp.float32
    # 2048's extras: the highest tile on the board after the step
    expected = [2.0 ** np.asarray(row["final_obs"].board).max() for row in rows]
    np.testing.assert_array_equal(out["metrics"]["highest_tile"], expected)


# --------------------------------------------------------------------------- through the trainer
TINY = dict(env_id="jumanji/Game2048-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1)


def test_the_trainer_never_samples_a_masked_action():
    # An untrained policy on 2048 would choose an illegal move (one that leaves the board as it
    # is) about once in every few steps; with the mask none is sampled.
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(**{**TINY, "num_envs": 8, "num_steps": 64}))
    state = trainer.init(jax.random.key(0), jaxppo.PPOHParams())
    _, transitions = jax.jit(trainer.rollout)(state, jaxppo.PPOHParams())
    mask, action = np.asarray(transitions.action_mask), np.asarray(transitions.action)
    assert (~mask).any(), "no illegal move came up: the probe shows nothing"
    assert np.take_along_axis(mask, action[..., None], axis=-1).all()


def test_cli_trains_game2048_and_its_vmapped_seeds_equal_seeds_trained_alone(tmp_path):
    summary = contract.cli_seeds_equal_seeds_trained_alone(tmp_path, "jumanji/Game2048-v1")
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "episode/highest_tile" in header  # 2048's extras as per-episode statistics
    assert summary
