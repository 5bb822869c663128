"""pgx's single-agent games (``pgx/2048``, ``pgx/minatar-breakout``, ...) as gymnax environments.

pgx's API is ``init(key) -> State`` and ``step(state, action, key) -> State``, with
``state.observation``, ``state.rewards[num_players]``, ``state.terminated``, ``state.truncated``
and ``state.legal_action_mask``; pgx has no auto-reset (a finished state only repeats itself with
zero rewards), so nothing of pgx's has to be worked around: ``SuiteEnv`` resets on the same step
with a fresh key and keeps the pre-reset observation in ``info["final_observation"]``.

- Ids: ``pgx/<pgx env id>`` for the games with one player: ``2048``, ``minatar-asterix``,
  ``minatar-breakout``, ``minatar-freeway``, ``minatar-seaquest``, ``minatar-space_invaders``
  (the MinAtar games ship with pgx itself since 2.0). pgx's multi-player games (chess, go, ...)
  are a ``ConfigError`` naming these.
- Rewards: ``state.rewards[0]``, the only player's.
- Termination and truncation: ``state.terminated`` is ``terminated``; ``state.truncated`` (which
  pgx's single-agent games never set) is the suite's truncation. MinAtar Freeway ends itself after
  2501 steps, a game clock that is not in its observation: that end is reported as a truncation
  (bootstrapped), as gymnax's ``Freeway-MinAtar`` does, and is its default time limit. pgx's other
  games have no time limit of their own, so ``max_steps_in_episode`` defaults to
  ``DEFAULT_MAX_STEPS`` (100 000 steps); the kwarg ``max_steps_in_episode`` (or
  ``params.replace``) changes it.
- Actions: ``Discrete(num_actions)``; ``action_mask`` returns ``state.legal_action_mask``, so the
  trainer only samples legal actions. pgx ends an episode with reward -1 on an illegal action
  (2048: a move that shifts no tile); with the mask on, this never happens. MinAtar's minimal
  action sets allow every action in every state.
- Observations: pgx's bool planes (2048: ``(4, 4, 31)``, one-hot tile exponents; MinAtar:
  ``(10, 10, channels)``) as a bool ``Box`` in [0, 1]; the trainer reads them as float32.
- kwargs: ``max_steps_in_episode``; the rest reach the game's constructor (MinAtar:
  ``sticky_action_prob``, 0.1 by default as in MinAtar, and ``use_minimal_action_set``).
- Episode statistics: 2048 reports ``max_tile`` (the largest tile on the final board).
- State: pgx's state without its zero-size arrays (MinAtar Asterix's ``_shot_timer``), rebuilt
  before each step, as in ``_brax_like``: every leaf the trainer carries, pads and checkpoints
  holds data.
"""

from __future__ import annotations

import difflib
import typing

import jax
import jax.numpy as jnp
import pgx

from jaxppo.config import ConfigError
from jaxppo.gymnax_import import import_gymnax
from jaxppo.suites._brax_like import drop_empty, restore_empty
from jaxppo.suites.base import EPISODE_METRICS, RawStep, SuiteEnv, SuiteParams

spaces = import_gymnax().environments.spaces  # gymnax, its rendering-only imports deferred

SINGLE_AGENT_IDS = (
    "2048",
    "minatar-asterix",
    "minatar-breakout",
    "minatar-freeway",
    "minatar-seaquest",
    "minatar-space_invaders",
)
DEFAULT_MAX_STEPS = 100_000  # pgx's games have no time limit of their own (but Freeway's clock)
FREEWAY_STEPS = 2501  # MinAtar Freeway's clock: 2500, counted down once per step, ends it below 0
CLOCKED_GAMES = {"minatar-freeway": FREEWAY_STEPS}  # games whose only end is a clock: a truncation


class PgxEnv(SuiteEnv):
    """One single-agent pgx game, stepped without any wrapper."""

    def __init__(self, name: str, game: pgx.Env, max_steps_in_episode: int):
        super().__init__(f"pgx/{name}", max_steps_in_episode)
        self.game = game
        self.clocked = name in CLOCKED_GAMES  # the game's end is its clock's: report a truncation
        self.report_max_tile = name == "2048"
        first = jax.eval_shape(game.init, jax.ShapeDtypeStruct((2,), jnp.uint32))
        self._template = first  # the state's shapes, to rebuild what drop_empty removes
        self._obs_shape = tuple(first.observation.shape)
        self._num_actions = int(first.legal_action_mask.shape[0])

    def raw_reset(self, key):
        state = self.game.init(key)
        return state.observation, drop_empty(state)

    def raw_step(self, key, inner, action):
        state = self.game.step(restore_empty(inner, self._template), jnp.asarray(action, jnp.int32), key)
        terminated, truncated = state.terminated, state.truncated
        if self.clocked:
            terminated, truncated = jnp.zeros((), bool), truncated | state.terminated
        info = {EPISODE_METRICS: {"max_tile": max_tile(state.observation)}} if self.report_max_tile else None
        return RawStep(state.observation, drop_empty(state), state.rewards[0], terminated, truncated, info)

    def action_mask(self, state, params: SuiteParams | None = None) -> jax.Array:
        return state.inner.legal_action_mask

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def action_space(self, params: SuiteParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: SuiteParams | None = None) -> spaces.Box:
        return spaces.Box(0, 1, self._obs_shape, jnp.bool_)


def max_tile(observation: jax.Array) -> jax.Array:
    """2048's largest tile (2, 4, ..., 0 on an empty board) from its one-hot exponent planes."""
    exponent = jnp.argmax(observation, axis=-1).max()
    return jnp.where(exponent > 0, 2.0**exponent, 0.0).astype(jnp.float32)


def make(name: str, max_steps_in_episode: int | None = None, **env_kwargs):
    """``(env, params)`` for ``pgx/<name>``; ``env_kwargs`` reach the game's constructor."""
    if name not in SINGLE_AGENT_IDS:
        raise ConfigError(unknown_name_message(name))
    game = pgx.make(name)
    if env_kwargs:
        try:
            game = type(game)(**env_kwargs)
        except TypeError as error:
            raise ConfigError(f"env_kwargs {sorted(env_kwargs)} rejected by pgx/{name}: {error}") from None
    limit = CLOCKED_GAMES.get(name, DEFAULT_MAX_STEPS) if max_steps_in_episode is None else int(max_steps_in_episode)
    if limit < 1:
        raise ConfigError(f"pgx/{name}: max_steps_in_episode must be at least 1, got {limit}")
    env = PgxEnv(name, game, limit)
    return env, env.default_params


def unknown_name_message(name: str) -> str:
    ids = ", ".join(f"pgx/{i}" for i in SINGLE_AGENT_IDS)
    if name in typing.get_args(pgx.EnvId):
        return f"pgx/{name} is a game for several players; jaxppo trains one agent: {ids}"
    close = difflib.get_close_matches(name, SINGLE_AGENT_IDS, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(f'pgx/{c}' for c in close)}? " if close else ""
    return f"unknown pgx env {name!r}; {hint}single-agent pgx envs: {ids}"
