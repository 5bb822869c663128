"""Generalised advantage estimation, time-major and pure."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float | jax.Array,
    gae_lambda: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE over a time-major rollout ``[T, ...]``.

    ``next_values[t]`` is V(s_{t+1}) before any auto-reset: V(final_observation) where
    step ``t`` ended an episode. ``terminated`` stops bootstrapping; ``terminated or
    truncated`` stops the advantage recursion (the next step belongs to a new episode)::

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lambda * (1 - (terminated_t or truncated_t)) * A_{t+1}

    Returns ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    chex.assert_equal_shape([rewards, values, next_values, terminated, truncated])
    dtype = values.dtype
    not_terminated = 1.0 - terminated.astype(dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(dtype)
    deltas = rewards.astype(dtype) + gamma * not_terminated * next_values - values

    def backward(next_advantage, step):
        delta, continues = step
        advantage = delta + gamma * gae_lambda * continues * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, not_done), reverse=True)
    return advantages, advantages + values
