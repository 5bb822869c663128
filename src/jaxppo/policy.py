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
sub-actions'. Where a recurrent core would extend the seam (none exists yet): a carry for
``distribution``/``value`` with an ``initial_carry``, kept per env in ``TrainState``.
"""

from __future__ import annotations

import dataclasses
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

    def init(self, keys: jax.Array, obs: jax.Array | None = None) -> dict:
        """Parameters from two independent keys ``[2]`` (the actor's, the critic's) and an
        example observation batch (default: one zero observation)."""
        if obs is None:
            obs = jax.tree.map(lambda leaf: jnp.zeros((1, *leaf.shape), jnp.float32), self.obs_leaves)
        return {"actor": self.actor.init(keys[0], obs), "critic": self.critic.init(keys[1], obs)}

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
    return ActorCritic(
        actor=Actor(spec.action_kind, spec.action_size, config.hidden_sizes, config.activation, rank, spec.action_nvec),
        critic=Critic(config.hidden_sizes, config.activation, rank),
        obs_leaves=spec.obs_leaves,
        action_noise_size=spec.action_size,
    )
