"""brax envs (``brax/<name>``: ``brax/ant``, ``brax/inverted_pendulum``) as gymnax environments.

``make(name, **env_kwargs)`` builds the raw env with ``brax.envs.get_environment(name,
**env_kwargs)``: the env class without ``brax.envs.create``'s ``EpisodeWrapper`` and
``AutoResetWrapper``. ``env_kwargs`` are the env class's arguments, notably ``backend``
(``"generalized"``, brax's default, ``"positional"``, ``"spring"`` or ``"mjx"``; on a CPU
``positional`` and ``spring`` compile several times faster than ``generalized``), and
per-env ones such as ``ctrl_cost_weight`` or ``terminate_when_unhealthy``.

How brax's API maps onto jaxppo's (see ``_brax_like``):

- step: ``env.step(State, action) -> State``; no key (brax's dynamics are deterministic).
- termination: the raw ``State.done`` (the pendulum falls past 0.2 rad, an ant or a hopper
  becomes unhealthy): ``terminated = 1``, no bootstrap.
- truncation: brax's time limit lives in ``EpisodeWrapper`` (``episode_length`` 1000 in
  ``brax.envs.create`` and ``brax.training``), which is not used; here it is
  ``env_params.max_steps_in_episode``, 1000 by default, reported as ``truncated`` with
  ``info["final_observation"]`` the last observation, not the reset one.
- resets: every episode calls the env's own ``reset`` with a fresh key, on the step that ended
  the previous one; brax's ``AutoResetWrapper`` bug (every later episode restarting from the
  first episode's cached state, brax issues 167 and 275) is not inherited.
- observations: the env's flat float32 vector, a ``Box``; actions: a ``Box`` in [-1, 1] of
  ``action_size`` dims, which the env scales to its actuators' ranges.
- ``State.metrics`` (per-step reward terms, positions) are kept in the state but not reported
  as episode metrics: their per-episode sums, which ``EpisodeWrapper`` reports, mean little
  for most of them (a sum of x positions).
"""

from __future__ import annotations

import difflib

from jaxppo.config import ConfigError
from jaxppo.suites._brax_like import BraxLikeEnv

EPISODE_LENGTH = 1000  # brax.envs.create's and brax.training's default episode_length


def env_names() -> list[str]:
    """The names ``brax.envs.get_environment`` knows (its registry, with registered ones)."""
    from brax import envs

    return sorted(envs._envs)  # brax keeps its registry private; get_environment reads it


def make(name: str, **env_kwargs):
    """``(env, env_params)`` for the brax env ``name``; ``env_kwargs`` reach its constructor."""
    from brax import envs

    names = env_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"brax envs: {', '.join(names)}"
        raise ConfigError(f"unknown brax env {name!r}; {hint}")
    try:
        raw_env = envs.get_environment(name, **env_kwargs)
    except (TypeError, ValueError) as error:  # unexpected keyword, or an unknown backend
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"env_kwargs {sorted(env_kwargs)} rejected by brax/{name}: {message}") from None
    env = BraxLikeEnv(f"brax/{name}", raw_env, EPISODE_LENGTH)
    return env, env.default_params
