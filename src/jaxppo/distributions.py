"""Action distributions as pure functions: categorical and diagonal Gaussian.

Log-probabilities and entropies of a diagonal Gaussian are summed over action dims.
``sample_from_uniform(u)`` turns uniform noise (one value per logit or action dim, as
``uniform_from_bits`` makes) into a sample, so a rollout can draw all its noise at once;
``sample(key)`` draws that noise itself.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct


class Distribution(Protocol):
    """What the trainer uses of an action distribution (batched over leading dims)."""

    def sample_from_uniform(self, uniform: jax.Array) -> jax.Array:
        """A sample from uniform noise in [0, 1), one value per ``action_noise_size``."""

    def sample(self, key: jax.Array) -> jax.Array: ...

    def log_prob(self, actions: jax.Array) -> jax.Array: ...

    def entropy(self) -> jax.Array: ...

    def mode(self) -> jax.Array: ...


# The logit of a masked action: far below any reachable logit (so it is never sampled and has
# probability 0 in float32), yet finite, so entropies and gradients stay finite (0 * log 0 = 0).
MASKED_LOGIT = -1e9


def mask_logits(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """``logits`` with the actions ``mask`` forbids (False) set to ``MASKED_LOGIT``; ``None``: all allowed."""
    return logits if mask is None else jnp.where(mask, logits, MASKED_LOGIT)


class Categorical(NamedTuple):
    """A categorical over the last axis (masked logits already applied: see ``mask_logits``)."""

    logits: jax.Array  # [..., num_actions]

    def replace(self, **changes) -> Categorical:
        return self._replace(**changes)

    def sample(self, key: jax.Array) -> jax.Array:
        return self.sample_from_uniform(jax.random.uniform(key, self.logits.shape, self.logits.dtype))

    def sample_from_uniform(self, uniform: jax.Array) -> jax.Array:
        """Gumbel-max: ``argmax(logits + Gumbel noise)`` (as ``jax.random.categorical``)."""
        uniform = jnp.maximum(uniform, jnp.finfo(uniform.dtype).tiny)  # log(0) is not finite
        return jnp.argmax(self.logits - jnp.log(-jnp.log(uniform)), axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1)

    def log_prob(self, actions: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits, axis=-1)
        return jnp.take_along_axis(log_p, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits, axis=-1)
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


@struct.dataclass
class MultiCategorical:
    """Independent categoricals, one per sub-action of a ``spaces.MultiDiscrete``: the logits of
    every sub-action side by side, ``[..., sum(nvec)]``; actions ``[..., len(nvec)]``.
    Log-probabilities and entropies are summed over the sub-actions."""

    logits: jax.Array
    nvec: tuple[int, ...] = struct.field(pytree_node=False)

    def parts(self, values: jax.Array) -> list[jax.Array]:
        """``values [..., sum(nvec)]`` split into one array per sub-action."""
        bounds = list(itertools.accumulate(self.nvec))[:-1]
        return jnp.split(values, bounds, axis=-1)

    def sub_distributions(self) -> list[Categorical]:
        return [Categorical(part) for part in self.parts(self.logits)]

    def sample(self, key: jax.Array) -> jax.Array:
        return self.sample_from_uniform(jax.random.uniform(key, self.logits.shape, self.logits.dtype))

    def sample_from_uniform(self, uniform: jax.Array) -> jax.Array:
        """One uniform value per logit, as ``Categorical``'s, sub-action by sub-action."""
        pieces = zip(self.sub_distributions(), self.parts(uniform), strict=True)
        return jnp.stack([dist.sample_from_uniform(u) for dist, u in pieces], axis=-1).astype(jnp.int32)

    def mode(self) -> jax.Array:
        return jnp.stack([dist.mode() for dist in self.sub_distributions()], axis=-1).astype(jnp.int32)

    def log_prob(self, actions: jax.Array) -> jax.Array:
        dists = self.sub_distributions()
        return sum(dist.log_prob(actions[..., i]) for i, dist in enumerate(dists))

    def entropy(self) -> jax.Array:
        return sum(dist.entropy() for dist in self.sub_distributions())


class DiagGaussian(NamedTuple):
    mean: jax.Array  # [..., action_dim]
    log_std: jax.Array  # broadcastable to mean

    def sample(self, key: jax.Array) -> jax.Array:
        return self.sample_from_uniform(jax.random.uniform(key, self.mean.shape, self.mean.dtype))

    def sample_from_uniform(self, uniform: jax.Array) -> jax.Array:
        """Standard normal noise by the inverse error function (as ``jax.random.normal``)."""
        low = jnp.nextafter(jnp.asarray(-1.0, uniform.dtype), jnp.asarray(1.0, uniform.dtype))  # (-1, 1) open
        centred = jnp.maximum(low, 2.0 * uniform + low)
        return self.mean + jnp.exp(self.log_std) * (math.sqrt(2.0) * jax.lax.erf_inv(centred))

    def mode(self) -> jax.Array:
        return self.mean

    def log_prob(self, actions: jax.Array) -> jax.Array:
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        z = (actions - self.mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

    def entropy(self) -> jax.Array:
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return jnp.sum(log_std + 0.5 * (1.0 + math.log(2 * math.pi)), axis=-1)


def uniform_from_bits(bits: jax.Array) -> jax.Array:
    """Random uint32 ``bits`` to float32 uniform in [0, 1): 23 random mantissa bits (as ``jax.random.uniform``)."""
    mantissa = jnp.right_shift(bits, jnp.uint32(9)) | jnp.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0
