"""Running mean/variance statistics as a pytree, and the two normalisers built on them.

Statistics follow gymnasium's ``RunningMeanStd`` (start mean 0, var 1, count 1e-4; parallel
merge of batch moments), so observation normalisation and reward scaling match CleanRL's
wrappers. Each seed carries its own statistics, shared by that seed's envs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

EPS = 1e-8


@struct.dataclass
class RunningMeanStd:
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape=()) -> RunningMeanStd:
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.asarray(1e-4, jnp.float32),
        )

    def update(self, batch: jax.Array) -> RunningMeanStd:
        """Merge the moments of ``batch`` (leading axis = samples)."""
        batch_mean = jnp.mean(batch, axis=0)
        batch_var = jnp.var(batch, axis=0)
        batch_count = batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize_observations(stats: RunningMeanStd, obs: jax.Array, clip: float) -> jax.Array:
    return jnp.clip((obs - stats.mean) / jnp.sqrt(stats.var + EPS), -clip, clip)


def scale_rewards(stats: RunningMeanStd, rewards: jax.Array, clip: float) -> jax.Array:
    """Divide by the std of the discounted return (no mean subtraction), then clip."""
    return jnp.clip(rewards / jnp.sqrt(stats.var + EPS), -clip, clip)


def update_discounted_return(
    discounted_return: jax.Array, rewards: jax.Array, terminated: jax.Array, gamma
) -> jax.Array:
    """gymnasium ``NormalizeReward``: ``G = G * gamma * (1 - terminated) + r``."""
    return discounted_return * gamma * (1.0 - terminated.astype(rewards.dtype)) + rewards


# Observations may be a dict of arrays (a Dict space): one RunningMeanStd per leaf, None for the
# uint8 leaves, which are scaled by 1/255 instead (envs.prepare_observations). A single array keeps
# a single RunningMeanStd.
def _is_stats(x) -> bool:
    return x is None or isinstance(x, RunningMeanStd)


def create_observation_stats(obs_leaves, obs):
    """Per-leaf statistics, updated with the first observations ``obs`` ``[N, ...]``."""

    def create(leaf, x):
        return None if leaf.uint8 else RunningMeanStd.create(leaf.shape).update(x)

    return jax.tree.map(create, obs_leaves, obs)


def update_observation_stats(stats, obs):
    return jax.tree.map(lambda s, x: None if s is None else s.update(x), stats, obs, is_leaf=_is_stats)


def normalize_observation_tree(stats, obs, clip: float):
    """``normalize_observations`` leaf by leaf (a uint8 leaf, without statistics, stays as it is)."""
    return jax.tree.map(
        lambda s, x: x if s is None else normalize_observations(s, x, clip), stats, obs, is_leaf=_is_stats
    )
