"""The PPO loss as a pure function returning ``(loss, metrics)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

ADV_EPS = 1e-8


def normalize_advantages(advantages: jax.Array, ddof: int = 0) -> jax.Array:
    """Per-minibatch ``(A - mean) / (std + 1e-8)``; ``ddof`` 0 (default) or 1 (CleanRL torch)."""
    return (advantages - advantages.mean()) / (jnp.std(advantages, ddof=ddof) + ADV_EPS)


def ppo_loss(
    logp_new: jax.Array,
    logp_old: jax.Array,
    advantages: jax.Array,
    values_new: jax.Array,
    values_old: jax.Array,
    returns: jax.Array,
    entropy: jax.Array,
    *,
    clip_coef,
    vf_coef,
    ent_coef,
    norm_adv: bool = True,
    clip_vloss: bool = True,
    adv_std_ddof: int = 0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss on one minibatch (flat ``[B]`` arrays).

    ``loss = pg_loss - ent_coef * mean(entropy) + vf_coef * v_loss`` with
    ``v_loss = 0.5 * mean(max((v - R)^2, (v_clipped - R)^2))`` when ``clip_vloss``
    (value clipping reuses ``clip_coef``), else ``0.5 * mean((v - R)^2)``.
    Metrics: ``policy_loss``, ``value_loss``, ``entropy``, ``old_approx_kl`` (k1),
    ``approx_kl`` (k3), ``clipfrac`` (fraction with ``|ratio - 1| > clip_coef``).
    """
    log_ratio = logp_new - logp_old
    ratio = jnp.exp(log_ratio)
    if norm_adv:
        advantages = normalize_advantages(advantages, adv_std_ddof)
    pg_loss = jnp.maximum(-advantages * ratio, -advantages * jnp.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)).mean()

    value_error = (values_new - returns) ** 2
    if clip_vloss:
        values_clipped = values_old + jnp.clip(values_new - values_old, -clip_coef, clip_coef)
        value_error = jnp.maximum(value_error, (values_clipped - returns) ** 2)
    v_loss = 0.5 * value_error.mean()

    entropy_loss = entropy.mean()
    loss = pg_loss - ent_coef * entropy_loss + vf_coef * v_loss

    ratio_ng = jax.lax.stop_gradient(ratio)
    log_ratio_ng = jax.lax.stop_gradient(log_ratio)
    metrics = {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy_loss,
        "old_approx_kl": (-log_ratio_ng).mean(),
        "approx_kl": ((ratio_ng - 1.0) - log_ratio_ng).mean(),
        "clipfrac": (jnp.abs(ratio_ng - 1.0) > clip_coef).astype(jnp.float32).mean(),
    }
    return loss, metrics


def explained_variance(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """``1 - Var[y - y_hat] / Var[y]``; NaN when the targets have no variance."""
    var_y = jnp.var(targets)
    return jnp.where(var_y == 0, jnp.nan, 1.0 - jnp.var(targets - predictions) / var_y)
