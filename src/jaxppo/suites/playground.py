"""MuJoCo Playground's DeepMind Control Suite envs (``playground/<name>``:
``playground/CartpoleBalance``, ``playground/CheetahRun``) as gymnax environments.

``make(name, **env_kwargs)`` builds the raw env with ``mujoco_playground.registry.load(name,
config_overrides=env_kwargs)``: ``env_kwargs`` override fields of the env's default config
(``registry.get_default_config(name)``), dotted keys for nested ones (``ctrl_dt=0.02``,
``impl="warp"``, ``vision_config.cam_res=[32, 32]``). One default differs from Playground's:
``impl`` is ``"jax"`` (MJX's JAX implementation) unless given, because Playground's ``"warp"``
runs its kernels outside XLA and steps far slower on a CPU (docs/performance.md). Playground's
``wrap_for_brax_training`` (brax's ``EpisodeWrapper`` and Playground's ``BraxAutoResetWrapper``)
is not used.

Only the dm_control suite envs are offered: the locomotion and manipulation envs load robot
models from ``mujoco_menagerie``, which Playground clones from GitHub on first use; naming one is
a ``ConfigError``.

How Playground's API maps onto jaxppo's (see ``_brax_like``):

- step: ``env.step(State, action) -> State`` with ``State(data, obs, reward, done, metrics,
  info)``; randomness inside a step comes from the state's ``info["rng"]``, not a key.
- termination: the raw ``State.done`` (in the dm_control envs, a NaN in the physics state):
  ``terminated = 1``.
- truncation: the raw env has no time limit; ``env_params.max_steps_in_episode`` defaults to
  the env's ``config.episode_length`` (1000; 250 for vision Cartpole), which
  ``wrap_for_brax_training`` would pass to ``EpisodeWrapper``. ``config.action_repeat`` is a
  wrapper argument too and is not applied.
- resets: a fresh ``reset`` with a fresh key on the step that ended an episode, so the final
  observation is kept in ``info["final_observation"]`` (``BraxAutoResetWrapper`` overwrites it,
  Playground issue 305) and no episode restarts from a cached state.
- observations: float32, a ``Box`` (a ``Dict`` of ``Box`` for a dict observation such as
  vision's ``pixels/view_0``); actions: a ``Box`` in [-1, 1] of ``action_size`` dims.
- ``State.metrics`` (per-step reward terms) are kept in the state, not reported.
"""

from __future__ import annotations

import difflib

from jaxppo.config import ConfigError
from jaxppo.suites._brax_like import BraxLikeEnv

DEFAULT_IMPL = "jax"  # MJX's JAX implementation: Playground defaults to "warp" (see above)


def env_names() -> list[str]:
    """The dm_control suite envs Playground registers (the ones offered here)."""
    from mujoco_playground import dm_control_suite

    return list(dm_control_suite.ALL_ENVS)


def _check_name(name: str) -> None:
    from mujoco_playground import locomotion, manipulation

    names = env_names()
    if name in names:
        return
    if name in locomotion.ALL_ENVS or name in manipulation.ALL_ENVS:
        raise ConfigError(
            f"playground/{name} is a locomotion or manipulation env: it needs mujoco_menagerie, which "
            f"Playground downloads from GitHub on first use; only the dm_control suite envs are "
            f"supported: {', '.join(names)}"
        )
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"dm_control suite envs: {', '.join(names)}"
    raise ConfigError(f"unknown playground env {name!r}; {hint}")


def _unknown_fields(config, keys) -> list[str]:
    """The dotted ``keys`` that name no field of ``config`` (a ``ConfigDict``)."""

    def known(key: str) -> bool:
        node = config
        for part in key.split("."):
            if not hasattr(node, "keys") or part not in node:
                return False
            node = node[part]
        return True

    return [key for key in keys if not known(key)]


def make(name: str, **env_kwargs):
    """``(env, env_params)`` for the Playground env ``name``; ``env_kwargs`` override its config."""
    from mujoco_playground import registry

    _check_name(name)
    config = registry.get_default_config(name)
    unknown = _unknown_fields(config, env_kwargs)
    if unknown:
        raise ConfigError(
            f"env_kwargs {unknown} rejected by playground/{name}: not fields of its config; "
            f"fields: {', '.join(config.keys())} (dotted keys for nested ones)"
        )
    overrides = dict(env_kwargs)
    if "impl" in config:
        overrides.setdefault("impl", DEFAULT_IMPL)
    try:
        raw_env = registry.load(name, config_overrides=overrides)
    except (KeyError, TypeError, ValueError) as error:  # e.g. a value of the wrong type
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"env_kwargs {sorted(env_kwargs)} rejected by playground/{name}: {message}") from None
    episode_length = raw_env._config.episode_length  # after the env's own changes (vision Cartpole: 250)
    env = BraxLikeEnv(f"playground/{name}", raw_env, episode_length)
    return env, env.default_params
