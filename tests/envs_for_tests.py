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


@struct.dataclass
class BanditState(environment.EnvState):
    time: int


@struct.dataclass
class BanditParams(environment.EnvParams):
    max_steps_in_episode: int = 10


class TemptingBandit(environment.Environment):
    """One state, 10 steps an episode. Action 0 pays 0, action 1 pays 1, action 2 pays 10 but the
    mask forbids it: a masked policy earns at most 10 an episode, an unmasked one learns action 2."""

    @property
    def default_params(self) -> BanditParams:
        return BanditParams()

    def step_env(self, key, state, action, params):
        reward = jnp.asarray([0.0, 1.0, 10.0])[action]
        state = BanditState(time=state.time + 1)
        return self.get_obs(state), state, reward, jnp.asarray(False), {}

    def reset_env(self, key, params):
        state = BanditState(time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.ones(1, jnp.float32)

    def action_mask(self, state, params):
        return jnp.asarray([True, True, False])

    def action_space(self, params=None):
        return spaces.Discrete(3)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


class UnmaskedTemptingBandit(TemptingBandit):
    action_mask = None  # the same env without a mask: action 2 is there to be learned


class TwoDials(TemptingBandit):
    """MultiDiscrete([3, 2]): each step pays 1 for dial 0 at 2 plus 1 for dial 1 at 1 (at most 2)."""

    def step_env(self, key, state, action, params):
        reward = (action[0] == 2).astype(jnp.float32) + (action[1] == 1).astype(jnp.float32)
        state = BanditState(time=state.time + 1)
        return self.get_obs(state), state, reward, jnp.asarray(False), {}

    action_mask = None

    def action_space(self, params=None):
        from jaxppo.spaces import MultiDiscrete

        return MultiDiscrete([3, 2])


class MaskedDials(TwoDials):
    """TwoDials where dial 0 may not be set to 2 (its mask is one per sub-action)."""

    def action_mask(self, state, params):
        return [jnp.asarray([True, True, False]), jnp.asarray([True, True])]


class DictCorridor(Corridor):
    """The corridor seen as a dict: the position as a uint8 image row (255 where the walker is)
    and a float leaf that carries nothing (always 0.5)."""

    CELLS = 6  # positions 0..5 of the default length

    def get_obs(self, state, params=None, key=None):
        row = (jnp.arange(self.CELLS) == state.position).astype(jnp.uint8) * 255
        return {"row": row.reshape(1, -1, 1), "constant": jnp.full(2, 0.5, jnp.float32)}

    def observation_space(self, params):
        return spaces.Dict(
            {
                "row": spaces.Box(0, 255, (1, self.CELLS, 1), jnp.uint8),
                "constant": spaces.Box(0.0, 1.0, (2,), jnp.float32),
            }
        )


@struct.dataclass
class FaultyCorridorParams(CorridorParams):
    fault: int = 2  # what turns non-finite: 1 the observation, 2 the reward (train.NONFINITE_* bits)
    fault_probability: float = 0.0  # per step, drawn from the step's key
    fault_value: float = float("nan")


class FaultyCorridor(Corridor):
    """The corridor, whose observation or reward is now and then NaN (or inf): a buggy user env."""

    @property
    def default_params(self) -> FaultyCorridorParams:
        return FaultyCorridorParams()

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        faulty = jax.random.uniform(key) < params.fault_probability
        obs = jnp.where(faulty & (params.fault == 1), params.fault_value, obs)
        reward = jnp.where(faulty & (params.fault == 2), params.fault_value, reward)
        return obs, state, reward, terminated, info
