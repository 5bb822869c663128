"""Run-directory helpers that the CLI trains with."""

import jax
import numpy as np
import pytest

import jaxppo
from jaxppo.parallel import batched_init
from utils import FULL_OPTIMIZATION


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_sequential_init_equals_vmapped_init(env_id):
    # The CLI initialises agents one after another on CPU (faster to compile): same [G, S] states.
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(env_id=env_id))
    grid, _ = jaxppo.hparam_grid(learning_rate=[1e-3, 2e-3, 3e-3])
    keys = jax.random.split(jax.random.key(3), 5)
    # to 1e-7 as the CLI compiles them, with XLA's optimisations (conftest turns them off)
    vmapped = jax.jit(batched_init(trainer, 3), compiler_options=FULL_OPTIMIZATION)(keys, grid)
    sequential = jax.jit(batched_init(trainer, 3, sequential=True), compiler_options=FULL_OPTIMIZATION)(keys, grid)
    assert vmapped.params["actor"]["params"]["MLP_0"]["Dense_0"]["kernel"].shape[:2] == (3, 5)
    for x, y in zip(jax.tree.leaves(vmapped), jax.tree.leaves(sequential), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=0, atol=1e-7)
    # Seeds differ from each other; grid points share a seed's initial state.
    kernel = np.asarray(sequential.params["critic"]["params"]["MLP_0"]["Dense_0"]["kernel"])
    assert not np.allclose(kernel[0, 0], kernel[0, 1])
    np.testing.assert_array_equal(kernel[0], kernel[2])
