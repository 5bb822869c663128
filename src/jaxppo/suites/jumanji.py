"""jumanji envs (``jumanji/Snake-v1``, ``jumanji/Game2048-v1``, ...) as gymnax ``Environment`` instances.

``make(name, **env_kwargs)`` builds ``jumanji.make(name, **env_kwargs)`` and wraps the raw env,
never jumanji's ``AutoResetWrapper``: that one puts the reset observation in place of the final
one (kept only in ``extras["next_obs"]`` with ``next_obs_in_extras=True``), draws the next
episode's key from the ended episode's state, and passes an env's time-out on as a discount-0
termination. The base class (``suites.base.SuiteEnv``) resets on the same step with a fresh
key and keeps the final observation in ``info["final_observation"]``.

Step API. jumanji's ``reset(key) -> (state, TimeStep)`` and ``step(state, action) -> (state,
TimeStep)`` with ``TimeStep(step_type, reward, discount, observation, extras)``. The inner
state is ``JumanjiInner(state, action_mask, steps)``: the jumanji state, the mask of the last
observation and the episode's step count. jumanji draws its in-episode randomness (Snake's
fruit, 2048's new tiles) from the key kept in its state, so the step key is unused; every
reset gets a fresh one.

Termination and truncation. A ``LAST`` step with discount 0 is a termination, one with a
discount above 0 a truncation. Most jumanji envs with a ``time_limit`` (Snake, Tetris, Maze,
RubiksCube, Cleaner, Connector, PacMan, ...) end at it with ``termination`` (discount 0), so a
``LAST`` step at or after the env's own ``time_limit`` is reported as a truncation too. A real
termination on exactly that step cannot be told apart from the time-out and counts as a
truncation (the value there is bootstrapped from the final observation). Multi-agent envs:
the discount is the largest of the agents' (the episode goes on while one agent's does) and the
reward is their sum, as jumanji's ``MultiToSingleWrapper`` does.

Time limit. ``max_steps_in_episode`` defaults to the env's own ``time_limit`` (change it with
``env_kwargs`` such as ``time_limit=50``, which both limits follow), so the two counters agree.
A shorter ``params.max_steps_in_episode`` truncates earlier; a longer one cannot outlast the
env's own limit, which still truncates. Envs without a time limit (Game2048, Knapsack, TSP,
BinPack, ...) end on their own; their default limit is ``DEFAULT_MAX_STEPS`` (10 000), far
beyond a 2048 game of a learned policy (a few hundred to a few thousand moves), and it also
bounds an evaluation episode.

Observations. A NamedTuple (or nested) observation is a gymnax ``spaces.Dict`` of ``Box``
leaves, one per field, each with its spec's dtype and bounds (bool and int fields keep their
dtype; uint8 stays uint8, which jaxppo scales by 1/255); nested fields are joined with ``_``
(Maze's ``agent_position_row``). An array observation is a ``Box``. The ``action_mask`` field
is not part of the policy's observation: it is served by ``action_mask(state, params)``, with
which the trainer masks the logits. In jumanji's envs the mask is a function of the rest of the
observation (the board, the grid), and jumanji's own actor-critic networks also use it only to
mask logits, so feeding it to the network as well would add inputs and no information.

Actions and masks.

- ``DiscreteArray(n)`` -> ``spaces.Discrete(n)``, the mask ``[n]`` as it is.
- ``MultiDiscreteArray(nvec)`` -> ``jaxppo.spaces.MultiDiscrete(nvec)``; a mask with one row per
  sub-action ``[len(nvec), k]`` (the multi-agent envs: Cleaner, Connector, LevelBasedForaging,
  MMST, RobotWarehouse, JobShop) is served padded to ``[len(nvec), max(nvec)]``.
- a ``MultiDiscreteArray`` whose mask is joint, shaped as ``nvec`` itself (BinPack,
  FlatPack, Minesweeper, Sudoku, Tetris: only some combinations are legal), cannot be written
  as one mask per sub-action; the action is then one ``spaces.Discrete(prod(nvec))`` over the
  combinations, its mask the joint mask flattened (C order), and the adapter unravels the
  chosen index into the sub-actions, as jumanji's own networks pick one joint index.
- an integer ``BoundedArray`` of shape ``[k]`` (MultiCVRP) is a ``MultiDiscrete`` of
  ``maximum - minimum + 1`` values each, shifted by ``minimum``; a float ``BoundedArray``
  (SearchAndRescue) is a ``spaces.Box``.

Per-episode statistics. The scalar entries of the last ``TimeStep.extras`` of an episode (2048's
``highest_tile``, BinPack's ``volume_utilization``, ...) are reported as ``episode/<name>``.

Keys reach jumanji as raw ``uint32[2]`` key data (``base.raw_key``), which is what it expects.

Downloads. An env whose constructor downloads its data (Sokoban's levels, from the Hugging Face
hub) is listed in ``NEEDS_DOWNLOAD`` and is a ``ConfigError`` unless the constructor argument
that supplies the data instead is given: jaxppo never downloads.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import ConfigError
from jaxppo.gymnax_import import import_gymnax
from jaxppo.spaces import MultiDiscrete
from jaxppo.suites.base import EPISODE_METRICS, RawStep, SuiteEnv

import_gymnax()  # gymnax with its rendering-only imports deferred (see gymnax_import.import_gymnax)
from gymnax.environments import spaces  # noqa: E402

DEFAULT_MAX_STEPS = 10_000  # the time limit of envs without one of their own
MASK_FIELD = "action_mask"
LAST = 2  # jumanji's StepType.LAST
# jumanji envs whose mask is joint over the sub-actions, for the rare mask shape that reads
# both ways (nvec == [2, k]: a [2, k] mask could also be one row per sub-action).
JOINT_MASK_ENVS = ("BinPack", "FlatPack", "Minesweeper", "Sudoku", "Tetris")


class Download(NamedTuple):
    """A registered env whose constructor downloads data, which jaxppo never does."""

    what: str  # what it downloads, and from where
    kwarg: str  # the constructor argument that supplies the data instead
    fix: str  # how to supply it


# jumanji envs whose default constructor downloads data at run time (offline machines and CI have
# no network); naming one is a ConfigError unless the kwarg that replaces the download is given.
NEEDS_DOWNLOAD = {
    "Sokoban-v0": Download(
        "its levels (DeepMind's Boxoban set) are downloaded from the Hugging Face hub at run time",
        "generator",
        "from Python, pass a level generator instead: env_kwargs generator=<a jumanji Sokoban generator, "
        "such as jumanji.environments.routing.sokoban.generator.ToyGenerator()>",
    ),
}


class JumanjiInner(NamedTuple):
    state: Any  # jumanji's own state
    action_mask: Any  # the last observation's action_mask field (None when the env has none)
    steps: jax.Array  # int32: steps taken in this episode, to recognise the env's own time limit


@dataclasses.dataclass(frozen=True)
class ActionLayout:
    """How the policy's action maps onto the jumanji action, and its mask onto jaxppo's."""

    space: Any  # the action space the policy sees
    dtype: Any  # of the jumanji action
    minimum: Any = 0  # added to the policy's action (integer BoundedArray actions)
    joint_nvec: tuple[int, ...] | None = None  # the policy picks one index of prod(nvec)
    mask_width: int | None = None  # per-sub-action mask rows padded to this width

    def env_action(self, action: jax.Array) -> jax.Array:
        if self.joint_nvec is not None:
            action = jnp.stack(jnp.unravel_index(action, self.joint_nvec), axis=-1)
        return (action + self.minimum).astype(self.dtype)

    def mask(self, raw_mask: jax.Array) -> jax.Array:
        raw_mask = jnp.asarray(raw_mask, bool)
        if self.joint_nvec is not None:
            return raw_mask.reshape(-1)
        if self.mask_width is not None and raw_mask.shape[-1] < self.mask_width:
            return jnp.pad(raw_mask, ((0, 0), (0, self.mask_width - raw_mask.shape[-1])))
        return raw_mask


def make(name: str, **env_kwargs):
    """``(env, env_params)`` for the registered jumanji env ``name``; ``env_kwargs`` reach its
    constructor through ``jumanji.make``."""
    import jumanji

    registered = sorted(jumanji.registered_environments())
    if name not in registered:
        close = difflib.get_close_matches(name, registered, n=3, cutoff=0.4)
        hint = (
            f"did you mean {', '.join('jumanji/' + c for c in close)}?"
            if close
            else f"jumanji has {', '.join(registered)}"
        )
        raise ConfigError(f"unknown jumanji env {name!r}; {hint}")
    download = NEEDS_DOWNLOAD.get(name)
    if download is not None and download.kwarg not in env_kwargs:
        raise ConfigError(f"jumanji/{name} needs a download: {download.what}, which jaxppo does not do; {download.fix}")
    try:
        raw_env = jumanji.make(name, **env_kwargs)
    except (TypeError, ValueError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"env_kwargs {env_kwargs!r} rejected by jumanji/{name}: {first_line}") from None
    env_class = MaskedJumanjiEnv if _mask_spec(raw_env.observation_spec) is not None else JumanjiEnv
    env = env_class(name, raw_env)
    return env, env.default_params


class JumanjiEnv(SuiteEnv):
    """One raw jumanji env behind ``SuiteEnv`` (an env without an action mask)."""

    def __init__(self, name: str, raw_env):
        self.raw_env = raw_env
        limit = getattr(raw_env, "time_limit", None)
        self.time_limit = int(limit) if isinstance(limit, (int, np.integer)) and limit > 0 else None
        super().__init__(f"jumanji/{name}", self.time_limit or DEFAULT_MAX_STEPS)
        self.obs_paths = observation_leaf_paths(raw_env.observation_spec)  # None: an array observation
        mask_spec = _mask_spec(raw_env.observation_spec)
        mask_shape = None if mask_spec is None else tuple(mask_spec.shape)
        self.actions = action_layout(raw_env.action_spec, mask_shape, type(raw_env).__name__, self.name)

    def raw_reset(self, key: jax.Array):
        state, timestep = self.raw_env.reset(key)
        inner = JumanjiInner(state, self._raw_mask(timestep.observation), jnp.zeros((), jnp.int32))
        return self._observation(timestep.observation), inner

    def raw_step(self, key: jax.Array, inner: JumanjiInner, action) -> RawStep:
        del key  # jumanji steps with the key in its own state
        state, timestep = self.raw_env.step(inner.state, self.actions.env_action(action))
        steps = inner.steps + 1
        last = timestep.step_type == LAST
        # Multi-agent discounts: the episode goes on while any agent's does.
        discount = jnp.max(jnp.asarray(timestep.discount))
        own_limit = steps >= self.time_limit if self.time_limit is not None else False
        truncated = last & ((discount > 0) | own_limit)
        return RawStep(
            obs=self._observation(timestep.observation),
            inner=JumanjiInner(state, self._raw_mask(timestep.observation), steps),
            reward=jnp.sum(jnp.asarray(timestep.reward, jnp.float32)),  # multi-agent: the team's reward
            terminated=last & ~truncated,
            truncated=truncated,
            info={EPISODE_METRICS: scalar_extras(timestep.extras)},
        )

    def observation_space(self, params):
        if self.obs_paths is None:
            return box(self.raw_env.observation_spec)
        return spaces.Dict({key: box(spec) for key, (_, spec) in self.obs_paths.items()})

    def action_space(self, params):
        return self.actions.space

    def _observation(self, observation):
        """The policy's observation: a dict of the fields (without the mask), or the array."""
        if self.obs_paths is None:
            return jnp.asarray(observation, self.raw_env.observation_spec.dtype)
        # Each leaf in its spec's dtype, so reset and step observations match exactly.
        return {key: jnp.asarray(field(observation, path), spec.dtype) for key, (path, spec) in self.obs_paths.items()}

    def _raw_mask(self, observation):
        return None


class MaskedJumanjiEnv(JumanjiEnv):
    """A jumanji env whose observation has an ``action_mask`` field: the trainer masks with it."""

    def _raw_mask(self, observation):
        return jnp.asarray(getattr(observation, MASK_FIELD), bool)

    def action_mask(self, state, params) -> jax.Array:
        """The actions allowed now, as ``actions.space`` numbers them (see the module docstring)."""
        return self.actions.mask(state.inner.action_mask)


# --------------------------------------------------------------------------- observations
def _children(spec) -> dict:
    """A nested jumanji ``Spec``'s children by field name (jumanji keeps them in ``_specs``)."""
    return dict(spec._specs)


def _mask_spec(observation_spec):
    from jumanji import specs

    if isinstance(observation_spec, specs.Array):
        return None
    return _children(observation_spec).get(MASK_FIELD)


def observation_leaf_paths(observation_spec) -> dict[str, tuple[tuple[str, ...], Any]] | None:
    """``{key: (field path, leaf spec)}`` of a structured observation, without the action mask
    (keys: the path joined with ``_``); ``None`` for an array observation."""
    from jumanji import specs

    if isinstance(observation_spec, specs.Array):
        return None

    def walk(spec, path):
        if isinstance(spec, specs.Array):
            return [(path, spec)]
        return [leaf for name, child in _children(spec).items() for leaf in walk(child, (*path, name))]

    leaves = [(path, spec) for path, spec in walk(observation_spec, ()) if path != (MASK_FIELD,)]
    paths = {"_".join(path): (path, spec) for path, spec in leaves}
    if len(paths) != len(leaves):
        raise ConfigError(f"jumanji observation fields {[p for p, _ in leaves]} collide once joined with '_'")
    if not paths:
        raise ConfigError("the jumanji observation has no field besides its action mask")
    return paths


def field(observation, path: tuple[str, ...]):
    for name in path:
        observation = getattr(observation, name)
    return observation


def box(spec) -> spaces.Box:
    """A jumanji ``Array`` / ``BoundedArray`` spec as a gymnax ``Box`` of the same dtype."""
    shape, dtype = tuple(spec.shape), np.dtype(spec.dtype)
    if hasattr(spec, "minimum"):
        low, high = np.asarray(spec.minimum), np.asarray(spec.maximum)
    elif dtype == np.bool_:
        low, high = np.asarray(False), np.asarray(True)
    elif np.issubdtype(dtype, np.integer):
        low, high = np.asarray(np.iinfo(dtype).min), np.asarray(np.iinfo(dtype).max)
    else:
        low, high = np.asarray(-np.inf), np.asarray(np.inf)
    return spaces.Box(
        np.broadcast_to(low, shape).astype(dtype), np.broadcast_to(high, shape).astype(dtype), shape, dtype
    )


def scalar_extras(extras) -> dict:
    """The scalar numeric entries of a ``TimeStep.extras``, as float32 (per-episode statistics)."""
    metrics = {}
    for name, value in (extras or {}).items():
        value = jnp.asarray(value) if isinstance(value, (jax.Array, np.ndarray, int, float, bool)) else None
        if value is not None and value.shape == () and (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == bool):
            metrics[str(name)] = value.astype(jnp.float32)
    return metrics


# --------------------------------------------------------------------------- actions
def action_layout(action_spec, mask_shape: tuple[int, ...] | None, env_class: str, name: str) -> ActionLayout:
    """The policy's action space for a jumanji action spec and its observation's mask shape."""
    from jumanji import specs

    dtype = np.dtype(action_spec.dtype)
    if isinstance(action_spec, specs.DiscreteArray):
        n = int(action_spec.num_values)
        if mask_shape not in (None, (n,)):
            raise ConfigError(f"{name}: action mask of shape {mask_shape} for {n} discrete actions")
        return ActionLayout(spaces.Discrete(n), dtype)
    if isinstance(action_spec, specs.MultiDiscreteArray):
        return _multi_discrete_layout(np.asarray(action_spec.num_values), 0, dtype, mask_shape, env_class, name)
    if isinstance(action_spec, specs.BoundedArray) and np.issubdtype(dtype, np.integer):
        low = np.broadcast_to(np.asarray(action_spec.minimum), action_spec.shape)
        high = np.broadcast_to(np.asarray(action_spec.maximum), action_spec.shape)
        return _multi_discrete_layout(high - low + 1, jnp.asarray(low, jnp.int32), dtype, mask_shape, env_class, name)
    if isinstance(action_spec, specs.BoundedArray) and mask_shape is None:
        return ActionLayout(box(action_spec), dtype)
    raise ConfigError(
        f"{name}: jumanji action spec {action_spec!r} is not supported "
        f"(DiscreteArray, MultiDiscreteArray, integer or float BoundedArray)"
    )


def _multi_discrete_layout(nvec, minimum, dtype, mask_shape, env_class: str, name: str) -> ActionLayout:
    if nvec.ndim != 1:
        raise ConfigError(f"{name}: a multi-discrete jumanji action of shape {nvec.shape} is not supported (1-D only)")
    nvec = tuple(int(n) for n in nvec)
    per_sub_action = (
        mask_shape is not None and len(mask_shape) == 2 and mask_shape[0] == len(nvec) and mask_shape[1] <= max(nvec)
    )
    joint = mask_shape == nvec
    if joint and (not per_sub_action or env_class in JOINT_MASK_ENVS):
        return ActionLayout(spaces.Discrete(math.prod(nvec)), dtype, minimum, joint_nvec=nvec)
    if mask_shape is not None and not per_sub_action:
        raise ConfigError(
            f"{name}: action mask of shape {mask_shape} fits neither one row per sub-action "
            f"[{len(nvec)}, <= {max(nvec)}] nor the joint shape {list(nvec)}"
        )
    return ActionLayout(MultiDiscrete(nvec), dtype, minimum, mask_width=max(nvec) if per_sub_action else None)
