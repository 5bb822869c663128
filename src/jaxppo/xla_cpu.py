"""XLA:CPU workarounds: the same numbers as the plain code, programs that compile or run faster.

On XLA:CPU every random draw, loop, sort comparator and per-array update compiles to kernels of
its own, and compiling was most of a short CPU run (``docs/performance.md``). Each helper below
replaces one such construct with an equivalent that compiles to less, and says what it saves (the
measurements, on CartPole-v1 with CleanRL's defaults and 8 vmapped seeds, are in
``docs/performance.md``). The training
loop (and, for the initialiser, ``networks``; for the last two, the CLI) calls them by plain names:

- ``shuffle``: the epochs' minibatch permutations by packed single-array sorts;
- ``apply_update``: clip and Adam on all parameters raveled into one vector;
- ``all_finite``: one reduction over every leaf;
- ``draw_bits``: all of an iteration's randomness from one ``jax.random.bits`` call;
- ``orthogonal_kernels``: the orthogonal initialiser as a polar factor (no LAPACK custom call);
- ``unroll_threefry_on_cpu`` (opt-in, process-wide): jax's random hash lowered unrolled;
- ``use_host_devices`` (opt-in): one XLA:CPU device per core.

None of them is CPU-specific in what it computes; on GPU and TPU they are plain jnp code.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

# ---------------------------------------------------------------------------- shuffle
PACKED_INDEX_BITS_MAX = 20  # batches up to 2**20 samples shuffle by packed sorts (below)


def shuffle(bits: jax.Array | None, key: jax.Array, count: int, size: int) -> jax.Array:
    """``count`` uniformly random permutations of ``range(size)``, ``[count, size]`` int32.

    From ``bits`` (uint32, ``shuffle_noise_shape(count, size)``, drawn with other randomness)
    when the batch packs; ``bits`` is ``None`` above ``2 ** PACKED_INDEX_BITS_MAX`` elements,
    and then ``jax.random.permutation`` draws from ``key``.
    """
    if bits is None:
        return jax.vmap(lambda k: jax.random.permutation(k, size))(jax.random.split(key, count))
    return permutations_from_noise(bits)


def random_permutations(key: jax.Array, count: int, size: int) -> jax.Array:
    """``count`` independent, uniformly random permutations of ``range(size)``: ``[count, size]`` int32.

    ``jax.random.permutation`` sorts random keys together with the indices, which XLA:CPU does
    through a generic comparator, a noticeable share of a CartPole iteration. Sorting one uint32
    array is an order of magnitude faster, so each round here packs random high
    bits with every element's current position in the low bits and sorts that array alone; the
    sorted low bits are the new order. Equal random bits keep two elements in their current order,
    so rounds repeat until ``3 * log2(size)`` random bits are drawn (jax's own criterion for its
    rounds): each round's order is independent of the arrangement it is applied to, and a pair
    tied in every round is rarer than ``1 / size``. Larger batches use ``jax.random.permutation``.
    The CLI's CartPole run trains about a tenth faster than with the key-value sort.
    """
    shape = shuffle_noise_shape(count, size)
    return shuffle(None if shape is None else jax.random.bits(key, shape, jnp.uint32), key, count, size)


def shuffle_noise_shape(count: int, size: int) -> tuple[int, int, int] | None:
    """Shape of the random uint32 bits ``permutations_from_noise`` needs: ``(rounds, count, size)``;
    ``None`` above ``2 ** PACKED_INDEX_BITS_MAX`` elements (``shuffle`` then uses
    ``jax.random.permutation``)."""
    index_bits = _index_bits(size)
    if index_bits > PACKED_INDEX_BITS_MAX:
        return None
    return math.ceil(3 * index_bits / (32 - index_bits)), count, size


def _index_bits(size: int) -> int:
    return max(1, (size - 1).bit_length())  # low bits that hold a position in range(size)


def permutations_from_noise(noise: jax.Array) -> jax.Array:
    """``random_permutations`` from its random bits ``[rounds, count, size]``."""
    size = noise.shape[-1]
    low = (1 << _index_bits(size)) - 1
    noise = noise & jnp.uint32(0xFFFFFFFF ^ low)
    # A round's order depends on its own noise only, so every round sorts in one op.
    orders = (jnp.sort(noise | jnp.arange(size, dtype=jnp.uint32), axis=-1) & jnp.uint32(low)).astype(jnp.int32)
    permutations = orders[0]
    for order in orders[1:]:  # apply each round's order to the arrangement before it
        permutations = jnp.take_along_axis(permutations, order, axis=-1)
    return permutations


# ----------------------------------------------------------------------- apply update
def raveled(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` applied to all parameters raveled into one vector (its state is over that
    vector): the same arithmetic per element as per array for an element-wise transformation
    (clipping by the global norm, Adam, a learning rate, weight decay), except that a global norm
    is summed in another order (float32 rounding, so runs differ from per-array ones in the last
    bits, then as any perturbation grows), and one fused step to compile instead of one per
    parameter array: less compiling, and a little less run time (docs/performance.md). Not for
    transformations that treat each array apart (LAMB's or LARS's per-layer trust ratios,
    ``optax.masked``): those see one array here."""

    def init(params):
        return optimizer.init(ravel_pytree(params)[0])

    def update(updates, state, params=None):
        flat_updates, unravel = ravel_pytree(updates)
        flat_params = None if params is None else ravel_pytree(params)[0]
        flat_updates, state = optimizer.update(flat_updates, state, flat_params)
        return unravel(flat_updates), state

    return optax.GradientTransformation(init, update)


def apply_update(optimizer: optax.GradientTransformation, params, grads, opt_state):
    """One optimiser step: ``(new_params, new_opt_state, global gradient norm)``."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, jnp.linalg.norm(ravel_pytree(grads)[0])


# ------------------------------------------------------------------------- all finite
def all_finite(tree) -> jax.Array:
    """Whether every float in ``tree`` is finite: one reduction to compile instead of one per leaf
    (the divergence guard checks about 38 arrays: seconds less compiling)."""
    leaves = [x.ravel() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.isfinite(jnp.concatenate(leaves)).all()


# -------------------------------------------------------------------------- draw bits
def draw_bits(key: jax.Array, shapes: Sequence[tuple[int, ...]]) -> list[jax.Array]:
    """Random uint32 arrays of the given ``shapes``, all from one ``jax.random.bits`` call.

    One hash to compile instead of one per draw: an iteration used to draw three times per
    rollout step (a split, the action sample, the env keys) and once per shuffle, and each draw
    compiled to large kernels of its own (``train`` compiles in about three quarters of the time).
    """
    sizes = [math.prod(shape) for shape in shapes]
    bits = jax.random.bits(key, (sum(sizes),), jnp.uint32)
    offsets = list(itertools.accumulate(sizes))[:-1]
    return [part.reshape(shape) for part, shape in zip(jnp.split(bits, offsets), shapes, strict=True)]


def key_words(key: jax.Array) -> int:
    """uint32 words per key of ``key``'s kind (a typed key or a raw ``PRNGKey``)."""
    return (jax.random.key_data(key) if _is_typed(key) else key).shape[-1]


def keys_from_bits(like: jax.Array, data: jax.Array) -> jax.Array:
    """Keys of ``like``'s kind from random words ``[..., key_words(like)]`` (from ``draw_bits``)."""
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(like)) if _is_typed(like) else data


def _is_typed(key: jax.Array) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


# ------------------------------------------------------------- orthogonal initialiser
def polar_factors(matrices: Sequence[jax.Array], iterations: int = 60) -> list[jax.Array]:
    """Orthonormal polar factors ``U`` of tall ``[m, n]`` matrices ``A = U P`` (m >= n), in one loop.

    Instead of ``jnp.linalg.qr``: on jax 0.10.x CPU, ``jit(vmap(init))`` of the LAPACK QR custom
    call deadlocks the intra-op thread pool for >= 8 seeds; plain ``jnp`` is safe to vmap on
    every backend. The polar factor of a Gaussian matrix is Haar-distributed, the same law as
    ``jax.nn.initializers.orthogonal``. Newton–Schulz: ``X <- 1.5 X - 0.5 X X^T X`` from
    ``A / ||A||_F`` (singular values in (0, 1]); small singular values grow 1.5x per step, so 60
    steps cover condition numbers far beyond float32 precision.
    """
    start = tuple(a / jnp.linalg.norm(a) for a in matrices)
    step = lambda _, xs: tuple(1.5 * x - 0.5 * x @ (x.T @ x) for x in xs)
    return list(jax.lax.fori_loop(0, iterations, step, start))


def polar_factor(matrix: jax.Array, iterations: int = 60) -> jax.Array:
    """Orthonormal polar factor of one tall matrix (see ``polar_factors``)."""
    return polar_factors([matrix], iterations)[0]


def orthogonal_kernels(key: jax.Array, shapes: Sequence[tuple[int, int]], scales: Sequence[float]) -> list[jax.Array]:
    """``scale * Q`` with ``Q`` orthogonal for each 2-D ``shape``: one Gaussian draw, one loop.

    All of a network's kernels at once: one draw and one loop per layer made the init program
    compile about 1.6 times as long.
    """
    talls = [(max(shape), min(shape)) for shape in shapes]
    sizes = [rows * cols for rows, cols in talls]
    noise = jax.random.normal(key, (sum(sizes),), jnp.float32)
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    gaussians = [noise[o : o + size].reshape(tall) for o, size, tall in zip(offsets, sizes, talls, strict=True)]
    kernels = []
    for q, shape, scale in zip(polar_factors(gaussians), shapes, scales, strict=True):
        kernels.append(scale * (q if shape[0] >= shape[1] else q.T))
    return kernels


def orthogonal(scale: float = 1.0) -> Callable:
    """Orthogonal initializer (Saxe et al.), vmap-safe; same law as jax's ``orthogonal``."""

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError("orthogonal initializer needs at least a 2-D shape")
        flat = (math.prod(shape[:-1]), shape[-1])
        return orthogonal_kernels(key, [flat], [scale])[0].reshape(shape).astype(dtype)

    return init


# ------------------------------------------------------------------ Threefry lowering
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32_unrolled(key1, key2, x1, x2):
    """Threefry-2x32 (Salmon et al. 2011, 20 rounds), as jax computes it, with no loop."""

    def rotate_left(v, d):
        return (v << np.uint32(d)) | (v >> np.uint32(32 - d))

    ks = (key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA))
    x = [x1 + ks[0], x2 + ks[1]]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x[0] = x[0] + x[1]
            x[1] = x[0] ^ rotate_left(x[1], r)
        x = [x[0] + ks[(i + 1) % 3], x[1] + ks[(i + 2) % 3] + np.uint32(i + 1)]
    return tuple(x)


def unroll_threefry_on_cpu() -> bool:
    """Lower jax's Threefry hash for XLA:CPU as jax lowers it for GPU and TPU: the 20 rounds
    unrolled in one out-of-line function, instead of a 5-step loop inlined at every draw.

    Every ``jax.random`` draw is a Threefry hash. With the loop, XLA:CPU unrolls and fuses each
    of them into large kernels of its own: about half the compile time of
    ``jit(vmap(make_train(config)))`` for CartPole, of which this lowering saves a good part. The hash is the same, so every draw gives the same bits (tested on
    draws and on a training run).

    Process-wide: it registers a CPU lowering for ``jax.extend.random.threefry2x32_p``, so every
    later ``jit`` in the process uses it (programs compiled before keep theirs). Returns ``False``
    and changes nothing when this jax lacks the public APIs it needs.
    """
    try:
        from jax.extend.random import threefry2x32_p
        from jax.interpreters import mlir

        lower_fun, register_lowering = mlir.lower_fun, mlir.register_lowering
    except (ImportError, AttributeError):
        return False
    lowering = lower_fun(_threefry2x32_unrolled, multiple_results=True)
    register_lowering(threefry2x32_p, lowering, platform="cpu", inline=False)
    return True


# ---------------------------------------------------------------------- host devices
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def use_host_devices(count: int | None = None) -> bool:
    """Ask XLA:CPU for ``count`` host devices (default: one per core) via ``XLA_FLAGS``.

    XLA:CPU runs one program on one device mostly on one core; with one device per core, seeds
    sharded over them train more than twice as fast on two cores. Takes effect only before jax
    initialises its backends (before any computation); returns whether it could. An explicit
    device count already in ``XLA_FLAGS`` is kept. Harmless on GPU/TPU machines.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _DEVICE_COUNT_FLAG in flags or backends_are_initialized():
        return False
    count = count or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{flags} {_DEVICE_COUNT_FLAG}={count}".strip()
    return True


def backends_are_initialized() -> bool:
    """Whether jax has started its backends (after which XLA flags no longer apply)."""
    from jax._src import xla_bridge  # no public API tells this without starting them (jax 0.10)

    return xla_bridge.backends_are_initialized()
