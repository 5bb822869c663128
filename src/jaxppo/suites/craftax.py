"""Craftax (``craftax/<name>``) as a ``SuiteEnv``.

Ids: ``craftax/Craftax-Classic-Symbolic-v1``, ``craftax/Craftax-Classic-Pixels-v1``,
``craftax/Craftax-Symbolic-v1``, ``craftax/Craftax-Pixels-v1``.

Craftax ships its own copy of pre-1.0 gymnax (not a gymnax 1.0 ``Environment``):
``step_env(key, state, action, params) -> (obs, state, reward, done, info)`` and
``reset_env(key, params) -> (obs, state)``. The adapter calls exactly these two methods of the
``...NoAutoReset`` env classes, never craftax's ``step`` (whose auto-reset variant would replace
the final observation by the reset one).

- Termination: craftax's ``done`` is ``timestep >= max_timesteps`` *or* the player's death (health
  0, or standing in lava in Classic) *or*, in full Craftax, the final boss beaten; its
  ``info["discount"]`` is 0 for all of them, so a time-out looks like a death. The adapter steps
  craftax with ``max_timesteps = 2**31 - 1`` (``CRAFTAX_TIME_LIMIT``), which the ``int32`` step
  counter never reaches within an episode, so craftax's ``done`` is an MDP end only and becomes
  ``terminated``. Nothing else reads ``max_timesteps`` (the day/night cycle uses ``timestep``).
- Truncation: ``params.max_steps_in_episode`` (``SuiteState.time``), defaulting to craftax's own
  ``max_timesteps`` (10 000 in Classic, 100 000 in full Craftax); the env kwarg
  ``max_steps_in_episode`` (or craftax's name for it, ``max_timesteps``) changes that default.
- Observations: symbolic ids give a flat ``float32`` vector in [0, 1] (1345 Classic, 8268 full);
  pixel ids give ``float32`` images ``(H, W, 3)`` already divided by 255 by craftax
  ((63, 63, 3) Classic, (130, 110, 3) full), kept as float ``Box`` spaces.
- Actions: ``Discrete(17)`` (Classic), ``Discrete(43)`` (full); every action is always allowed
  (an impossible one is a no-op), so there is no action mask.
- Episode statistics: ``info["episode_metrics"]["Achievements/<name>"]`` is 100 where the
  achievement was unlocked at least once in the episode, else 0 (craftax's ``state.achievements``
  is a per-episode "ever unlocked" flag, and its own ``info["Achievements/<name>"]`` is that flag
  times 100 on the step its ``done`` fires). The trainer averages it over each iteration's
  completed episodes: metric ``episode/Achievements/<name>`` is the *percentage* of completed
  episodes that unlocked it, truncated episodes included (craftax's own info misses those).
- Env kwargs: the fields of craftax's ``EnvParams`` (``day_length``, ``always_diamond``, ...)
  and of its ``StaticEnvParams`` (``map_size``, ``max_zombies``, ...), by name; JSON lists
  become tuples. Keys reach craftax as raw ``uint32`` key data (``base.raw_key``).

Cost: the same-step auto-reset generates a world at every step (selected only where an episode
ended), which is most of a step on CPU; with XLA:CPU's YNNPACK fusions switched off
(``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=``) it is several times cheaper
(docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import NamedTuple

import jax.numpy as jnp

from jaxppo.config import ConfigError
from jaxppo.suites.base import EPISODE_METRICS, RawStep, SuiteEnv

CRAFTAX_TIME_LIMIT = 2**31 - 1  # craftax's max_timesteps while stepped: its time-out never fires
TIME_LIMIT_KWARGS = ("max_steps_in_episode", "max_timesteps")  # our limit; craftax's name for it


class Variant(NamedTuple):
    env_module: str  # craftax's module of the env class
    env_class: str  # the env class without auto-reset
    state_module: str  # its EnvParams and StaticEnvParams
    constants_module: str  # its Achievement enum


CLASSIC = "craftax.craftax_classic"
FULL = "craftax.craftax"
ENVS = {
    "Craftax-Classic-Symbolic-v1": Variant(f"{CLASSIC}.envs.craftax_symbolic_env", "CraftaxClassicSymbolicEnvNoAutoReset",
                                           f"{CLASSIC}.envs.craftax_state", f"{CLASSIC}.constants"),
    "Craftax-Classic-Pixels-v1": Variant(f"{CLASSIC}.envs.craftax_pixels_env", "CraftaxClassicPixelsEnvNoAutoReset",
                                         f"{CLASSIC}.envs.craftax_state", f"{CLASSIC}.constants"),
    "Craftax-Symbolic-v1": Variant(f"{FULL}.envs.craftax_symbolic_env", "CraftaxSymbolicEnvNoAutoReset",
                                   f"{FULL}.craftax_state", f"{FULL}.constants"),
    "Craftax-Pixels-v1": Variant(f"{FULL}.envs.craftax_pixels_env", "CraftaxPixelsEnvNoAutoReset",
                                 f"{FULL}.craftax_state", f"{FULL}.constants"),
}  # fmt: skip


class CraftaxEnv(SuiteEnv):
    """One craftax env stepped with its raw ``step_env`` / ``reset_env`` and its time-out disabled."""

    def __init__(self, name: str, raw_env, craftax_params, achievements: tuple[str, ...], max_steps_in_episode: int):
        super().__init__(f"craftax/{name}", max_steps_in_episode)
        self.raw_env = raw_env
        self.craftax_params = craftax_params  # max_timesteps = CRAFTAX_TIME_LIMIT
        self.achievements = achievements  # lower-case names, in craftax's Achievement order

    def raw_reset(self, key):
        return self.raw_env.reset_env(key, self.craftax_params)

    def raw_step(self, key, inner, action):
        obs, inner, reward, done, _ = self.raw_env.step_env(key, inner, action, self.craftax_params)
        unlocked = inner.achievements.astype(jnp.float32) * 100.0  # per-episode "ever unlocked" flags
        metrics = {f"Achievements/{name}": unlocked[i] for i, name in enumerate(self.achievements)}
        return RawStep(obs=obs, inner=inner, reward=reward, terminated=done, info={EPISODE_METRICS: metrics})

    def action_space(self, params=None):
        from gymnax.environments import spaces  # gymnax is imported by base, its rendering deferred

        return spaces.Discrete(int(self.raw_env.action_space(self.craftax_params).n))

    def observation_space(self, params=None):
        from gymnax.environments import spaces

        box = self.raw_env.observation_space(self.craftax_params)
        return spaces.Box(box.low, box.high, tuple(box.shape), box.dtype)

    @property
    def num_actions(self) -> int:
        return self.action_space().n


def make(name: str, **env_kwargs):
    """``(CraftaxEnv, SuiteParams)`` for a craftax env name; ``env_kwargs`` are fields of craftax's
    ``EnvParams`` or ``StaticEnvParams``, or the time limit (``max_steps_in_episode``)."""
    if name not in ENVS:
        close = difflib.get_close_matches(name, ENVS, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"craftax envs: {', '.join(ENVS)}"
        raise ConfigError(f"unknown craftax env {name!r}; {hint}")
    variant = ENVS[name]
    state_module = importlib.import_module(variant.state_module)
    params_kwargs, static_kwargs, time_limit = _split_kwargs(name, env_kwargs, state_module)
    craftax_params = state_module.EnvParams(**params_kwargs)
    max_steps = craftax_params.max_timesteps if time_limit is None else time_limit
    raw_env = getattr(importlib.import_module(variant.env_module), variant.env_class)(
        state_module.StaticEnvParams(**static_kwargs)
    )
    achievements = tuple(a.name.lower() for a in importlib.import_module(variant.constants_module).Achievement)
    env = CraftaxEnv(name, raw_env, craftax_params.replace(max_timesteps=CRAFTAX_TIME_LIMIT), achievements, max_steps)
    return env, env.default_params


def _split_kwargs(name: str, env_kwargs: dict, state_module):
    """``env_kwargs`` as (``EnvParams`` fields, ``StaticEnvParams`` fields, the time limit or
    ``None``); a name neither takes is a one-line ``ConfigError``."""
    params_fields = {f.name for f in dataclasses.fields(state_module.EnvParams)} - set(TIME_LIMIT_KWARGS)
    static_fields = {f.name for f in dataclasses.fields(state_module.StaticEnvParams)}
    known = params_fields | static_fields | set(TIME_LIMIT_KWARGS)
    unknown = sorted(set(env_kwargs) - known)
    if unknown:
        close = sorted({m for u in unknown for m in difflib.get_close_matches(u, known, n=2, cutoff=0.6)})
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"env_kwargs {', '.join(unknown)} rejected by craftax/{name}{hint}; it takes "
            f"{', '.join(TIME_LIMIT_KWARGS)} and the fields of craftax's EnvParams and StaticEnvParams: "
            f"{', '.join(sorted(params_fields | static_fields))}"
        )
    limits = [env_kwargs[k] for k in TIME_LIMIT_KWARGS if k in env_kwargs]
    if len(limits) > 1:
        raise ConfigError(f"craftax/{name}: give the time limit once, as max_steps_in_episode or max_timesteps")
    if limits and (type(limits[0]) is not int or not 0 < limits[0] < CRAFTAX_TIME_LIMIT):
        raise ConfigError(f"craftax/{name}: the time limit must be an integer in [1, 2**31 - 2], got {limits[0]!r}")
    as_static = {k: tuple(v) if isinstance(v, list) else v for k, v in env_kwargs.items()}  # JSON lists: hashable
    return ({k: v for k, v in as_static.items() if k in params_fields},
            {k: v for k, v in as_static.items() if k in static_fields},
            limits[0] if limits else None)  # fmt: skip
