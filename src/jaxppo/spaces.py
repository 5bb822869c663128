"""Action spaces gymnax lacks: ``MultiDiscrete``, several independent categorical sub-actions.

A gymnax env declares it from ``action_space(params)`` as it would a ``Discrete``; the policy then
has one categorical per sub-action (log-probabilities and entropies summed), and an action is an
int32 vector ``[len(nvec)]``. gymnax is imported lazily (see ``gymnax_import.import_gymnax``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import ConfigError


class MultiDiscrete:
    """``len(nvec)`` sub-actions, sub-action ``i`` in ``range(nvec[i])`` (as gymnasium's ``MultiDiscrete``)."""

    def __init__(self, nvec):
        values = np.asarray(nvec)
        if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer) or (values < 1).any():
            raise ConfigError(f"MultiDiscrete needs a non-empty list of positive integers, got {nvec!r}")
        self.nvec = tuple(int(n) for n in values)
        self.shape = (len(self.nvec),)
        self.dtype = jnp.int32

    def __repr__(self) -> str:
        return f"MultiDiscrete({list(self.nvec)})"

    def sample(self, key: jax.Array) -> jax.Array:
        """Each sub-action uniformly at random."""
        return jax.random.randint(key, self.shape, 0, jnp.asarray(self.nvec), self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return (x.shape == self.shape) & jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)))
