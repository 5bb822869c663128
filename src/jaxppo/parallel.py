"""Seeds across devices: ``jax.sharding`` on the seed axis, padding, and seed chunks.

- ``xla_cpu.use_host_devices()`` makes XLA:CPU expose one device per core (call it before jax runs
  anything); the CLI does it by default. Seeds sharded over one host device per core train
  more than twice as fast as on one device, since XLA:CPU runs one device's program mostly on one
  core (docs/performance.md).
- ``train_many(config, keys, hparams)`` trains seeds (and a grid) sharded over all local
  devices with a ``Mesh``/``NamedSharding`` on the seed axis. Seed counts that do not divide
  the device count are padded with copies of the last seed, dropped afterwards (vmapped seeds
  are independent: padding adds agents, it never mixes them).
- ``batched_init`` initialises a ``[G, S]`` block of agents, vmapped or one after another.
- ``seed_chunk``: ``lax.map`` over chunks of vmapped seeds bounds device memory; same results.
- Several processes (hosts) joined by ``jax.distributed.initialize``: each trains the
  contiguous block of seeds ``process_seed_range`` gives it, on its own local devices, with no
  communication during training; ``barrier`` lines them up around shared files.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxppo.config import ConfigError, PPOConfig, PPOHParams
from jaxppo.train import TrainResult, make_train

SEED_AXIS = "seeds"


def seed_mesh(devices=None) -> Mesh:
    return Mesh(np.asarray(devices if devices is not None else jax.local_devices()), (SEED_AXIS,))


def padded_seed_count(seeds: int, devices: int, seed_chunk: int | None = None) -> tuple[int, int]:
    """``(padded seeds, seeds per chunk)``: chunks hold a multiple of the device count."""
    per_chunk = seeds if not seed_chunk else min(seed_chunk, seeds)
    per_chunk = math.ceil(per_chunk / devices) * devices
    return math.ceil(seeds / per_chunk) * per_chunk, per_chunk


def pad_seeds(tree, axis: int, size: int):
    """Pad the seed axis to ``size`` with copies of the last seed (key arrays included)."""
    current = jax.tree.leaves(tree)[0].shape[axis]
    if current == size:
        return tree
    index = jnp.concatenate([jnp.arange(current), jnp.full(size - current, current - 1)])
    return jax.tree.map(lambda x: jnp.take(x, index, axis=axis), tree)


def seed_chunked(fn, chunks: int):
    """``fn(batched, *rest)`` vmapped over axis 0 of ``batched``, in ``chunks`` sequential pieces.

    ``chunks == 1`` is a plain vmap; more chunks run through ``lax.map`` to bound memory.
    """

    def run(batched, *rest):
        over_seeds = jax.vmap(lambda b: fn(b, *rest))
        if chunks == 1:
            return over_seeds(batched)
        pieces = jax.tree.map(lambda x: x.reshape((chunks, x.shape[0] // chunks) + x.shape[1:]), batched)
        out = jax.lax.map(over_seeds, pieces)
        return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), out)

    return run


def shard_seeds(fn, mesh: Mesh, in_axes, out_axis: int):
    """Run ``fn`` on each device's own slice of the seed axis (``shard_map``), no communication.

    ``in_axes[i]`` is the seed axis of argument ``i`` (``None``: replicated); every output has
    its seed axis at ``out_axis``. Keeping devices independent matters on CPU: collectives
    between more host devices than cores can stall XLA's rendezvous.
    """

    def spec(axis):
        return P() if axis is None else P(*([None] * axis), SEED_AXIS)

    return jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=tuple(spec(a) for a in in_axes),
        out_specs=spec(out_axis),
        check_vma=False,
    )


@dataclasses.dataclass(frozen=True)
class SeedLayout:
    """How a block of seeds runs on the local devices: padded with copies of the last seed to fill
    them, in ``chunks`` sequential pieces per device (``seed_chunk`` bounds memory), sharded on the
    seed axis with no communication between devices. ``train_many`` and the command line's loop
    both lay their seeds out with it."""

    mesh: Mesh
    seeds: int
    padded: int
    chunks: int

    def over_seeds(self, fn):
        """``fn(one, *rest)`` vmapped over axis 0 of its first argument, ``chunks`` pieces at a time."""
        return seed_chunked(fn, self.chunks)

    def shard(self, fn, in_axes, out_axis: int):
        """``fn`` on each device's own slice of the seed axis (see ``shard_seeds``)."""
        return shard_seeds(fn, self.mesh, in_axes, out_axis)

    def put(self, tree, axis: int):
        """``tree``'s seed axis ``axis`` padded to ``padded`` and sharded over the devices."""
        spec = P(*([None] * axis), SEED_AXIS)
        return jax.device_put(pad_seeds(tree, axis, self.padded), NamedSharding(self.mesh, spec))


def seed_layout(seeds: int, seed_chunk: int | None = None, devices=None) -> SeedLayout:
    """The ``SeedLayout`` of ``seeds`` seeds over ``devices`` (default: the local ones)."""
    mesh = seed_mesh(devices)
    padded, per_chunk = padded_seed_count(seeds, mesh.size, seed_chunk)
    return SeedLayout(mesh, seeds, padded, padded // per_chunk)


def batched_init(trainer, grid_size: int, sequential: bool = False):
    """``(keys [S], grid [G]) -> TrainState [G, S]`` of a ``Trainer`` (a grid of defaults has no
    leaves: pass its size).

    ``sequential`` initialises one agent after another (``lax.map``): the same states, and on
    CPU, where agents run one after another anyway, it compiles in about half the time of the
    vmapped init, for no measurable run time (docs/performance.md).
    """
    vmapped = jax.vmap(jax.vmap(trainer.init, in_axes=(0, None)), in_axes=(None, 0), axis_size=grid_size)
    if not sequential:
        return vmapped

    def init(keys, grid):
        seeds = keys.shape[0]

        def one_agent(index):
            point = jax.tree.map(lambda leaf: leaf[index // seeds], grid)
            return trainer.init(keys[index % seeds], point)

        states = jax.lax.map(one_agent, jnp.arange(grid_size * seeds))
        return jax.tree.map(lambda leaf: leaf.reshape((grid_size, seeds) + leaf.shape[1:]), states)

    return init


def train_many(
    config: PPOConfig,
    keys: jax.Array,
    hparams: PPOHParams | None = None,
    *,
    env=None,
    env_params=None,
    devices=None,
    seed_chunk: int | None = None,
    network=None,
    optimizer=None,
) -> TrainResult:
    """Train ``len(keys)`` seeds (x a grid) sharded over local devices; one compiled call.

    ``network`` and ``optimizer``: a user's factories, as ``make_trainer`` takes them.
    ``hparams`` with scalar leaves gives results ``[S, ...]``; with a leading grid axis
    (``hparam_grid``) results are ``[G, S, ...]``. Compiles on every call.

    On one device this is ``jit(vmap(make_train(config)))`` bit for bit. Sharded, each device
    runs a program compiled for its own batch of seeds, and XLA:CPU may vectorise the batched
    matmuls of a batch of 8 seeds differently from one of 16 (or 1 from 2): float32 rounding
    then differs in the last bit, and like any perturbation the difference grows over training,
    so the agents end close but not equal. Measured on CartPole-v1 (CleanRL defaults, 2 host
    devices): 8 seeds (4 per device) and 3 or 5 seeds (padded) equal the one-device run bit for
    bit; 16 seeds differ, final returns 499.70 against 500.00 (mean over seeds) after 5e5
    steps, and 2 seeds (one per device) 220.1 against 223.4 after 5e4 steps, within the spread
    between seeds.
    """
    hparams = PPOHParams() if hparams is None else hparams
    hparams.validate()
    if seed_chunk is not None and seed_chunk <= 0:
        raise ConfigError(f"seed_chunk must be a positive integer, got {seed_chunk}")
    train = make_train(config, env=env, env_params=env_params, network=network, optimizer=optimizer)
    leaves = jax.tree.leaves(hparams)
    grid = bool(leaves) and np.ndim(leaves[0]) > 0
    layout = seed_layout(keys.shape[0], seed_chunk, devices)
    seed_axis = 1 if grid else 0
    over_seeds = layout.over_seeds(train)
    fn = jax.vmap(over_seeds, in_axes=(None, 0)) if grid else over_seeds
    fn = layout.shard(fn, in_axes=(0, None), out_axis=seed_axis)
    result = jax.jit(fn)(layout.put(keys, 0), hparams)
    return host_slice(result, layout.seeds, seed_axis)


def host_slice(tree, size: int, axis: int):
    """Keep the first ``size`` seeds, on the host (numpy; key arrays stay keys).

    Slicing a sharded array on device would need a collective, which can stall XLA:CPU
    when there are more host devices than cores.
    """

    def one(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(jnp.asarray(one(jax.random.key_data(x))))
        return np.take(jax.device_get(x), np.arange(size), axis=axis)

    return jax.tree.map(one, tree)


def process_seed_range(seeds: int, index: int | None = None, count: int | None = None) -> range:
    """The seeds process ``index`` of ``count`` trains: contiguous blocks whose sizes differ
    by at most one (defaults: this process of ``jax.distributed``'s processes).

    Seed ``s`` keeps its key whatever the block (``run_keys(settings)[s]``), so a multi-process
    run trains the same agents as a single-process one.
    """
    index = jax.process_index() if index is None else index
    count = jax.process_count() if count is None else count
    if seeds < count:
        raise ConfigError(f"--seeds {seeds} is fewer than the {count} processes; give at least one seed per process")
    base, extra = divmod(seeds, count)
    start = index * base + min(index, extra)
    return range(start, start + base + (index < extra))


def barrier(name: str, timeout_s: float = 24 * 3600) -> None:
    """Block until every process of ``jax.distributed`` reaches ``name`` (no-op for one process).

    Uses the coordination service's barrier (as orbax does), not a device collective: XLA:CPU
    needs no cross-process collectives for it.
    """
    if jax.process_count() == 1:
        return
    _coordination_client().wait_at_barrier(f"jaxppo:{name}", int(timeout_s * 1000))


def gather_statuses(name: str, status: str, timeout_s: float = 24 * 3600) -> list[str]:
    """Every process's ``status`` at ``name``, in process order (one process: ``[status]``).

    Each process publishes its own in the coordination service's key-value store, then waits at a
    barrier for the others, so every process learns how all of them got there.
    """
    if jax.process_count() == 1:
        return [status]
    client = _coordination_client()
    client.key_value_set(f"jaxppo:{name}:{jax.process_index()}", status)
    barrier(name, timeout_s)
    return [client.blocking_key_value_get(f"jaxppo:{name}:{k}", 60_000) for k in range(jax.process_count())]


def _coordination_client():
    """``jax.distributed``'s client of the coordination service (barriers, key-value store)."""
    from jax._src import distributed

    return distributed.global_state.client
