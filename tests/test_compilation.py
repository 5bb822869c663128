"""xla_cpu.unroll_threefry_on_cpu, a different lowering of the same hash (fresh process per setting,
since it changes jax's lowering table for the whole process), and the garbage-collection pause."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np, jaxppo

    applied = jaxppo.xla_cpu.unroll_threefry_on_cpu() if sys.argv[1] == "unrolled" else False
    key = jax.random.key(3)
    lowered = jax.jit(lambda k: jax.random.bits(k, (4,))).lower(key).as_text()
    print("LOOP" if "stablehlo.while" in lowered else "NO LOOP", "APPLIED" if applied else "NOT APPLIED")

    def draws(k):
        k1, k2 = jax.random.split(k)
        return (
            jax.random.bits(k, (1000,)),
            jax.random.key_data(jax.random.split(k, 7)),
            jax.random.normal(k1, (33,)),
            jax.random.categorical(k2, jnp.zeros((5, 3))),
            jax.random.permutation(k, 100),
            jax.random.uniform(jax.random.fold_in(k, 5), (9,)),
        )

    config = jaxppo.PPOConfig(total_timesteps=2 * 512)
    result = jax.jit(jaxppo.make_train(config))(key)
    arrays = jax.tree.leaves((jax.jit(draws)(key), jax.jit(jax.vmap(draws))(jax.random.split(key, 4)),
                              result.metrics, jax.random.key_data(result.state.key), result.state.params))
    np.savez(sys.argv[2], *[np.asarray(x) for x in arrays])
    """
)


def _run(setting, path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, setting, str(path)], capture_output=True, text=True,
                            timeout=280)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.mark.timeout(300)
def test_unrolled_threefry_draws_the_same_bits_and_trains_identically(tmp_path):
    assert _run("default", tmp_path / "default.npz") == "LOOP NOT APPLIED"  # jax's CPU default: a loop
    assert _run("unrolled", tmp_path / "unrolled.npz") == "NO LOOP APPLIED"
    with np.load(tmp_path / "default.npz") as default, np.load(tmp_path / "unrolled.npz") as unrolled:
        assert len(default.files) > 20
        for name in default.files:
            np.testing.assert_array_equal(default[name], unrolled[name], err_msg=name)


def test_garbage_collection_is_paused_inside_the_block_and_restored_after():
    import gc

    from jaxppo.cli.loop import garbage_collection_paused

    assert gc.isenabled()
    with garbage_collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), garbage_collection_paused():
        raise RuntimeError("tracing failed")
    assert gc.isenabled()  # re-enabled after an error too
    gc.disable()
    try:
        with garbage_collection_paused():
            pass
        assert not gc.isenabled()  # a caller's own setting is kept
    finally:
        gc.enable()
