"""Probe environments that isolate one behaviour of an agent (gymnax ``Environment`` instances).

``Memory``: the cue is shown only in the first observation and asked for in the last, so a
policy without memory stays at chance while a recurrent one can be right every time. Use it to
check a recurrent setup end to end (``make_train(config, env=Memory())``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxppo.gymnax_import import import_gymnax

import_gymnax()  # gymnax with its rendering-only imports deferred (see gymnax_import.import_gymnax)
from gymnax.environments import environment, spaces  # noqa: E402


@struct.dataclass
class MemoryState(environment.EnvState):
    cue: jax.Array  # int32: the action that the last step rewards
    time: jax.Array


@struct.dataclass
class MemoryParams(environment.EnvParams):
    max_steps_in_episode: int = 1_000  # never reached: an episode lasts delay + 1 steps


class Memory(environment.Environment):
    """Remember a cue for ``delay`` steps.

    Observation ``[num_cues + 1]``: step 0 shows the cue one-hot; the next ``delay - 1`` steps
    show zeros; the answer step (step ``delay``) shows only its flag, the last entry. The action
    at the answer step earns 1 if it names the cue, else 0, and ends the episode (terminated);
    earlier actions earn nothing. A policy without memory earns ``1 / num_cues`` per episode in
    expectation; one that remembers earns 1.
    """

    def __init__(self, num_cues: int = 2, delay: int = 4):
        if num_cues < 2 or delay < 1:
            raise ValueError("Memory needs num_cues >= 2 and delay >= 1")
        self.num_cues, self.delay = int(num_cues), int(delay)

    @property
    def name(self) -> str:
        return f"Memory-{self.num_cues}x{self.delay}"

    @property
    def default_params(self) -> MemoryParams:
        return MemoryParams()

    def reset_env(self, key, params):
        state = MemoryState(cue=jax.random.randint(key, (), 0, self.num_cues), time=jnp.zeros((), jnp.int32))
        return self._observe(state), state

    def step_env(self, key, state, action, params):
        answering = state.time == self.delay
        reward = jnp.where(answering & (action == state.cue), 1.0, 0.0)
        state = state.replace(time=state.time + 1)
        return self._observe(state), state, reward, answering, {}

    def _observe(self, state) -> jax.Array:
        cue = jax.nn.one_hot(state.cue, self.num_cues) * (state.time == 0)
        return jnp.concatenate([cue, (state.time == self.delay)[None].astype(jnp.float32)])

    def action_space(self, params) -> spaces.Discrete:
        return spaces.Discrete(self.num_cues)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_cues + 1,), jnp.float32)
