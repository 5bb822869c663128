"""navix envs (``navix/<registered id>``, e.g. ``navix/Navix-Empty-5x5-v0``) as gymnax Environments.

How navix 0.7's API maps onto ``SuiteEnv``:

- ``navix.make(id, max_steps=100, **kwargs)`` builds the env; ``env_kwargs`` reach it, and a
  kwarg it rejects is a ``ConfigError``. ``observation_fn`` may name one of navix's observation
  functions (``"symbolic"``, the default, ``"symbolic_first_person"``, ``"categorical"``,
  ``"categorical_first_person"``, ``"rgb"``, ``"rgb_first_person"``) or be a callable.
- Steps: navix's ``step(timestep, action)`` is ``lax.cond(step_type > 0, reset, _step)``: it
  resets one step late (dm_env style), on the call *after* a done, ignoring that call's action.
  The adapter calls the transition ``_step`` itself and resets on the same step (``SuiteEnv``),
  so the action after a done acts on the fresh episode and none is lost. Calling ``_step`` also
  keeps navix from resetting after its own time limit, and saves the reset branch that ``vmap``
  would evaluate on every step.
- Termination: ``step_type == 2`` (navix's TERMINATION, e.g. the goal reached).
- Truncation: navix's own time limit is nothing but ``step_type == 1`` at ``t >= max_steps``;
  the adapter ignores it, so only ``params.max_steps_in_episode`` ends episodes by time. It
  defaults to navix's ``max_steps`` (100 unless the ``max_steps`` kwarg says otherwise), which
  also stays the scale of navix's optional termination penalty ``penality_coeff * t / max_steps``.
- Randomness: navix draws its stochastic dynamics from the key it stores in its state at reset,
  so each episode's randomness comes from its reset key; the step key is unused.
- Observations: navix's symbolic and categorical observations are small integer codes (entity
  tag, colour, direction), not intensities, so they are given as float32: as uint8 leaves they
  would be scaled by 1/255 like images, to inputs below 0.04, and PPO learns far slower (on
  Empty-5x5, 26 steps per episode after 200k steps instead of the optimal 5). The ``rgb``
  observations are uint8 images, scaled by 1/255.
- Actions: ``Discrete(len(action_set))``, 7 for navix's MiniGrid action set; no masks.
"""

from __future__ import annotations

import difflib

import jax
import jax.numpy as jnp

from jaxppo.config import ConfigError
from jaxppo.suites import base

OBSERVATION_FUNCTIONS = (
    "symbolic",
    "symbolic_first_person",
    "categorical",
    "categorical_first_person",
    "rgb",
    "rgb_first_person",
)
IMAGE_OBSERVATIONS = ("rgb", "rgb_first_person")  # uint8 pixels; the others are integer codes
TERMINATION = 2  # navix's StepType.TERMINATION


class NavixEnv(base.SuiteEnv):
    """One navix env, stepped by its transition ``_step`` with jaxppo's same-step reset."""

    def __init__(self, name: str, raw_env, image_observations: bool):
        super().__init__(f"navix/{name}", raw_env.max_steps)
        self.raw_env = raw_env
        self.image_observations = image_observations
        observation = jax.eval_shape(lambda key: raw_env.reset(key).observation, jax.random.PRNGKey(0))
        self._obs_shape = tuple(observation.shape)

    def _observe(self, observation: jax.Array) -> jax.Array:
        return observation.astype(jnp.uint8 if self.image_observations else jnp.float32)

    def raw_reset(self, key: jax.Array):
        timestep = self.raw_env.reset(key)
        return self._observe(timestep.observation), timestep

    def raw_step(self, key: jax.Array, timestep, action: jax.Array) -> base.RawStep:
        # The reset timestep's action is int32; a stepped one must match it for the auto-reset select.
        next_timestep = self.raw_env._step(timestep, jnp.asarray(action, jnp.int32))
        terminated = next_timestep.step_type == TERMINATION  # step_type 1 (navix's time limit) is ignored
        return base.RawStep(self._observe(next_timestep.observation), next_timestep, next_timestep.reward, terminated)

    def action_space(self, params=None):
        from gymnax.environments import spaces  # imported by base, rendering modules deferred

        return spaces.Discrete(len(self.raw_env.action_set))

    def observation_space(self, params=None):
        from gymnax.environments import spaces

        dtype = jnp.uint8 if self.image_observations else jnp.float32
        return spaces.Box(0, 255, self._obs_shape, dtype)


def make(name: str, **env_kwargs) -> tuple[NavixEnv, base.SuiteParams]:
    """The navix env registered as ``name``, built with ``env_kwargs``, and its default params."""
    import navix

    registered = sorted(navix.registry())
    if name not in registered:
        close = difflib.get_close_matches(name, registered, n=3, cutoff=0.4)
        hint = (
            f"did you mean {', '.join('navix/' + c for c in close)}?"
            if close
            else f"navix ids: {', '.join(registered)}"
        )
        raise ConfigError(f"unknown navix env {name!r}; {hint}")
    kwargs, image_observations = _observation_kwargs(navix, dict(env_kwargs))
    try:
        raw_env = navix.make(name, **kwargs)
    except TypeError as error:
        raise ConfigError(f"env_kwargs {env_kwargs!r} rejected by navix/{name}: {error}") from None
    env = NavixEnv(name, raw_env, image_observations)
    return env, env.default_params


def _observation_kwargs(navix, kwargs: dict) -> tuple[dict, bool]:
    """``kwargs`` with ``observation_fn`` given by name resolved to navix's function, and whether
    the observations are uint8 images."""
    observation_fn = kwargs.get("observation_fn", "symbolic")
    if isinstance(observation_fn, str):
        if observation_fn not in OBSERVATION_FUNCTIONS:
            close = difflib.get_close_matches(observation_fn, OBSERVATION_FUNCTIONS, n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}?" if close else f"choose one of {', '.join(OBSERVATION_FUNCTIONS)}"
            raise ConfigError(f"unknown navix observation_fn {observation_fn!r}; {hint}")
        image = observation_fn in IMAGE_OBSERVATIONS
        kwargs["observation_fn"] = getattr(navix.observations, observation_fn)
        return kwargs, image
    if not callable(observation_fn):
        raise ConfigError(f"navix observation_fn must be a name or a function, got {observation_fn!r}")
    image = any(observation_fn is getattr(navix.observations, name) for name in IMAGE_OBSERVATIONS)
    return kwargs, image
