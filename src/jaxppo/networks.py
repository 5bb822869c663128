"""Actor and critic MLPs with CleanRL's orthogonal initialisation.

The orthogonal initializer takes the polar factor of a Gaussian matrix, computed by a
Newton–Schulz iteration in plain ``jnp``, instead of ``jnp.linalg.qr``. On jax 0.10.x CPU,
``jit(vmap(init))`` of the LAPACK QR custom call deadlocks the intra-op thread pool for >= 8
seeds (also with several host devices); keeping custom calls out of vmapped code removes the
hazard for every user, whatever their XLA flags. The polar factor of a Gaussian matrix is
Haar-distributed, the same law as ``jax.nn.initializers.orthogonal``; the iteration also
compiles faster than a Householder QR loop (about 10 % of the whole ``train`` compile).
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


def polar_factor(matrix: jax.Array, iterations: int = 60) -> jax.Array:
    """Orthonormal polar factor ``U`` of a tall ``[m, n]`` matrix ``A = U P`` (m >= n).

    Newton–Schulz: ``X <- 1.5 X - 0.5 X X^T X`` from ``A / ||A||_F`` (singular values in
    (0, 1]); small singular values grow 1.5x per step, so 60 steps cover condition numbers
    far beyond float32 precision. Pure ``jnp``: safe to vmap on every backend.
    """
    x = matrix / jnp.linalg.norm(matrix)
    return jax.lax.fori_loop(0, iterations, lambda _, x: 1.5 * x - 0.5 * x @ (x.T @ x), x)


def orthogonal(scale: float = 1.0) -> Callable:
    """Orthogonal initializer (Saxe et al.), vmap-safe; same law as jax's ``orthogonal``."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError("orthogonal initializer needs at least a 2-D shape")
        num_rows = math.prod(shape[:-1])
        num_cols = shape[-1]
        tall = (max(num_rows, num_cols), min(num_rows, num_cols))
        q = polar_factor(jax.random.normal(key, tall, jnp.float32))
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
