"""What the brax and MuJoCo Playground adapters share: a raw env with brax's ``State`` API.

Both suites' raw envs have ``reset(rng) -> State`` and ``step(state, action) -> State``, where
``State`` is a flax dataclass with ``obs``, ``reward``, ``done``, ``metrics`` and ``info`` (and
the physics state as ``pipeline_state`` in brax, ``data`` in Playground). ``BraxLikeEnv`` puts
such an env behind ``SuiteEnv``:

- ``raw_reset`` calls the env's own ``reset`` with the raw ``uint32`` key, so every episode,
  the ones after an auto-reset included, starts from a freshly drawn state (brax's
  ``AutoResetWrapper`` instead restores the first episode's cached start);
- ``raw_step`` calls the env's own ``step``; ``done`` there is a termination (a fall, a NaN),
  since the raw env has no time limit: that comes from ``SuiteParams.max_steps_in_episode`` and
  is reported as truncation, with the pre-reset observation kept in ``final_observation``
  (Playground's ``BraxAutoResetWrapper`` loses it);
- ``step`` takes no key: randomness inside a step comes from the env's own ``info["rng"]``;
- observations are float32, as a ``Box`` or, for a dict observation, a ``Dict`` of ``Box``;
  actions are a ``Box`` in [-1, 1] of the env's ``action_size`` (both suites scale [-1, 1] to
  the actuators' ranges themselves);
- the state kept between steps is the raw ``State`` with its zero-size arrays (MJX's empty
  contact, tendon and mocap buffers) set to ``None``, rebuilt before each step: they hold no
  data, so every leaf the trainer carries, pads and checkpoints is a real array; its Python
  scalar leaves become arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.frames import headless_mujoco
from jaxppo.suites.base import RawStep, SuiteEnv

headless_mujoco()  # MuJoCo reads MUJOCO_GL when first imported: its renderer must work headless (jaxppo.render)

# gymnax's spaces are imported in the functions that use them, after base has imported gymnax
# with its rendering-only dependencies deferred (see jaxppo.envs.import_gymnax).


def float32_obs(obs):
    """An observation (an array, or a mapping of arrays) as float32."""
    if isinstance(obs, Mapping):
        return {str(key): jnp.asarray(value, jnp.float32) for key, value in obs.items()}
    return jnp.asarray(obs, jnp.float32)


def like(new, old):
    """``new`` cast leaf by leaf to the dtypes of ``old`` where the two trees match.

    A raw step may give Python floats or other dtypes where the reset gave float32 arrays
    (brax's inverted pendulum returns ``reward=1.0``); gymnax's auto-reset selects between the
    reset and the stepped state leaf by leaf and needs the same dtypes."""
    if jax.tree.structure(new) != jax.tree.structure(old):
        return new
    return jax.tree.map(lambda n, o: jnp.asarray(n, jnp.result_type(o)), new, old)


def copy_dicts(state):
    """``state`` with fresh ``metrics`` and ``info`` dicts: some raw steps write into the dicts of
    the state they are given, which would otherwise change the caller's state."""
    return state.replace(metrics=dict(state.metrics), info=dict(state.info))


def drop_empty(state):
    """``state`` with every zero-size array replaced by ``None`` (an empty subtree), and every
    Python scalar leaf as an array of its default dtype: a raw reset may give one where the step
    gives an array (Playground's ``data.time`` is ``0.0`` after ``reset``), and the reset and
    stepped states must have the same leaf types for gymnax's auto-reset select."""

    def drop(leaf):
        if not hasattr(leaf, "size"):
            leaf = jnp.asarray(leaf, jnp.result_type(leaf))
        return None if leaf.size == 0 else leaf

    return jax.tree.map(drop, state)


def restore_empty(state, template):
    """``state`` with the zero-size arrays ``drop_empty`` removed rebuilt from ``template`` (the
    state's abstract shapes)."""

    def restore(abstract, leaf):
        if leaf is None and abstract is not None:  # a None in the raw state itself stays None
            return jnp.zeros(abstract.shape, abstract.dtype)
        return leaf

    return jax.tree.map(restore, template, state, is_leaf=lambda leaf: leaf is None)


def observation_space(obs_shape):
    """A float32 ``Box`` for an array observation's shape, a ``Dict`` of them for a mapping."""
    from gymnax.environments import spaces

    if isinstance(obs_shape, Mapping):
        return spaces.Dict({str(key): observation_space(shape) for key, shape in obs_shape.items()})
    return spaces.Box(-np.inf, np.inf, tuple(obs_shape), jnp.float32)


class BraxLikeEnv(SuiteEnv):
    """A raw env with brax's ``reset(rng) -> State`` and ``step(State, action) -> State``."""

    def __init__(self, name: str, raw_env: Any, max_steps_in_episode: int):
        super().__init__(name, max_steps_in_episode)
        self.raw_env = raw_env
        self._action_size = int(raw_env.action_size)
        # The state's shapes without running a reset (no compilation, no FLOPs, and no concrete
        # key, so making the env does not start jax's backends).
        self._template = jax.eval_shape(raw_env.reset, jax.ShapeDtypeStruct((2,), jnp.uint32))
        self._obs_shape = jax.tree.map(lambda leaf: tuple(leaf.shape), self._template.obs)

    def raw_reset(self, key: jax.Array) -> tuple[Any, Any]:
        state = self.raw_env.reset(key)
        state = state.replace(reward=jnp.asarray(state.reward, jnp.float32), done=jnp.asarray(state.done, jnp.float32))
        return float32_obs(state.obs), drop_empty(state)

    def raw_step(self, key: jax.Array, inner: Any, action: jax.Array) -> RawStep:
        del key  # the raw step is deterministic given the state (its own info["rng"] included)
        action = jnp.asarray(action, jnp.float32).reshape(self._action_size)
        before = restore_empty(inner, self._template)
        state = like(self.raw_env.step(copy_dicts(before), action), before)
        return RawStep(
            obs=float32_obs(state.obs), inner=drop_empty(state), reward=state.reward, terminated=state.done > 0
        )

    def observation_space(self, params):
        return observation_space(self._obs_shape)

    def action_space(self, params):
        from gymnax.environments import spaces

        return spaces.Box(-1.0, 1.0, (self._action_size,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self._action_size
