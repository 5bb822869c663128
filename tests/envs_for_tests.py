"""Small custom gymnax environments used by the tests (and mirrored in the README)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class CorridorState(environment.EnvState):
    position: jax.Array
    time: int


@struct.dataclass
class CorridorParams(environment.EnvParams):
    length: int = 5
    max_steps_in_episode: int = 20


class Corridor(environment.Environment):
    """Walk right (action 1) to reach the goal at ``length``; reward 1 at the goal, else 0."""

    @property
    def default_params(self) -> CorridorParams:
        return CorridorParams()

    def step_env(self, key, state, action, params):
        position = jnp.clip(state.position + 2 * action - 1, 0, params.length)
        state = CorridorState(position=position, time=state.time + 1)
        terminated = position >= params.length
        reward = terminated.astype(jnp.float32)
        return self.get_obs(state, params), state, reward, terminated, {}

    def reset_env(self, key, params):
        state = CorridorState(position=jnp.asarray(0), time=0)
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None):
        return jnp.asarray([state.position / params.length], jnp.float32)

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


class DictActionCorridor(Corridor):
    def action_space(self, params=None):
        return spaces.Dict({"move": spaces.Discrete(2)})


class DiscreteObsCorridor(Corridor):
    def observation_space(self, params):
        return spaces.Discrete(6)
