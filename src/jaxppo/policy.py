"""The policy seam: everything the trainer knows about its networks.

A policy maps an observation batch to an action distribution and a value. Each network reads an
observation as ``encoder -> MLP hidden layers -> heads`` (``networks``): the encoder flattens
vector leaves and convolves image leaves (``observation_encoding`` decides per leaf from
``PPOConfig.encoder``), the MLP's last hidden layer feeds the heads (the actor's distribution
parameters, the critic's value). Two layouts (``PPOConfig.shared_trunk``): ``ActorCritic``,
separate actor and critic networks (CleanRL's), or ``SharedTrunkActorCritic``, one encoder and
MLP trunk with both heads. The trainer calls only:

- ``init(keys, obs)``: parameters, from two keys and an example observation batch;
- ``distribution(params, obs, action_mask=None)``: a ``distributions.Distribution``
  (``sample_from_uniform``, ``log_prob``, ``entropy``, ``mode``) over the env's actions, with the
  actions ``action_mask`` forbids at probability 0 in all four;
- ``value(params, obs)``: the critic's value estimates;
- ``action_noise_size``: uniform values one sample consumes (drawn with the iteration's noise).

Observations keep their env shape ``[*batch, *obs_shape]``, and a Dict observation is a dict of
such arrays; the encoder decides how to read them. A MultiDiscrete action space gets a
``MultiCategorical`` whose ``action_noise_size`` sums its sub-actions'.

A recurrent policy (``recurrent`` True: ``RecurrentPolicy``) carries a state per env, which takes
the place of ``distribution`` and ``value``. A user's recurrent network and the built-in GRU
(``networks.RecurrentActorCritic``, ``PPOConfig.recurrent="gru"``) are both ``NetworkPolicy``:

- ``initial_carry(num_envs)``: the carry at an episode's start;
- ``step(params, carry, obs, start, action_mask=None) -> (dist, value, carry)``: one step of
  every env, the carry reset first where ``start`` (the observation begins an episode);
- ``unroll(params, carry, obs, start, action_mask=None) -> (dist, values)``: a time-major
  sequence ``[T, N, ...]`` replayed from its first carry, resetting at the same steps;
- ``value_after(params, carry, obs)``: the value of ``obs`` read on from ``carry`` without a
  reset (V of the pre-reset final observation, for bootstrapping at time limits).

Every policy has an ``architecture``: what it is, in words and numbers (``config.json``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxppo.config import ConfigError, PPOConfig, first_line
from jaxppo.distributions import Categorical, DiagGaussian, Distribution, MultiCategorical, mask_logits
from jaxppo.envs import EnvSpec, ObsLeaf
from jaxppo.networks import Actor, ActorCriticTrunk, Critic, Encoding, LeafEncoder, RecurrentActorCritic

IMAGE_MIN_SIZE = 5  # encoder="auto" convolves [H, W, C] leaves whose H and W are at least this


class FeedForward:
    """A policy without a carry: it acts on each observation alone."""

    recurrent = False

    def initial_carry(self, num_envs: int) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class ActorCritic(FeedForward):
    """Separate actor and critic networks (CleanRL's layout), parameters ``{"actor", "critic"}``."""

    actor: Actor
    critic: Critic
    obs_leaves: Any  # envs.ObsLeaf, or {key: ObsLeaf} for a Dict observation space
    action_noise_size: int
    architecture: dict = dataclasses.field(default_factory=dict, compare=False)

    def init(self, keys: jax.Array, obs: jax.Array | None = None) -> dict:
        """Parameters from two independent keys ``[2]`` (the actor's, the critic's) and an
        example observation batch (default: one zero observation)."""
        obs = _example_observation(self.obs_leaves) if obs is None else obs
        return {"actor": self.actor.init(keys[0], obs), "critic": self.critic.init(keys[1], obs)}

    def distribution(self, params: dict, obs: jax.Array, action_mask: jax.Array | None = None) -> Distribution:
        return _masked(self.actor.apply(params["actor"], obs), action_mask)

    def value(self, params: dict, obs: jax.Array) -> jax.Array:
        return self.critic.apply(params["critic"], obs)


@dataclasses.dataclass(frozen=True)
class SharedTrunkActorCritic(FeedForward):
    """One encoder and MLP trunk with a policy head and a value head, parameters ``{"trunk"}``:
    the value loss, weighted by ``vf_coef``, trains the features the policy reads."""

    network: ActorCriticTrunk
    obs_leaves: Any
    action_noise_size: int
    architecture: dict = dataclasses.field(default_factory=dict, compare=False)

    def init(self, keys: jax.Array, obs: jax.Array | None = None) -> dict:
        """Parameters from the first of two keys ``[2]`` (the seam's signature) and an example
        observation batch (default: one zero observation)."""
        obs = _example_observation(self.obs_leaves) if obs is None else obs
        return {"trunk": self.network.init(keys[0], obs)}

    def distribution(self, params: dict, obs: jax.Array, action_mask: jax.Array | None = None) -> Distribution:
        return _masked(self.network.apply(params["trunk"], obs)[0], action_mask)

    def value(self, params: dict, obs: jax.Array) -> jax.Array:
        return self.network.apply(params["trunk"], obs)[1]


class TrainablePolicy(Protocol):
    """The policy seam as the trainer, evaluation and loading call it (see the module's text).
    ``ActorCritic``, ``SharedTrunkActorCritic`` and ``NetworkPolicy`` satisfy it; a feed-forward
    policy has no carry (``recurrent`` False, ``initial_carry`` None)."""

    action_noise_size: int
    architecture: dict

    @property
    def recurrent(self) -> bool: ...

    def init(self, keys: jax.Array, obs=None) -> dict: ...

    def distribution(self, params: dict, obs, action_mask=None) -> Distribution: ...

    def value(self, params: dict, obs) -> jax.Array: ...

    def initial_carry(self, num_envs: int): ...


class RecurrentPolicy(TrainablePolicy, Protocol):
    """A policy with a carry (``recurrent`` True): what ``train.SequenceLayout`` calls."""

    def step(self, params: dict, carry, obs, start: jax.Array, action_mask=None): ...

    def unroll(self, params: dict, carry, obs, start: jax.Array, action_mask=None): ...

    def value_after(self, params: dict, carry, obs) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class NetworkPolicy:
    """A flax module behind the seam: a user's (``make_trainer(..., network=factory)``) or the
    built-in recurrent network (``networks.RecurrentActorCritic``).

    Feed-forward: ``module(obs) -> (action_params, value)``. Recurrent (the module defines
    ``initial_carry(batch_size) -> carry``): ``module(obs [T, N, ...], carry [N, ...], start [T, N])
    -> (action_params [T, N, A], values [T, N], carries [T, N, ...])``, the carry reset to
    ``initial_carry`` before reading the observations where ``start`` is True, ``carries[t]`` the
    carry after step t. ``action_params`` are logits (Discrete; concatenated per sub-action for
    MultiDiscrete) or the Gaussian mean (Box; jaxppo adds the state-independent ``log_std``);
    ``value`` may keep a trailing axis of 1. Parameters: ``{"network", "log_std" (Box only)}``.
    """

    module: Any  # flax.linen.Module
    obs_leaves: Any
    action_kind: str
    action_size: int
    action_nvec: tuple[int, ...] | None
    action_noise_size: int
    architecture: dict = dataclasses.field(default_factory=dict, compare=False)

    @property
    def recurrent(self) -> bool:
        return hasattr(self.module, "initial_carry")

    def initial_carry(self, num_envs: int):
        """The carry of ``num_envs`` fresh episodes (``None`` for a feed-forward network)."""
        return self.module.initial_carry(num_envs) if self.recurrent else None

    def init(self, keys: jax.Array, obs=None) -> dict:
        obs = _example_observation(self.obs_leaves) if obs is None else obs
        if self.recurrent:
            batch = jax.tree.leaves(obs)[0].shape[0]
            sequence = jax.tree.map(lambda x: x[None], obs)
            network = self.module.init(keys[0], sequence, self.initial_carry(batch), jnp.ones((1, batch), bool))
        else:
            network = self.module.init(keys[0], obs)
        params = {"network": network}
        if self.action_kind == "continuous":
            params["log_std"] = jnp.zeros(self.action_size, jnp.float32)
        return params

    def _distribution(self, params: dict, action_params: jax.Array) -> Distribution:
        if self.action_nvec is not None:
            return MultiCategorical(logits=action_params, nvec=self.action_nvec)
        if self.action_kind == "discrete":
            return Categorical(logits=action_params)
        return DiagGaussian(mean=action_params, log_std=jnp.broadcast_to(params["log_std"], action_params.shape))

    def distribution(self, params: dict, obs, action_mask=None) -> Distribution:
        action_params, _ = self.module.apply(params["network"], obs)
        return _masked(self._distribution(params, action_params), action_mask)

    def value(self, params: dict, obs) -> jax.Array:
        return self._values(self.module.apply(params["network"], obs)[1], obs)

    def step(self, params: dict, carry, obs, start: jax.Array, action_mask: jax.Array | None = None):
        """One step of every env: ``(dist [N], value [N], carry)``, the carry reset where ``start``."""
        sequence = jax.tree.map(lambda x: x[None], obs)
        dist, values, carries = self._unroll(params, carry, sequence, start[None])
        first = lambda tree: jax.tree.map(lambda x: x[0], tree)
        return _masked(first(dist), action_mask), values[0], first(carries)

    def unroll(self, params: dict, carry, obs, start: jax.Array, action_mask: jax.Array | None = None):
        """A time-major sequence ``obs [T, N, ...]`` from its first ``carry`` ``[N, ...]``:
        ``(dist [T, N], values [T, N])``."""
        dist, values, _ = self._unroll(params, carry, obs, start)
        return _masked(dist, action_mask), values

    def value_after(self, params: dict, carry, obs) -> jax.Array:
        """V(``obs``) read on from ``carry`` (no reset); ``obs [*B, ...]`` with ``carry [*B, ...]``."""
        batch_shape = self._batch_shape(obs)
        batch = math.prod(batch_shape)
        flat = jax.tree.map(lambda x: x.reshape((1, batch) + x.shape[len(batch_shape) :]), obs)
        flat_carry = jax.tree.map(lambda c: c.reshape((batch,) + c.shape[len(batch_shape) :]), carry)
        start = jnp.zeros((1, batch), bool)
        values = self.module.apply(params["network"], flat, flat_carry, start)[1]
        return self._values(values, flat).reshape(batch_shape)

    def _unroll(self, params, carry, obs, start):
        action_params, values, carries = self.module.apply(params["network"], obs, carry, start)
        return self._distribution(params, action_params), self._values(values, obs), carries

    def _batch_shape(self, obs) -> tuple[int, ...]:
        leaf, obs_leaf = jax.tree.leaves(obs)[0], jax.tree.leaves(self.obs_leaves, is_leaf=_is_obs_leaf)[0]
        return leaf.shape[: leaf.ndim - len(obs_leaf.shape)]

    def _values(self, value: jax.Array, obs) -> jax.Array:
        """The network's value without its trailing axis of 1, if it has one beyond the batch's axes."""
        return value[..., 0] if value.ndim == len(self._batch_shape(obs)) + 1 else value


def _is_obs_leaf(x) -> bool:
    return isinstance(x, ObsLeaf)


def make_network_policy(factory: Callable, spec: EnvSpec, name: str | None = None) -> NetworkPolicy:
    """``factory(action_size=...)``'s module behind the seam, its outputs checked on an example
    observation (``ConfigError`` naming what is wrong)."""
    name = name or getattr(factory, "__qualname__", repr(factory))
    try:
        module = factory(action_size=spec.action_size)
    except Exception as error:
        raise ConfigError(f"network {name}(action_size={spec.action_size}) failed: {first_line(error)}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"network {name}(action_size=...) must return a flax.linen.Module, "
                          f"got {type(module).__name__}")  # fmt: skip
    # one uniform per logit or action dim, as the built-in policies draw
    architecture = {"network": type(module).__name__, "recurrent": hasattr(module, "initial_carry"),
                    "distribution": describe_distribution(spec)}  # fmt: skip
    policy = NetworkPolicy(module, spec.obs_leaves, spec.action_kind, spec.action_size, spec.action_nvec,
                           spec.action_size, architecture)  # fmt: skip
    _check_outputs(policy, spec, name)
    return policy


def _check_outputs(policy: NetworkPolicy, spec: EnvSpec, name: str) -> None:
    obs = _example_observation(spec.obs_leaves)  # [1, ...]
    try:
        params = jax.eval_shape(policy.init, jax.random.split(jax.random.key(0), 2))
        if policy.recurrent:
            sequence = jax.tree.map(lambda x: x[None], obs)
            outputs = jax.eval_shape(lambda p: policy.module.apply(p["network"], sequence, policy.initial_carry(1),
                                                                   jnp.ones((1, 1), bool)), params)  # fmt: skip
            batch = (1, 1)
        else:
            outputs = jax.eval_shape(lambda p: policy.module.apply(p["network"], obs), params)
            batch = (1,)
    except Exception as error:
        raise ConfigError(f"network {name} fails on this env's observations {spec.obs_shape}: "
                          f"{first_line(error)}") from None  # fmt: skip
    expected = 3 if policy.recurrent else 2
    form = "(action_params, values, carries)" if policy.recurrent else "(action_params, value)"
    if not isinstance(outputs, tuple) or len(outputs) != expected:
        raise ConfigError(f"network {name} must return {form}, got {type(outputs).__name__}")
    action_params, value = outputs[0], outputs[1]
    what = {"discrete": "logits", "continuous": "Gaussian mean"}[spec.action_kind]
    if tuple(action_params.shape) != (*batch, spec.action_size):
        raise ConfigError(f"network {name}'s action_params have shape {tuple(action_params.shape)} for a batch "
                          f"{batch}; this env needs {(*batch, spec.action_size)} ({spec.action_size} {what})")  # fmt: skip
    if tuple(value.shape) not in (batch, (*batch, 1)):
        raise ConfigError(f"network {name}'s value has shape {tuple(value.shape)} for a batch {batch}; "
                          f"it must be {batch} (or {(*batch, 1)})")  # fmt: skip


def _example_observation(obs_leaves):
    return jax.tree.map(lambda leaf: jnp.zeros((1, *leaf.shape), jnp.float32), obs_leaves)


def _masked(dist: Distribution, action_mask: jax.Array | None) -> Distribution:
    return dist if action_mask is None else dist.replace(logits=mask_logits(dist.logits, action_mask))


def make_policy(config: PPOConfig, spec: EnvSpec) -> TrainablePolicy:
    """The policy ``config`` describes, for the env ``spec`` describes (``ConfigError`` when its
    encoder does not fit the observations)."""
    encoding = observation_encoding(config, spec.obs_leaves)
    network = dict(hidden_sizes=config.hidden_sizes, activation=config.activation, encoding=encoding)
    architecture = describe_architecture(config, spec)
    if config.recurrent == "gru":  # the recurrent form a user's network takes, built in
        module = RecurrentActorCritic(spec.action_size, config.recurrent_size, shared=config.shared_trunk, **network)
        return NetworkPolicy(module, spec.obs_leaves, spec.action_kind, spec.action_size, spec.action_nvec,
                             spec.action_size, architecture)  # fmt: skip
    actor = dict(action_kind=spec.action_kind, action_size=spec.action_size, action_nvec=spec.action_nvec)
    if config.shared_trunk:
        return SharedTrunkActorCritic(ActorCriticTrunk(**actor, **network), spec.obs_leaves, spec.action_size,
                                      architecture)  # fmt: skip
    return ActorCritic(Actor(**actor, **network), Critic(**network), spec.obs_leaves, spec.action_size, architecture)


def describe_architecture(config: PPOConfig, spec: EnvSpec) -> dict:
    """What ``make_policy`` builds for this env, in words and numbers (``config.json``'s
    ``architecture``): the encoder of each observation leaf (what ``encoder="auto"`` chose), the
    recurrent core, the MLP, the layout and the action distribution."""
    encoding = observation_encoding(config, spec.obs_leaves)
    leaves = dict(encoding) if isinstance(spec.obs_leaves, dict) else {"observation": encoding}
    shapes = spec.obs_leaves if isinstance(spec.obs_leaves, dict) else {"observation": spec.obs_leaves}
    encoders = {}
    for name, leaf in leaves.items():
        shape = list(shapes[name].shape)
        if leaf.convolves:
            encoders[name] = {"shape": shape, "encoder": "cnn", "channels": list(leaf.channels),
                              "kernels": list(leaf.kernels), "strides": list(leaf.strides)}  # fmt: skip
        else:
            encoders[name] = {"shape": shape, "encoder": "flatten"}
    return {
        "encoders": encoders,
        "recurrent_core": f"gru({config.recurrent_size})" if config.recurrent == "gru" else None,
        "hidden_sizes": list(config.hidden_sizes),
        "activation": config.activation,
        "layout": "shared trunk, policy and value heads" if config.shared_trunk else "separate actor and critic",
        "distribution": describe_distribution(spec),
    }


def describe_distribution(spec: EnvSpec) -> str:
    """The action distribution every policy of this env gets, in words."""
    if spec.action_kind == "continuous":
        distribution = f"diagonal Gaussian over {spec.action_size} dims (state-independent log-std)"
    elif spec.action_nvec is not None:
        distribution = f"categorical per sub-action of MultiDiscrete{list(spec.action_nvec)}"
    else:
        distribution = f"categorical over {spec.action_size} actions"
    if spec.has_action_mask:
        distribution += ", masked by the env's action mask"
    return distribution


def architecture_text(architecture: dict) -> str:
    """``describe_architecture`` (or a user's network's description) in one line."""
    if "network" in architecture:
        core = ", recurrent" if architecture["recurrent"] else ""
        return f"{architecture['network']} (a user's network{core}); {architecture['distribution']}"
    parts = []
    for name, leaf in architecture["encoders"].items():
        shape = "x".join(map(str, leaf["shape"]))
        if leaf["encoder"] == "cnn":
            layers = ", ".join(f"{c}@{k}x{k}/{s}" for c, k, s in zip(leaf["channels"], leaf["kernels"], leaf["strides"],
                                                                       strict=True))  # fmt: skip
            parts.append(f"{name} [{shape}] -> cnn ({layers})")
        else:
            parts.append(f"{name} [{shape}] -> flatten")
    core = f" -> {architecture['recurrent_core']}" if architecture["recurrent_core"] else ""
    mlp = ",".join(map(str, architecture["hidden_sizes"]))
    return (f"{'; '.join(parts)}{core} -> mlp {mlp} {architecture['activation']}; {architecture['layout']}; "
            f"{architecture['distribution']}")


def observation_encoding(config: PPOConfig, obs_leaves) -> Encoding:
    """Each observation leaf's ``LeafEncoder``: convolved (``config.cnn_*``) or flattened, by
    ``config.encoder``: ``"auto"`` convolves image-like leaves (``[H, W, C]``, H and W at least
    ``IMAGE_MIN_SIZE``), ``"cnn"`` every ``[H, W, C]`` leaf (at least one), ``"mlp"`` none."""
    if isinstance(obs_leaves, dict):
        encoding = tuple(
            (key, _leaf_encoder(config, leaf, f"observation leaf {key!r}")) for key, leaf in obs_leaves.items()
        )
        convolved = any(leaf.convolves for _, leaf in encoding)
    else:
        encoding = _leaf_encoder(config, obs_leaves, "the observation")
        convolved = encoding.convolves
    if config.encoder == "cnn" and not convolved:
        shapes = (
            {key: leaf.shape for key, leaf in obs_leaves.items()} if isinstance(obs_leaves, dict) else obs_leaves.shape
        )
        raise ConfigError(f"encoder='cnn' needs an [H, W, C] observation leaf, and these observations are {shapes}; "
                          f"use encoder='mlp' or 'auto'")  # fmt: skip
    return encoding


def _leaf_encoder(config: PPOConfig, leaf: ObsLeaf, where: str) -> LeafEncoder:
    rank = len(leaf.shape)
    image_like = rank == 3 and min(leaf.shape[:2]) >= IMAGE_MIN_SIZE
    if not ((config.encoder == "cnn" and rank == 3) or (config.encoder == "auto" and image_like)):
        return LeafEncoder(rank)
    encoder = LeafEncoder(rank, config.cnn_channels, config.cnn_kernels, config.cnn_strides)
    inputs = encoder.conv_shapes(leaf.shape)
    for layer, (kernel, (height, width, _)) in enumerate(zip(encoder.kernels, inputs[:-1], strict=True)):
        if kernel > min(height, width):
            raise ConfigError(
                f"{where} of shape {leaf.shape}: convolution layer {layer + 1}'s {kernel}x{kernel} kernel is larger "
                f"than its {height}x{width} input (cnn_kernels {config.cnn_kernels}, cnn_strides "
                f"{config.cnn_strides}); use smaller kernels or strides, or encoder='mlp'"
            )
    return encoder
