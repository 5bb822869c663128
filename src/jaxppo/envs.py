"""The env seam: everything environment-specific, behind ``VecEnv``.

``make_env`` takes a gymnax id or a user's gymnax ``Environment`` instance, resolves its spaces
into an ``EnvSpec`` (action kind and size, bounds, observation shape) and rejects what PPO here
cannot handle with a ``ConfigError``. ``VecEnv`` is the trainer's only view of it: ``num_envs``
copies reset and stepped together, each step returning the pre-reset observation next to the
auto-reset one, and the termination and truncation flags apart. The trainer touches no gymnax
detail. Every env reaches ``VecEnv`` as a gymnax ``Environment``: a suite with another step API is
added as an adapter module under ``jaxppo.suites`` (a ``suites.base.SuiteEnv`` subclass with
``raw_reset`` and ``raw_step``, and a ``make(name, **env_kwargs)``), registered in
``suites.SUITES``; ``make`` below then returns its envs for ids ``suite/name``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import ActionKind, ConfigError
from jaxppo.gymnax_import import EPISODE_METRICS, import_gymnax
from jaxppo.spaces import MultiDiscrete


@dataclasses.dataclass(frozen=True)
class ObsLeaf:
    """One observation array: its shape, and whether it is a uint8 image (scaled by 1/255 instead
    of normalised with running statistics). A pytree leaf (not registered with jax)."""

    shape: tuple[int, ...]
    uint8: bool = False


class EnvSpec(NamedTuple):
    env: Any  # a gymnax Environment
    env_params: Any
    action_kind: ActionKind
    action_size: int  # number of actions (discrete) or action dims (continuous)
    action_shape: tuple[int, ...]  # per-env action shape the env expects
    action_low: np.ndarray | None  # continuous bounds, flat [action_size]
    action_high: np.ndarray | None
    obs_shape: tuple[int, ...] | dict  # Dict observations: {key: shape}
    obs_size: int  # of all leaves, flattened
    action_nvec: tuple[int, ...] | None = None  # MultiDiscrete: sub-action sizes (action_size is their sum)
    has_action_mask: bool = False  # the env defines action_mask(state, params)
    obs_leaves: Any = None  # an ObsLeaf, or {key: ObsLeaf} for a Dict observation space


class EnvStep(NamedTuple):
    """One step of every env, ``[num_envs, ...]``."""

    obs: jax.Array  # float32, after the auto-reset where an episode ended
    state: Any
    reward: jax.Array  # float32
    terminated: jax.Array  # bool: an MDP end (no bootstrap)
    truncated: jax.Array  # bool: a time limit (bootstrap from final_obs)
    final_obs: jax.Array  # float32, s_{t+1} before the auto-reset
    episode_metrics: dict = {}  # {name: float32 [N]}: a suite's per-episode statistics, read at dones


@dataclasses.dataclass(frozen=True, eq=False)
class VecEnv:
    """``num_envs`` copies of one env, reset and stepped together (vmapped)."""

    spec: EnvSpec
    num_envs: int

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """Fresh episodes in every env from one key: ``(obs [N, *obs_shape] float32, states)``."""
        keys = jax.random.split(key, self.num_envs)
        obs, state = jax.vmap(self.spec.env.reset, in_axes=(0, None))(keys, self.spec.env_params)
        return prepare_observations(self.spec, obs), state

    def step(self, keys: jax.Array, state: Any, action: jax.Array) -> EnvStep:
        """Step env ``i`` with ``keys[i]`` and the policy's ``action[i]`` (auto-resetting)."""
        step = jax.vmap(self.spec.env.step, in_axes=(0, 0, 0, None))
        obs, state, reward, terminated, truncated, info = step(
            keys, state, self.env_action(action), self.spec.env_params
        )
        return EnvStep(
            obs=prepare_observations(self.spec, obs),
            state=state,
            reward=reward.astype(jnp.float32),
            terminated=terminated.astype(bool),
            truncated=truncated.astype(bool),
            final_obs=prepare_observations(self.spec, info["final_observation"]),
            episode_metrics={name: jnp.asarray(v, jnp.float32) for name, v in info.get(EPISODE_METRICS, {}).items()},
        )

    def action_mask(self, state: Any) -> jax.Array | None:
        """Which actions each env allows now, ``bool [N, action_size]`` (MultiDiscrete: every
        sub-action's mask side by side), or ``None`` when the env has no ``action_mask``."""
        if not self.spec.has_action_mask:
            return None
        masks = jax.vmap(self.spec.env.action_mask, in_axes=(0, None))(state, self.spec.env_params)
        return flat_action_mask(masks, self.spec).astype(bool)

    def env_action(self, action: jax.Array) -> jax.Array:
        """The policy's action as the env takes it: continuous actions clipped to the bounds and
        shaped as the action space (the rollout keeps the unclipped sample)."""
        spec = self.spec
        if spec.action_kind != "continuous":
            return action
        clipped = jnp.clip(action, spec.action_low, spec.action_high)
        return clipped.reshape(action.shape[:-1] + spec.action_shape)


# gymnax is imported inside the functions: importing it initialises jax's backends, which must
# wait until the CLI has chosen the number of host devices (see xla_cpu.use_host_devices).

def prepare_observations(spec: EnvSpec, obs):
    """An env's observations (an array, or a dict for a Dict space) as float32, uint8 leaves
    scaled to [0, 1] by 1/255."""

    def prepare(leaf: ObsLeaf, x):
        x = jnp.asarray(x)
        return x.astype(jnp.float32) / 255.0 if leaf.uint8 else x.astype(jnp.float32)

    return jax.tree.map(prepare, spec.obs_leaves, dict(obs) if isinstance(spec.obs_leaves, dict) else obs)


def flat_action_mask(masks, spec: EnvSpec) -> jax.Array:
    """An env's masks ``[N, ...]`` as ``[N, action_size]``. A MultiDiscrete env may give one mask
    per sub-action (a list or tuple of ``[N, nvec[i]]``), a padded ``[N, len(nvec), max(nvec)]``
    array, or the masks side by side ``[N, sum(nvec)]``."""
    if isinstance(masks, (list, tuple)):
        return jnp.concatenate([jnp.asarray(m) for m in masks], axis=-1)
    masks = jnp.asarray(masks)
    if spec.action_nvec is not None and masks.ndim == 3:
        return jnp.concatenate([masks[:, i, :n] for i, n in enumerate(spec.action_nvec)], axis=-1)
    return masks


def make(env_id: str, **env_kwargs):
    """``(env, env_params)`` for an env id: a gymnax id, or ``suite/name`` for an env of another
    suite (``brax/ant``, ``jumanji/Snake-v1``; see ``jaxppo.suites``), as a gymnax ``Environment``.
    ``env_kwargs`` reach the env's constructor, except ``max_steps_in_episode``: the time limit,
    set in the returned params (``--env-kwarg max_steps_in_episode=N`` on the command line).
    Bad ids and kwargs are a ``ConfigError``."""
    from jaxppo import suites

    limit = env_kwargs.pop("max_steps_in_episode", None)
    aliases = [k for k in suites.time_limit_kwargs(env_id) if k in env_kwargs]
    if limit is not None and aliases:
        raise ConfigError(f"{env_id}: give the time limit once, as max_steps_in_episode or {aliases[0]}")
    if suites.split_env_id(env_id)[0] is not None:
        env, params = suites.make(env_id, **env_kwargs)
    else:
        env, params = _make_gymnax(env_id, env_kwargs)
    if limit is None:
        return env, params
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"max_steps_in_episode must be a positive integer, got {limit!r}")
    if not hasattr(params, "max_steps_in_episode"):
        raise ConfigError(f"{env_id} has no max_steps_in_episode in its params; drop that env kwarg")
    return env, params.replace(max_steps_in_episode=limit)


def _make_gymnax(env_id: str, env_kwargs: dict):
    gymnax = import_gymnax()
    if env_id not in gymnax.registered_envs:
        close = difflib.get_close_matches(env_id, gymnax.registered_envs, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else "see gymnax.registered_envs, or use suite/name"
        raise ConfigError(f"unknown env id {env_id!r}; {hint}")
    try:
        return gymnax.make(env_id, **env_kwargs)
    except TypeError as error:
        raise ConfigError(f"env_kwargs {env_kwargs!r} rejected by {env_id}: {error}") from None


def make_env(env_id: str, env_kwargs=(), env=None, env_params=None) -> EnvSpec:
    """Build an ``EnvSpec`` from an id, or from a user's ``env`` (and optional ``env_params``)."""
    import_gymnax()
    from gymnax.environments import environment

    if env is None:
        env, default_params = make(env_id, **dict(env_kwargs))
        env_params = default_params if env_params is None else env_params
    else:
        if not isinstance(env, environment.Environment):
            raise ConfigError(
                f"env must be an instance of gymnax.environments.environment.Environment, "
                f"got {type(env).__name__}; subclass it (step_env, reset_env, spaces)"
            )
        env_params = env.default_params if env_params is None else env_params
    return _spec(env, env_params)


def _spec(env, env_params) -> EnvSpec:
    from gymnax.environments import spaces

    name = getattr(env, "name", type(env).__name__)
    action_space = env.action_space(env_params)
    obs_leaves = _obs_leaves(name, env.observation_space(env_params))
    if isinstance(obs_leaves, dict):
        obs_shape = {key: leaf.shape for key, leaf in obs_leaves.items()}
        obs_size = sum(math.prod(leaf.shape) for leaf in obs_leaves.values())
    else:
        obs_shape, obs_size = obs_leaves.shape, math.prod(obs_leaves.shape)
    has_mask = callable(getattr(env, "action_mask", None))
    extra = dict(has_action_mask=has_mask, obs_leaves=obs_leaves)
    if isinstance(action_space, spaces.Discrete):
        n = int(action_space.n)
        return EnvSpec(env, env_params, "discrete", n, (), None, None, obs_shape, obs_size, None, **extra)
    if isinstance(action_space, MultiDiscrete):
        nvec = action_space.nvec
        size = sum(nvec)
        return EnvSpec(env, env_params, "discrete", size, (len(nvec),), None, None, obs_shape, obs_size, nvec, **extra)
    if isinstance(action_space, spaces.Box):
        if has_mask:
            raise ConfigError(f"{name}: action_mask is for Discrete and MultiDiscrete actions, not Box")
        shape = tuple(int(d) for d in action_space.shape)
        size = math.prod(shape)
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), shape).reshape(-1)
        return EnvSpec(env, env_params, "continuous", size, shape, low, high, obs_shape, obs_size, None, **extra)
    raise ConfigError(
        f"{name}: action space {type(action_space).__name__} is not supported; "
        f"jaxppo handles Discrete, jaxppo.spaces.MultiDiscrete and Box action spaces"
    )


def _obs_leaves(name: str, space):
    """The observation space as an ``ObsLeaf`` (a ``Box``) or ``{key: ObsLeaf}`` (a ``Dict`` of
    ``Box`` spaces, keys sorted); anything else is a ``ConfigError``."""
    from gymnax.environments import spaces

    def leaf(box, where=""):
        if not isinstance(box, spaces.Box):
            raise ConfigError(
                f"{name}: observation space{where} {type(box).__name__} is not supported; "
                f"jaxppo takes a Box, or a Dict of Box spaces (wrap the env to return arrays)"
            )
        return ObsLeaf(tuple(int(d) for d in box.shape), jnp.dtype(box.dtype) == jnp.uint8)

    if isinstance(space, spaces.Dict):
        if not space.spaces:
            raise ConfigError(f"{name}: the Dict observation space is empty; give it at least one Box")
        return {str(key): leaf(space.spaces[key], f" {key!r}") for key in sorted(space.spaces)}
    return leaf(space)
