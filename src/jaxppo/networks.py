"""The networks: observation encoders and MLP heads, with CleanRL's orthogonal initialisation.

A feed-forward network reads an observation as ``Encoder -> MLP hidden layers -> heads``: the ``Encoder``
flattens vector leaves and convolves image leaves (``LeafEncoder`` says which, per leaf), the
``MLP`` maps the concatenated features through its hidden layers to one linear head per output.
``policy`` puts these networks together behind the policy seam: an ``Actor`` and a ``Critic``
apart (CleanRL's layout), or one ``ActorCriticTrunk`` with both heads. ``RecurrentActorCritic``
is the built-in recurrent network, in the form a user's recurrent network takes
(``policy.NetworkPolicy``): a GRU core between the encoder and the MLP, per network or shared.

Kernels are drawn with ``xla_cpu.orthogonal_kernels`` (a polar factor instead of a QR
decomposition, all of a module's kernels from one draw and one loop: see there why). The
convolutions are im2col (``conv_patches``) followed by a Dense layer: on XLA:CPU a convolution
vmapped over seeds' weights lowers to a grouped convolution that runs several times slower than the
same numbers as a matmul (``experiments/bench_encoders.py``; the measurement: docs/performance.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

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
HIDDEN_SCALE = math.sqrt(2)  # CleanRL's gain of every hidden (and convolution) kernel
POLICY_HEAD_SCALE = 0.01
VALUE_HEAD_SCALE = 1.0


def _given(value: jax.Array) -> Callable:
    return lambda key, shape, dtype=jnp.float32: value.astype(dtype)


class MLP(nn.Module):
    """Hidden layers (orthogonal sqrt(2), zero bias), then one linear head per ``(size, scale)`` of
    ``heads`` (orthogonal ``scale``, zero bias), each reading the last hidden layer. Returns the
    heads' outputs as a tuple. Parameters ``Dense_0 ..``: the hidden layers, then the heads in order.
    """

    hidden_sizes: Sequence[int]
    activation: str
    heads: Sequence[tuple[int, float]]

    @nn.compact
    def __call__(self, x):
        act = ACTIVATION_FNS[self.activation]
        depth = len(self.hidden_sizes)
        width = self.hidden_sizes[-1] if depth else x.shape[-1]
        kernel_inits = [nn.initializers.zeros] * (depth + len(self.heads))  # apply never calls them
        if self.is_initializing():  # all kernels at once: one draw, one loop (see xla_cpu.orthogonal_kernels)
            hidden = list(zip([x.shape[-1], *self.hidden_sizes[:-1]], self.hidden_sizes, strict=True))
            shapes = hidden + [(width, size) for size, _ in self.heads]
            scales = [HIDDEN_SCALE] * depth + [scale for _, scale in self.heads]
            kernel_inits = [_given(k) for k in orthogonal_kernels(self.make_rng("params"), shapes, scales)]
        for size, kernel_init in zip(self.hidden_sizes, kernel_inits[:depth], strict=True):
            x = act(nn.Dense(size, kernel_init=kernel_init, bias_init=nn.initializers.zeros)(x))
        head_inits = kernel_inits[depth:]
        return tuple(
            nn.Dense(size, kernel_init=init, bias_init=nn.initializers.zeros)(x)
            for (size, _), init in zip(self.heads, head_inits, strict=True)
        )


# ---------------------------------------------------------------------- encoders
class LeafEncoder(NamedTuple):
    """How one observation leaf becomes features: its trailing ``rank`` dims flattened, after
    convolution layers (VALID, relu; ``channels[i]`` filters of ``kernels[i]`` x ``kernels[i]``,
    stride ``strides[i]``) when ``channels`` is not empty (an ``[H, W, C]`` leaf only)."""

    rank: int
    channels: tuple[int, ...] = ()
    kernels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    @property
    def convolves(self) -> bool:
        return bool(self.channels)

    def conv_shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The ``[H, W, C]`` input of every convolution layer and, last, the output's shape."""
        shapes = [tuple(shape[-3:])]
        for channels, kernel, stride in zip(self.channels, self.kernels, self.strides, strict=True):
            height, width, _ = shapes[-1]
            shapes.append(((height - kernel) // stride + 1, (width - kernel) // stride + 1, channels))
        return shapes


# A whole observation's encoders: one LeafEncoder, or ((key, LeafEncoder), ...) in key order for a dict.
Encoding = LeafEncoder | tuple[tuple[str, LeafEncoder], ...]


def conv_patches(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Every ``kernel`` x ``kernel`` window (VALID, ``stride``) of ``x [..., H, W, C]`` as one vector:
    ``[..., Ho, Wo, kernel * kernel * C]``, ordered (row offset, column offset, channel) like a
    flax ``Conv`` kernel ``[kernel, kernel, C, out]`` reshaped to ``[kernel * kernel * C, out]``.

    im2col from ``kernel ** 2`` strided slices: a convolution is then a Dense layer on the
    patches, which XLA:CPU runs as a matmul also when vmapped over seeds' weights.
    """
    height, width = x.shape[-3], x.shape[-2]
    rows, cols = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    reach_rows, reach_cols = (rows - 1) * stride + 1, (cols - 1) * stride + 1
    windows = [
        x[..., i : i + reach_rows : stride, j : j + reach_cols : stride, :]
        for i in range(kernel)
        for j in range(kernel)
    ]
    return jnp.concatenate(windows, axis=-1)


def conv_layer(x: jax.Array, channels: int, kernel: int, stride: int, kernel_init: Callable, name: str) -> jax.Array:
    """One VALID convolution of ``x [..., H, W, C]`` as a Dense layer ``name`` (kernel
    ``[kernel * kernel * C, channels]``, zero bias) on its patches; called inside a module."""
    dense = nn.Dense(channels, kernel_init=kernel_init, bias_init=nn.initializers.zeros, name=name)
    return dense(conv_patches(x, kernel, stride))


def flatten_observations(obs, obs_rank) -> jax.Array:
    """Each observation's ``obs_rank`` trailing dims flattened, as float32.

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


class Encoder(nn.Module):
    """Observations ``[*batch, *obs_shape]`` (a dict for a Dict space) to features ``[*batch, F]``:
    per leaf its ``LeafEncoder``, the leaves' features concatenated in key order. Convolution
    kernels: ``conv_i`` (``<key>_conv_i`` for a dict leaf), all drawn at once, orthogonal sqrt(2)
    on the kernel flattened to ``[k * k * C, out]``, zero bias. A flattening encoder has no parameters.
    """

    encoding: Encoding

    @nn.compact
    def __call__(self, obs):
        named = (("", self.encoding),) if isinstance(self.encoding, LeafEncoder) else self.encoding
        leaves = {key: (obs[key] if key else obs) for key, _ in named}
        layers = [  # (name, channels, kernel, stride, input [H, W, C]) of every convolution, leaf by leaf
            (f"{key}_conv_{i}" if key else f"conv_{i}", channels, kernel, stride, shape)
            for key, leaf in named if leaf.convolves
            for i, (channels, kernel, stride, shape) in enumerate(
                zip(leaf.channels, leaf.kernels, leaf.strides, leaf.conv_shapes(leaves[key].shape)[:-1], strict=True))
        ]  # fmt: skip
        kernel_inits = [nn.initializers.zeros] * len(layers)  # apply never calls them
        if layers and self.is_initializing():
            shapes = [(kernel * kernel * shape[-1], channels) for _, channels, kernel, _, shape in layers]
            kernels = orthogonal_kernels(self.make_rng("params"), shapes, [HIDDEN_SCALE] * len(shapes))
            kernel_inits = [_given(k) for k in kernels]
        inits = dict(zip([layer[0] for layer in layers], kernel_inits, strict=True))
        features = []
        for key, leaf in named:
            x = leaves[key].astype(jnp.float32)
            for i, (channels, kernel, stride) in enumerate(zip(leaf.channels, leaf.kernels, leaf.strides, strict=True)):
                name = f"{key}_conv_{i}" if key else f"conv_{i}"
                x = nn.relu(conv_layer(x, channels, kernel, stride, inits[name], name))
            features.append(flatten_observations(x, leaf.rank))
        return features[0] if len(features) == 1 else jnp.concatenate(features, axis=-1)


# ------------------------------------------------------------------------ networks
def _action_distribution(module: nn.Module, out: jax.Array, action_kind: str, action_nvec):
    """The actor head's output as a distribution: categorical logits (one per sub-action for
    MultiDiscrete), or a Gaussian mean with a state-independent ``log_std`` parameter of ``module``."""
    if action_nvec is not None:
        return MultiCategorical(logits=out, nvec=action_nvec)
    if action_kind == "discrete":
        return Categorical(logits=out)
    log_std = module.param("log_std", nn.initializers.zeros, (out.shape[-1],))
    return DiagGaussian(mean=out, log_std=log_std)


class Actor(nn.Module):
    """Policy network: categorical logits, or a Gaussian mean with a state-independent log-std."""

    action_kind: str  # "discrete" | "continuous"
    action_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    encoding: Encoding = LeafEncoder(rank=1)  # per leaf: flattened, or convolved then flattened
    action_nvec: tuple[int, ...] | None = None  # MultiDiscrete: one categorical per sub-action

    @nn.compact
    def __call__(self, obs):
        features = Encoder(self.encoding)(obs)
        (out,) = MLP(self.hidden_sizes, self.activation, ((self.action_size, POLICY_HEAD_SCALE),))(features)
        return _action_distribution(self, out, self.action_kind, self.action_nvec)


class Critic(nn.Module):
    """Value network: one scalar per observation."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    encoding: Encoding = LeafEncoder(rank=1)

    @nn.compact
    def __call__(self, obs):
        features = Encoder(self.encoding)(obs)
        return MLP(self.hidden_sizes, self.activation, ((1, VALUE_HEAD_SCALE),))(features)[0][..., 0]


class ActorCriticTrunk(nn.Module):
    """One encoder and MLP trunk with two heads: ``(action distribution, value)``. The policy head
    (``MLP_0/Dense_<depth>``, scale 0.01) and the value head (``Dense_<depth + 1>``, scale 1) read
    the same features, so the value loss (``vf_coef``) shapes the trunk too."""

    action_kind: str
    action_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    encoding: Encoding = LeafEncoder(rank=1)
    action_nvec: tuple[int, ...] | None = None

    @nn.compact
    def __call__(self, obs):
        features = Encoder(self.encoding)(obs)
        heads = ((self.action_size, POLICY_HEAD_SCALE), (1, VALUE_HEAD_SCALE))
        out, value = MLP(self.hidden_sizes, self.activation, heads)(features)
        return _action_distribution(self, out, self.action_kind, self.action_nvec), value[..., 0]


class RecurrentTower(nn.Module):
    """``Encoder -> GRU core -> MLP heads`` over a time-major sequence ``obs [T, N, ...]`` from
    ``carry [N, size]``: ``(heads' outputs, carries [T, N, size])``."""

    encoding: Encoding
    size: int
    hidden_sizes: Sequence[int]
    activation: str
    heads: Sequence[tuple[int, float]]

    @nn.compact
    def __call__(self, obs, carry, start):
        features = Encoder(self.encoding)(obs)
        carries = ScannedGRU(self.size, name="core")(carry, (features, start))[1]
        return MLP(self.hidden_sizes, self.activation, self.heads)(carries), carries


class RecurrentActorCritic(nn.Module):
    """The built-in recurrent network (``recurrent="gru"``), in the recurrent form of a user's
    network (``policy.NetworkPolicy``): ``(obs [T, N, ...], carry, start [T, N]) -> (action_params
    [T, N, A], values [T, N], carries)``, the carry reset where ``start``. An actor and a critic
    apart, each with its GRU core (carry ``{"actor", "critic"}``), or one trunk and core read by
    both heads (``shared``, carry ``{"trunk"}``)."""

    action_size: int
    recurrent_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    encoding: Encoding = LeafEncoder(rank=1)
    shared: bool = False

    def initial_carry(self, batch_size: int) -> dict:
        names = ("trunk",) if self.shared else ("actor", "critic")
        return {name: jnp.zeros((batch_size, self.recurrent_size), jnp.float32) for name in names}

    @nn.compact
    def __call__(self, obs, carry, start):
        tower = functools.partial(RecurrentTower, self.encoding, self.recurrent_size, self.hidden_sizes, self.activation)
        policy_head, value_head = (self.action_size, POLICY_HEAD_SCALE), (1, VALUE_HEAD_SCALE)
        if self.shared:
            (out, value), carries = tower((policy_head, value_head), name="trunk")(obs, carry["trunk"], start)
            return out, value[..., 0], {"trunk": carries}
        (out,), actor_carries = tower((policy_head,), name="actor")(obs, carry["actor"], start)
        (value,), critic_carries = tower((value_head,), name="critic")(obs, carry["critic"], start)
        return out, value[..., 0], {"actor": actor_carries, "critic": critic_carries}
