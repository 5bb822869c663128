"""Actor and critic MLPs with CleanRL's orthogonal initialisation.

The orthogonal initializer here computes its QR factorisation with Householder
reflections written in plain ``jnp`` instead of ``jnp.linalg.qr``. On jax 0.10.x CPU,
``jit(vmap(init))`` of the LAPACK QR custom call deadlocks the intra-op thread pool for
>= 8 seeds (also with several host devices); keeping the custom call out of vmapped code
removes the hazard for every user, whatever their XLA flags. The distribution is the same
Haar measure as ``jax.nn.initializers.orthogonal``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxppo.distributions import Categorical, DiagGaussian

ACTIVATION_FNS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
}


def householder_qr(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reduced QR of a tall ``[m, n]`` matrix (m >= n) by Householder reflections.

    Pure ``jnp`` (no LAPACK custom call), so it is safe to vmap on every backend.
    Returns ``q`` ``[m, n]`` with orthonormal columns and upper-triangular ``r`` ``[n, n]``.
    """
    m, n = matrix.shape
    rows = jnp.arange(m)

    def reflect(k, carry):
        r, q = carry
        column = jnp.where(rows >= k, r[:, k], 0.0)
        alpha = -jnp.where(column[k] >= 0, 1.0, -1.0) * jnp.linalg.norm(column)
        v = column - alpha * (rows == k)
        v_norm = jnp.linalg.norm(v)
        v = jnp.where(v_norm > 0, v / jnp.where(v_norm > 0, v_norm, 1.0), 0.0)
        r = r - 2.0 * jnp.outer(v, v @ r)
        q = q - 2.0 * jnp.outer(q @ v, v)  # q accumulates H_0 H_1 ... H_k
        return r, q

    r, q = jax.lax.fori_loop(0, n, reflect, (matrix, jnp.eye(m, dtype=matrix.dtype)))
    return q[:, :n], jnp.triu(r[:n, :])


def orthogonal(scale: float = 1.0) -> Callable:
    """Orthogonal initializer (Saxe et al.), vmap-safe; same law as jax's ``orthogonal``."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError("orthogonal initializer needs at least a 2-D shape")
        num_rows = math.prod(shape[:-1])
        num_cols = shape[-1]
        tall = (max(num_rows, num_cols), min(num_rows, num_cols))
        a = jax.random.normal(key, tall, jnp.float32)
        q, r = householder_qr(a)
        q = q * jnp.sign(jnp.diag(r))  # unique QR: makes Q Haar-distributed
        if num_rows < num_cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


class MLP(nn.Module):
    """Hidden layers (orthogonal sqrt(2), zero bias) then a linear head."""

    hidden_sizes: Sequence[int]
    activation: str
    out_size: int
    head_scale: float

    @nn.compact
    def __call__(self, x):
        act = ACTIVATION_FNS[self.activation]
        for size in self.hidden_sizes:
            x = nn.Dense(size, kernel_init=orthogonal(math.sqrt(2)), bias_init=nn.initializers.zeros)(x)
            x = act(x)
        return nn.Dense(self.out_size, kernel_init=orthogonal(self.head_scale), bias_init=nn.initializers.zeros)(x)


class Actor(nn.Module):
    """Policy network: categorical logits, or a Gaussian mean with a state-independent log-std."""

    action_kind: str  # "discrete" | "continuous"
    action_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_sizes, self.activation, self.action_size, head_scale=0.01)(obs)
        if self.action_kind == "discrete":
            return Categorical(logits=out)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
        return DiagGaussian(mean=out, log_std=log_std)


class Critic(nn.Module):
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs):
        return MLP(self.hidden_sizes, self.activation, 1, head_scale=1.0)(obs)[..., 0]
