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
- fluid forces (swimmer): brax 0.14's code for them does not run on jax 0.10, so such an env is a
  ``ConfigError`` there (``_check_fluid_forces``).
- ``State.metrics`` (per-step reward terms, positions) are kept in the state but not reported
  as episode metrics: their per-episode sums, which ``EpisodeWrapper`` reports, mean little
  for most of them (a sum of x positions).
"""

from __future__ import annotations

import difflib
import warnings

from jaxppo.config import ConfigError
from jaxppo.suites._brax_like import BraxLikeEnv

EPISODE_LENGTH = 1000  # brax.envs.create's and brax.training's default episode_length
UNMAINTAINED_WARNING = "Brax System, piplines and environments are not actively being maintained"


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
        with warnings.catch_warnings():
            # brax warns on every model it loads that it is no longer maintained: noise on every
            # run, and two more lines on stderr before a one-line ConfigError.
            warnings.filterwarnings("ignore", message=UNMAINTAINED_WARNING, category=UserWarning)
            raw_env = envs.get_environment(name, **env_kwargs)
    except (TypeError, ValueError) as error:  # unexpected keyword, or an unknown backend
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"env_kwargs {sorted(env_kwargs)} rejected by brax/{name}: {message}") from None
    _check_fluid_forces(name, raw_env)
    env = BraxLikeEnv(f"brax/{name}", raw_env, EPISODE_LENGTH)
    return env, env.default_params


def _check_fluid_forces(name: str, raw_env) -> None:
    """A ``ConfigError`` where the env's fluid forces cannot be traced on this jax.

    brax's fluid forces (``brax.fluid.force``, stepped where a system sets a fluid density or
    viscosity, as swimmer's does) call ``jnp.clip(a_min=...)``, which jax 0.10 no longer takes.
    One step of such an env is traced here (no compilation), so that it fails in one line rather
    than inside the trainer; brax releases that fix it pass."""
    import brax
    import jax
    import jax.numpy as jnp

    if not getattr(getattr(raw_env, "sys", None), "enable_fluid", False):
        return
    try:
        action = jnp.zeros(raw_env.action_size)
        jax.eval_shape(lambda key: raw_env.step(raw_env.reset(key), action), jax.ShapeDtypeStruct((2,), jnp.uint32))
    except TypeError as error:
        message = (str(error).splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            f"brax/{name} simulates fluid forces, and brax {brax.__version__} cannot step them on jax "
            f"{jax.__version__} ({message}); use a jax release that this brax supports, or another brax env"
        ) from None
