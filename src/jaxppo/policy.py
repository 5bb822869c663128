"""The policy seam: everything the trainer knows about its networks.

A policy maps an observation batch to an action distribution and a value. It is built as an
encoder (here: each observation flattened for an MLP), an optional recurrent core (none here),
then heads (the actor's distribution parameters, the critic's value). The trainer calls only:

- ``init(keys, obs)``: parameters, from an example observation batch;
- ``distribution(params, obs, action_mask=None)``: a ``distributions.Distribution``
  (``sample_from_uniform``, ``log_prob``, ``entropy``, ``mode``) over the env's actions, with the
  actions ``action_mask`` forbids at probability 0 in all four;
- ``value(params, obs)``: the critic's value estimates;
- ``action_noise_size``: uniform values one sample consumes (drawn with the iteration's noise).

Observations keep their env shape ``[*batch, *obs_shape]``, and a Dict observation is a dict of
such arrays; the encoder decides how to read them (the MLP: every leaf flattened, concatenated).
A MultiDiscrete action space gets a ``MultiCategorical`` whose ``action_noise_size`` sums its
sub-actions'.

A recurrent policy (``recurrent_size`` set: a GRU core in the actor and one in the critic) has
a carry ``{"actor": [N, size], "critic": [N, size]}`` per env instead of ``distribution`` and
``value``, and is used through:

- ``initial_carry(num_envs)``: zeros, the carry at an episode's start;
- ``step(params, carry, obs, start, action_mask=None) -> (dist, value, carry)``: one step of
  every env, the carry reset first where ``start`` (the observation begins an episode);
- ``unroll(params, carry, obs, start, action_mask=None) -> (dist, values)``: a time-major
  sequence ``[T, N, ...]`` replayed from its first carry, resetting at the same steps;
- ``value_after(params, carry, obs)``: the value of ``obs`` read on from ``carry`` without a
  reset (V of the pre-reset final observation, for bootstrapping at time limits).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxppo.config import PPOConfig
from jaxppo.distributions import Distribution, mask_logits
from jaxppo.envs import EnvSpec
from jaxppo.networks import Actor, Critic


@dataclasses.dataclass(frozen=True)
class ActorCritic:
    """Separate actor and critic networks (CleanRL's layout), parameters ``{"actor", "critic"}``."""

    actor: Actor
    critic: Critic
    obs_leaves: Any  # envs.ObsLeaf, or {key: ObsLeaf} for a Dict observation space
    action_noise_size: int
    recurrent_size: int | None = None  # the GRU cores' size; None: feed-forward

    @property
    def recurrent(self) -> bool:
        return self.recurrent_size is not None

    def init(self, keys: jax.Array, obs: jax.Array | None = None) -> dict:
        """Parameters from two independent keys ``[2]`` (the actor's, the critic's) and an
        example observation batch (default: one zero observation)."""
        if obs is None:
            obs = jax.tree.map(lambda leaf: jnp.zeros((1, *leaf.shape), jnp.float32), self.obs_leaves)
        if not self.recurrent:
            return {"actor": self.actor.init(keys[0], obs), "critic": self.critic.init(keys[1], obs)}
        batch = jax.tree.leaves(obs)[0].shape[0]
        sequence = jax.tree.map(lambda x: x[None], obs)
        carry, start = self.initial_carry(batch), jnp.ones((1, batch), bool)
        return {"actor": self.actor.init(keys[0], sequence, carry["actor"], start),
                "critic": self.critic.init(keys[1], sequence, carry["critic"], start)}  # fmt: skip

    def initial_carry(self, num_envs: int) -> dict | None:
        """The recurrent state of ``num_envs`` fresh episodes (``None`` for a feed-forward policy)."""
        if not self.recurrent:
            return None
        zeros = jnp.zeros((num_envs, self.recurrent_size), jnp.float32)
        return {"actor": zeros, "critic": zeros}

    def step(self, params: dict, carry: dict, obs, start: jax.Array, action_mask: jax.Array | None = None):
        """One step of every env: ``(dist [N], value [N], carry)``, the carry reset where ``start``."""
        sequence = jax.tree.map(lambda x: x[None], obs)
        dist, values, carries = self._unroll(params, carry, sequence, start[None], action_mask)
        first = lambda tree: jax.tree.map(lambda x: x[0], tree)
        return first(dist), values[0], first(carries)

    def unroll(self, params: dict, carry: dict, obs, start: jax.Array, action_mask: jax.Array | None = None):
        """A time-major sequence ``obs [T, N, ...]`` from its first ``carry`` ``[N, ...]``:
        ``(dist [T, N], values [T, N])``."""
        dist, values, _ = self._unroll(params, carry, obs, start, action_mask)
        return dist, values

    def value_after(self, params: dict, carry: dict, obs) -> jax.Array:
        """V(``obs``) read on from ``carry`` (no reset); ``obs [*B, ...]`` with ``carry [*B, size]``."""
        batch_shape = carry["critic"].shape[:-1]
        flat = jax.tree.map(lambda x: x.reshape((1, -1) + x.shape[len(batch_shape):]), obs)
        start = jnp.zeros((1, math.prod(batch_shape)), bool)
        values, _ = self.critic.apply(params["critic"], flat, carry["critic"].reshape(-1, self.recurrent_size), start)
        return values.reshape(batch_shape)

    def _unroll(self, params, carry, obs, start, action_mask):
        dist, actor_carries = self.actor.apply(params["actor"], obs, carry["actor"], start)
        values, critic_carries = self.critic.apply(params["critic"], obs, carry["critic"], start)
        if action_mask is not None:
            dist = dist.replace(logits=mask_logits(dist.logits, action_mask))
        return dist, values, {"actor": actor_carries, "critic": critic_carries}

    def distribution(self, params: dict, obs: jax.Array, action_mask: jax.Array | None = None) -> Distribution:
        dist = self.actor.apply(params["actor"], obs)
        if action_mask is None:
            return dist
        return dist.replace(logits=mask_logits(dist.logits, action_mask))

    def value(self, params: dict, obs: jax.Array) -> jax.Array:
        return self.critic.apply(params["critic"], obs)


def make_policy(config: PPOConfig, spec: EnvSpec) -> ActorCritic:
    """The policy ``config`` describes, for the env ``spec`` describes."""
    leaves = spec.obs_leaves
    rank = tuple((k, len(leaf.shape)) for k, leaf in leaves.items()) if isinstance(leaves, dict) else len(leaves.shape)
    core = config.recurrent_size if config.recurrent == "gru" else None
    return ActorCritic(
        actor=Actor(spec.action_kind, spec.action_size, config.hidden_sizes, config.activation, rank, spec.action_nvec,
                    core),  # fmt: skip
        critic=Critic(config.hidden_sizes, config.activation, rank, core),
        obs_leaves=spec.obs_leaves,
        action_noise_size=spec.action_size,
        recurrent_size=core,
    )
