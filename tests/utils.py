"""Tree comparisons for tests (PRNG key arrays compared through their raw data)."""

import jax
import jax.numpy as jnp
import numpy as np


def _raw(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def tree_equal(a, b) -> bool:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b), "trees differ in structure"
    return all(np.array_equal(_raw(x), _raw(y), equal_nan=True) for x, y in zip(leaves_a, leaves_b, strict=True))


def assert_tree_close(a, b, atol=1e-5, rtol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(_raw(x).astype(np.float64), _raw(y).astype(np.float64), atol=atol, rtol=rtol)
