"""train_many: seeds sharded over 4 host CPU devices equal one device (fresh process per check)."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np, jaxppo
    from jaxppo.parallel import train_many
    assert len(jax.devices()) == 4

    def close(a, b):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
                x, y = jax.random.key_data(x), jax.random.key_data(y)
            np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=1e-5, atol=1e-6)

    config = jaxppo.PPOConfig(total_timesteps=2 * 512)
    all_keys = jax.random.split(jax.random.key(0), 10)
    keys = all_keys[7:]
    one_device = jax.jit(jax.vmap(jaxppo.make_train(config), in_axes=(0, None)))(keys, jaxppo.PPOHParams())

    chunked = train_many(config, all_keys, seed_chunk=4)  # 10 seeds on 4 devices: 3 chunks of 4, 2 padded
    assert chunked.metrics["policy_loss"].shape == (10, 2)
    last = lambda tree: jax.tree.map(lambda x: x[7:], tree)  # across the last two chunks
    close(last(chunked.state), one_device.state)
    close(last(chunked.metrics), one_device.metrics)

    grid, _ = jaxppo.hparam_grid(learning_rate=[1e-3, 2.5e-4])
    on_grid = train_many(config, keys, grid)  # 3 seeds on 4 devices: padded, no chunks
    assert on_grid.metrics["policy_loss"].shape == (2, 3, 2)
    close(jax.tree.map(lambda x: x[1], on_grid.state), one_device.state)
    print("OK")
    """
)


@pytest.mark.timeout(300)
def test_train_many_on_four_host_devices_equals_one_device():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_padding_and_chunk_sizes():
    from jaxppo.parallel import padded_seed_count

    assert padded_seed_count(8, 2) == (8, 8)
    assert padded_seed_count(3, 4) == (4, 4)
    assert padded_seed_count(10, 4, seed_chunk=4) == (12, 4)
    assert padded_seed_count(10, 2, seed_chunk=3) == (12, 4)
    assert padded_seed_count(5, 1, seed_chunk=2) == (6, 2)


def test_train_many_on_one_device_is_jit_of_vmap_bit_for_bit():
    import jax

    import jaxppo
    from jaxppo.parallel import train_many
    from utils import tree_equal

    config = jaxppo.PPOConfig(total_timesteps=512)
    keys = jax.random.split(jax.random.key(4), 3)
    many = train_many(config, keys, devices=jax.local_devices()[:1])
    vmapped = jax.jit(jax.vmap(jaxppo.make_train(config), in_axes=(0, None)))(keys, jaxppo.PPOHParams())
    assert tree_equal(many.metrics, vmapped.metrics)
    assert tree_equal(many.state.params, vmapped.state.params)
