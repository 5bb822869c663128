"""``SuiteEnv``: what every suite adapter shares, as a gymnax 1.0 ``Environment``.

A subclass wraps one raw env of its suite and implements two methods, both on the suite's own
state and without the suite's auto-reset or time-limit wrappers:

- ``raw_reset(key) -> (obs, inner_state)``;
- ``raw_step(key, inner_state, action) -> RawStep``: the observation after the step, the new
  state, the reward, ``terminated`` (an MDP end, discount 0) and, where the suite has its own
  time limit that cannot be switched off, ``truncated`` (its limit reached, discount 1).

Everything else is here and in gymnax's ``Environment.step``, which calls ``step_env`` and then
``reset_env`` with a fresh key *on the same step*, selects the reset state where the episode
ended, and returns the pre-reset observation in ``info["final_observation"]``:

- ``SuiteState.time`` counts the episode's steps; ``truncated`` is ``time >=
  params.max_steps_in_episode`` (the suite's own limit by default; change it with
  ``params.replace(max_steps_in_episode=...)``), or the suite's own truncation, and never
  where the step also terminated.
- keys reach the suite as raw ``uint32`` key data (brax's wrappers read ``key.shape``).
- a suite's per-episode statistics go in ``info["episode_metrics"]`` (``{name: float32}``, read
  where the episode ended); the trainer reports their mean over each iteration's completed
  episodes as metrics ``episode/<name>``.

A subclass whose env restricts actions defines ``action_mask(state, params)``, from
``state.inner``; the trainer masks logits with it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxppo.gymnax_import import EPISODE_METRICS, import_gymnax

import_gymnax()  # gymnax with its rendering-only imports deferred (see gymnax_import.import_gymnax)
from gymnax.environments import environment  # noqa: E402

__all__ = ["EPISODE_METRICS", "RawStep", "SuiteEnv", "SuiteParams", "SuiteState", "raw_key"]


@struct.dataclass
class SuiteState:
    inner: Any  # the suite's own state
    time: jax.Array  # int32: steps taken in this episode
    terminated: jax.Array  # bool: the last step ended the MDP
    suite_truncated: jax.Array  # bool: the last step reached the suite's own time limit


@struct.dataclass
class SuiteParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class RawStep(NamedTuple):
    obs: Any
    inner: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array | bool = False
    info: dict | None = None


def raw_key(key: jax.Array) -> jax.Array:
    """A typed key as the ``uint32[2]`` key data most suites expect; raw keys pass through."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


class SuiteEnv(environment.Environment):
    """A raw suite env behind gymnax's API, with jaxppo's auto-reset and time-limit semantics."""

    def __init__(self, name: str, max_steps_in_episode: int):
        self._name = name
        self._max_steps_in_episode = int(max_steps_in_episode)

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> SuiteParams:
        return SuiteParams(max_steps_in_episode=self._max_steps_in_episode)

    def raw_reset(self, key: jax.Array) -> tuple[Any, Any]:
        raise NotImplementedError

    def raw_step(self, key: jax.Array, inner: Any, action: jax.Array) -> RawStep:
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: SuiteParams) -> tuple[Any, SuiteState]:
        obs, inner = self.raw_reset(raw_key(key))
        false = jnp.zeros((), bool)
        return obs, SuiteState(inner=inner, time=jnp.zeros((), jnp.int32), terminated=false, suite_truncated=false)

    def step_env(self, key: jax.Array, state: SuiteState, action, params: SuiteParams):
        step = self.raw_step(raw_key(key), state.inner, action)
        terminated = jnp.asarray(step.terminated).astype(bool)
        new_state = SuiteState(
            inner=step.inner,
            time=state.time + 1,
            terminated=terminated,
            suite_truncated=jnp.asarray(step.truncated).astype(bool),
        )
        return step.obs, new_state, jnp.asarray(step.reward, jnp.float32), terminated, dict(step.info or {})

    def is_truncated(self, state: SuiteState, params: SuiteParams) -> jax.Array:
        time_limit = jnp.logical_or(state.time >= params.max_steps_in_episode, state.suite_truncated)
        return jnp.logical_and(time_limit, ~state.terminated)

    def is_terminated(self, state: SuiteState, params: SuiteParams) -> jax.Array:
        return state.terminated
