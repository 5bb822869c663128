"""The networks: an observation encoder and MLP heads, with CleanRL's orthogonal initialisation.

An ``MLP`` draws the Gaussian noise of all its kernels at once and orthogonalises them in one
loop (``xla_cpu.orthogonal_kernels``, a polar factor instead of a QR decomposition: see there
why). ``policy.ActorCritic`` puts these modules together behind the policy seam.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxppo.distributions import Categorical, DiagGaussian, MultiCategorical
from jaxppo.xla_cpu import orthogonal, orthogonal_kernels

ACTIVATION_FNS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
}


def _given(value: jax.Array) -> Callable:
    return lambda key, shape, dtype=jnp.float32: value.astype(dtype)


class MLP(nn.Module):
    """Hidden layers (orthogonal sqrt(2), zero bias) then a linear head."""

    hidden_sizes: Sequence[int]
    activation: str
    out_size: int
    head_scale: float

    @nn.compact
    def __call__(self, x):
        act = ACTIVATION_FNS[self.activation]
        sizes = [*self.hidden_sizes, self.out_size]
        kernel_inits = [nn.initializers.zeros] * len(sizes)  # apply never calls them
        if self.is_initializing():  # all kernels at once: one draw, one loop (see xla_cpu.orthogonal_kernels)
            shapes = list(zip([x.shape[-1], *sizes[:-1]], sizes, strict=True))
            scales = [math.sqrt(2)] * len(self.hidden_sizes) + [self.head_scale]
            kernel_inits = [_given(k) for k in orthogonal_kernels(self.make_rng("params"), shapes, scales)]
        for i, (size, kernel_init) in enumerate(zip(sizes, kernel_inits, strict=True)):
            x = nn.Dense(size, kernel_init=kernel_init, bias_init=nn.initializers.zeros)(x)
            if i < len(self.hidden_sizes):
                x = act(x)
        return x


def flatten_observations(obs, obs_rank) -> jax.Array:
    """The MLP encoder's input: each observation's ``obs_rank`` trailing dims flattened, as float32.

    ``obs`` is ``[*batch, *obs_shape]`` for any number of leading batch dims (envs, steps). For a
    Dict observation space ``obs`` is a dict and ``obs_rank`` its ``((key, rank), ...)`` in key
    order: every leaf is flattened and the leaves are concatenated.
    """
    if not isinstance(obs_rank, int):
        return jnp.concatenate([flatten_observations(obs[key], rank) for key, rank in obs_rank], axis=-1)
    batch_shape = obs.shape[: obs.ndim - obs_rank]
    return obs.reshape(batch_shape + (-1,)).astype(jnp.float32)


class ScannedGRU(nn.Module):
    """A GRU over a time-major sequence ``[T, N, F]`` from the carry ``[N, size]``, reset to zeros
    before every step whose ``start`` ``[T, N]`` is set (an episode's first observation).
    Returns ``(carries [T, N, size], outputs [T, N, size])``: a GRU's output is its new state.

    Kernels are orthogonal (``xla_cpu.orthogonal``: vmap-safe, unlike a batched QR on XLA:CPU).
    """

    size: int

    @functools.partial(nn.scan, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0)
    @nn.compact
    def __call__(self, carry, inputs):
        features, start = inputs
        carry = jnp.where(start[..., None], jnp.zeros_like(carry), carry)
        cell = nn.GRUCell(self.size, kernel_init=orthogonal(1.0), recurrent_kernel_init=orthogonal(1.0))
        carry, _ = cell(carry, features)
        return carry, carry


def recurrent_features(size: int | None, features, carry, start):
    """Pass ``features`` through the calling module's GRU core when it has one (``size``): then
    ``features`` are time-major ``[T, N, F]``; returns ``(features, carries or None)``."""
    if size is None:
        return features, None
    carries = ScannedGRU(size, name="core")(carry, (features, start))[1]
    return carries, carries


class Actor(nn.Module):
    """Policy network: categorical logits, or a Gaussian mean with a state-independent log-std.

    With a recurrent core (``recurrent_size``) it reads a time-major sequence ``obs [T, N, ...]``
    from ``carry [N, size]`` with episode ``start [T, N]`` flags and returns
    ``(distribution over [T, N], carries [T, N, size])``.
    """

    action_kind: str  # "discrete" | "continuous"
    action_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    obs_rank: int | tuple = 1  # dims of one observation (flattened for the MLP); per key for a dict
    action_nvec: tuple[int, ...] | None = None  # MultiDiscrete: one categorical per sub-action
    recurrent_size: int | None = None  # a GRU core of this size between the encoder and the MLP

    @nn.compact
    def __call__(self, obs, carry=None, start=None):
        features = flatten_observations(obs, self.obs_rank)
        features, carries = recurrent_features(self.recurrent_size, features, carry, start)
        out = MLP(self.hidden_sizes, self.activation, self.action_size, head_scale=0.01)(features)
        if self.action_nvec is not None:
            dist = MultiCategorical(logits=out, nvec=self.action_nvec)
        elif self.action_kind == "discrete":
            dist = Categorical(logits=out)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
            if carries is not None:  # per step, so the [T, N] distribution can be indexed by step
                log_std = jnp.broadcast_to(log_std, out.shape)
            dist = DiagGaussian(mean=out, log_std=log_std)
        return dist if carries is None else (dist, carries)


class Critic(nn.Module):
    """Value network: one scalar per observation (with a recurrent core: ``(values [T, N],
    carries [T, N, size])`` of a time-major sequence, as ``Actor``)."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    obs_rank: int | tuple = 1
    recurrent_size: int | None = None

    @nn.compact
    def __call__(self, obs, carry=None, start=None):
        features = flatten_observations(obs, self.obs_rank)
        features, carries = recurrent_features(self.recurrent_size, features, carry, start)
        values = MLP(self.hidden_sizes, self.activation, 1, head_scale=1.0)(features)[..., 0]
        return values if carries is None else (values, carries)
