"""Faster XLA:CPU compilation, opt-in per process (the CLI opts in).

``unroll_threefry_on_cpu()`` changes how jax lowers its random-number hash for the CPU, not
what it computes: the same bits, a program that compiles about 3 s faster (CartPole, 8 seeds).
``garbage_collection_paused()`` keeps Python's cycle collector out of tracing.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def garbage_collection_paused():
    """Python's cyclic garbage collector off inside the block, as it was after it.

    Tracing a training program allocates millions of short-lived objects, which trigger
    collections that walk everything alive (jax, flax, gymnax...): about 0.25 s of the CLI's
    start-up for CartPole. Cycles made meanwhile are collected after the block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def unroll_threefry_on_cpu() -> bool:
    """Lower jax's Threefry hash for XLA:CPU as jax lowers it for GPU and TPU: the 20 rounds
    unrolled in one out-of-line function, instead of a 5-step loop inlined at every draw.

    Every ``jax.random`` draw (split, bits, normal, categorical, permutation) is a Threefry hash.
    With the loop, XLA:CPU unrolls and fuses each of them into large kernels of its own: about
    5 s of the 11 s it took to compile ``jit(vmap(make_train(config)))`` for CartPole at 8 seeds
    on a 2-core CPU, and this lowering saves 2 to 3.5 s of it (README, "Performance"). The hash
    is the same, so every draw gives the same bits (tested on draws and on a training run).

    Process-wide: it replaces the CPU entry of jax's lowering table for the hash, so every later
    ``jit`` in the process uses it (programs compiled before keep theirs). Returns ``False`` and
    changes nothing when this jax lacks the internals it replaces.
    """
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32

        primitive, unrolled = threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_lowering_rule
    except (ImportError, AttributeError):
        return False
    mlir.register_lowering(primitive, unrolled, platform="cpu", inline=False)
    return True
