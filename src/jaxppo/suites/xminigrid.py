"""XLand-MiniGrid envs (``xminigrid/<registered id>``, e.g. ``xminigrid/MiniGrid-Empty-6x6``) as
gymnax Environments.

How xminigrid 0.9's API maps onto ``SuiteEnv``:

- ``xminigrid.make(id, **kwargs) -> (env, env_params)``: ``env_kwargs`` replace fields of the
  suite's ``EnvParams`` (``max_steps``, ``view_size``, ...); a name it rejects is a
  ``ConfigError``. Those params are static (xminigrid marks its fields ``pytree_node=False``),
  so the adapter keeps them in the env instance; ``SuiteParams`` holds only jaxppo's time limit.
- Steps: the raw ``env.step(params, timestep, action)``, never ``GymAutoResetWrapper``, which
  drops the final observation; ``SuiteEnv`` resets on the same step with a fresh key.
- Termination: a ``LAST`` step with discount 0 (the goal reached, or failed in Memory).
- Truncation: xminigrid's own time limit is only a step type (``LAST`` with discount 1 where
  ``step_num == max_steps``); nothing else in its step acts on it, so the adapter ignores it and
  only ``params.max_steps_in_episode`` ends episodes by time. It defaults to the suite's
  ``max_steps`` (``4 * height * width`` for Empty, set by the ``max_steps`` kwarg). ``max_steps``
  is kept in the suite's params, not made huge, because xminigrid's reward
  ``1 - 0.9 * step_num / max_steps`` is scaled by it; with a longer ``max_steps_in_episode``
  that formula simply goes on past ``max_steps``.
- Observations: the agent's view, ``(view_size, view_size, 2)`` uint8 tile and colour codes;
  codes, not intensities, so they are given as float32 (uint8 leaves would be scaled by 1/255).
- Actions: ``Discrete(6)`` (forward, turn right, turn left, pick up, put down, toggle); no masks.
- XLand-MiniGrid meta-RL ids need a ruleset from one of xminigrid's benchmarks, which xminigrid
  downloads: pass ``benchmark=<name>`` and ``ruleset=<index>`` (default 0); a benchmark that is
  not in ``XLAND_MINIGRID_DATA`` yet is a ``ConfigError`` saying how to fetch it (the adapter
  never downloads).
"""

from __future__ import annotations

import difflib
import os

import jax
import jax.numpy as jnp

from jaxppo.config import ConfigError
from jaxppo.suites import base

XLAND_PREFIX = "XLand-MiniGrid"


class XMiniGridEnv(base.SuiteEnv):
    """One xminigrid env with its (static) params, with jaxppo's same-step reset and time limit."""

    def __init__(self, name: str, raw_env, raw_params):
        super().__init__(f"xminigrid/{name}", raw_params.max_steps)
        self.raw_env = raw_env
        self.raw_params = raw_params
        observation = jax.eval_shape(lambda key: raw_env.reset(raw_params, key).observation, jax.random.PRNGKey(0))
        self._obs_shape = tuple(observation.shape)

    def raw_reset(self, key: jax.Array):
        timestep = self.raw_env.reset(self.raw_params, key)
        return timestep.observation.astype(jnp.float32), timestep

    def raw_step(self, key: jax.Array, timestep, action: jax.Array) -> base.RawStep:
        next_timestep = self.raw_env.step(self.raw_params, timestep, action)
        # LAST with discount 1 is xminigrid's time limit, ignored (see the module docstring).
        terminated = next_timestep.last() & (next_timestep.discount == 0)
        obs = next_timestep.observation.astype(jnp.float32)
        return base.RawStep(obs, next_timestep, next_timestep.reward, terminated)

    def action_space(self, params=None):
        from gymnax.environments import spaces  # imported by base, rendering modules deferred

        return spaces.Discrete(int(self.raw_env.num_actions(self.raw_params)))

    def observation_space(self, params=None):
        from gymnax.environments import spaces

        return spaces.Box(0, 255, self._obs_shape, jnp.float32)


def make(name: str, **env_kwargs) -> tuple[XMiniGridEnv, base.SuiteParams]:
    """The xminigrid env registered as ``name`` with ``env_kwargs`` in its params, and the
    default ``SuiteParams``."""
    import xminigrid

    registered = xminigrid.registered_environments()
    if name not in registered:
        close = difflib.get_close_matches(name, registered, n=3, cutoff=0.4)
        hint = (
            f"did you mean {', '.join('xminigrid/' + c for c in close)}?"
            if close
            else f"xminigrid ids: {', '.join(registered)}"
        )
        raise ConfigError(f"unknown xminigrid env {name!r}; {hint}")
    kwargs = dict(env_kwargs)
    benchmark, ruleset = kwargs.pop("benchmark", None), kwargs.pop("ruleset", 0)
    try:
        raw_env, raw_params = xminigrid.make(name, **kwargs)
    except TypeError as error:
        raise ConfigError(f"env_kwargs {env_kwargs!r} rejected by xminigrid/{name}: {error}") from None
    if name.startswith(XLAND_PREFIX):
        raw_params = raw_params.replace(ruleset=load_ruleset(name, benchmark, ruleset))
    elif benchmark is not None or "ruleset" in env_kwargs:
        raise ConfigError(f"xminigrid/{name} takes no benchmark or ruleset; only {XLAND_PREFIX}-* envs do")
    env = XMiniGridEnv(name, raw_env, raw_params)
    return env, env.default_params


def load_ruleset(name: str, benchmark: str | None, ruleset: int):
    """Ruleset ``ruleset`` of the xminigrid benchmark ``benchmark``, read from the local copy that
    ``xminigrid.load_benchmark`` leaves in ``XLAND_MINIGRID_DATA``; a ``ConfigError`` where none is."""
    from xminigrid import benchmarks

    if benchmark is None:
        raise ConfigError(
            f"xminigrid/{name} is a meta-RL env: its task comes from a benchmark ruleset; pass "
            f"--env-kwarg benchmark=<{'|'.join(benchmarks.registered_benchmarks())}> --env-kwarg ruleset=<index>, "
            f"or use a MiniGrid-* id"
        )
    if benchmark not in benchmarks.NAME2HFFILENAME:
        close = difflib.get_close_matches(str(benchmark), benchmarks.registered_benchmarks(), n=3, cutoff=0.4)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"benchmarks: {', '.join(benchmarks.registered_benchmarks())}"
        )
        raise ConfigError(f"unknown xminigrid benchmark {benchmark!r}; {hint}")
    path = os.path.join(benchmarks.DATA_PATH, benchmarks.NAME2HFFILENAME[benchmark])
    if not os.path.exists(path):
        raise ConfigError(
            f"xminigrid benchmark {benchmark!r} needs a download that is not here ({path}); fetch it once with "
            f"python -c \"import xminigrid; xminigrid.load_benchmark('{benchmark}')\" (or set XLAND_MINIGRID_DATA)"
        )
    loaded = benchmarks.load_benchmark_from_path(path)
    if isinstance(ruleset, bool) or not isinstance(ruleset, int) or not 0 <= ruleset < loaded.num_rulesets():
        raise ConfigError(
            f"ruleset must be an index in [0, {loaded.num_rulesets()}) of benchmark {benchmark!r}, got {ruleset!r}"
        )
    return loaded.get_ruleset(ruleset)
