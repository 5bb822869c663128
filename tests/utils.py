"""Tree comparisons for tests (PRNG key arrays compared through their raw data), and the XLA
options the tests compile with."""

import jax
import jax.numpy as jnp
import numpy as np

# Most tests compile for far longer than they run, so conftest compiles every program of the test
# processes, and of the commands they start, without XLA:CPU's backend optimisations: the same
# numbers up to float32 rounding, about 40 % less compiling, a run 2-3x slower.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
# XLA's defaults, for ``jax.jit(..., compiler_options=FULL_OPTIMIZATION)`` where running is the
# cost (the learning tests) or the numbers must be the users' bit for bit (the golden runs).
FULL_OPTIMIZATION = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}


def xla_flags(options: dict) -> str:
    """``options`` as ``XLA_FLAGS`` text."""
    return " ".join(f"--{name}={str(value).lower()}" for name, value in options.items())


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
