"""Run directories: resolved settings, metrics, summaries and orbax checkpoints.

Every file is written atomically (temporary file, then rename), so a crash mid-write leaves
the previous version intact; checkpoints use orbax's own atomic finalisation.

Layout of a run directory::

    config.json            settings, grid, seeds, versions, device
    metrics.csv            one row per (grid point, seed, iteration)
    summary.json           per grid point: final-return statistics across seeds, timings
    learning_curves.png    return against env steps, mean and 95 % CI per grid point
    checkpoints/<iter>/    orbax checkpoint of every seed's full TrainState (+ metrics so far)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import ConfigError, PPOConfig, PPOHParams, hparam_grid
from jaxppo.train import Trainer, make_trainer

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, PLOT_FILE, CHECKPOINT_DIR, EVAL_FILE = (
    "config.json",
    "metrics.csv",
    "summary.json",
    "learning_curves.png",
    "checkpoints",
    "eval.csv",
)
HPARAM_NAMES = [f.name for f in dataclasses.fields(PPOHParams)]
# metrics.csv prefixes the grid point's hyperparameters: the metric "learning_rate" is the annealed value.
HPARAM_COLUMNS = [f"hp_{name}" for name in HPARAM_NAMES]


# ----------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's numbers; resume refuses any difference in these."""

    config: PPOConfig
    hparams: dict  # base hyperparameters given explicitly (None = env default)
    grid: dict  # name -> list of values
    seeds: int
    seed: int
    eval_episodes: int = 0
    deterministic_eval: bool = True
    seed_chunk: int | None = None  # seeds per lax.map chunk (bounds memory); part of the numerics' layout

    def to_json(self) -> dict:
        config = dataclasses.asdict(self.config)
        config["env_kwargs"] = dict(self.config.env_kwargs)
        config["hidden_sizes"] = list(self.config.hidden_sizes)
        return {
            "config": config,
            "hparams": self.hparams,
            "grid": self.grid,
            "seeds": self.seeds,
            "seed": self.seed,
            "eval_episodes": self.eval_episodes,
            "deterministic_eval": self.deterministic_eval,
            "seed_chunk": self.seed_chunk,
        }

    @classmethod
    def from_json(cls, data: dict) -> RunSettings:
        config = dict(data["config"])
        config["hidden_sizes"] = tuple(config["hidden_sizes"])
        return cls(
            config=PPOConfig(**config),
            hparams=dict(data["hparams"]),
            grid={k: list(v) for k, v in data["grid"].items()},
            seeds=int(data["seeds"]),
            seed=int(data["seed"]),
            eval_episodes=int(data.get("eval_episodes", 0)),
            deterministic_eval=bool(data.get("deterministic_eval", True)),
            seed_chunk=data.get("seed_chunk"),
        )

    def differences(self, other: RunSettings) -> list[str]:
        mine, theirs = _flatten(self.to_json()), _flatten(other.to_json())
        return [
            f"{key}: {mine.get(key)!r} in the run, {theirs.get(key)!r} now"
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        ]

    def grid_hparams(self) -> tuple[PPOHParams, list[dict]]:
        return hparam_grid(PPOHParams(**self.hparams), **self.grid)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "env_kwargs":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# ------------------------------------------------------------------- files
def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, sync, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _source_commit() -> str | None:
    """The git commit of the jaxppo source this run used (None outside a git checkout)."""
    import subprocess

    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def environment_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        **{
            name: installed(name) for name in ("jaxppo", "jax", "jaxlib", "flax", "optax", "gymnax", "orbax-checkpoint")
        },
        "commit": _source_commit(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "platform": jax.default_backend(),
    }


def write_config(run_dir: Path, settings: RunSettings, resolved: Trainer, seed_range: range | None = None) -> None:
    """``seed_range``: the seeds this directory holds, when it is one process's part of a run."""
    grid, points = settings.grid_hparams()
    seed_range = range(settings.seeds) if seed_range is None else seed_range
    data = {
        **settings.to_json(),
        "resolved_config": {**dataclasses.asdict(resolved.config), "env_kwargs": dict(resolved.config.env_kwargs)},
        "resolved_grid": resolved_points(resolved, grid, points),
        "num_iterations": resolved.config.num_iterations,
        "env_steps_per_seed": resolved.config.env_steps,
        "processes": jax.process_count(),
        "seed_range": [seed_range.start, seed_range.stop],
        "environment": environment_info(),
    }
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(data, indent=2, default=str) + "\n")


def stored_process_count(run_dir: Path) -> int:
    """How many processes trained the run in ``run_dir`` (1 for runs written before multi-process)."""
    return int(json.loads((Path(run_dir) / CONFIG_FILE).read_text()).get("processes", 1))


def process_dir(run_dir: Path, index: int) -> Path:
    """The part of a multi-process run that process ``index`` wrote."""
    return Path(run_dir) / f"process{index}"


def part_dir(run_dir: Path) -> Path:
    """Where this process writes its seeds' files: the run directory itself for a single process,
    its ``process<K>/`` part when several processes share the run."""
    return Path(run_dir) if jax.process_count() == 1 else process_dir(run_dir, jax.process_index())


def resolved_points(trainer: Trainer, grid: PPOHParams, points: list[dict]) -> list[dict]:
    resolved = grid.resolve(trainer.spec.action_kind)
    out = []
    for g in range(len(points)):
        out.append(
            # float32 values by their shortest repr (0.00025, not 0.0002500000118743628)
            {
                name: float(str(np.broadcast_to(np.asarray(value), (len(points),))[g]))
                for name, value in resolved.items()
            }
        )
    return out


def metrics_csv(metrics: dict, hparam_rows: list[dict], first_seed: int = 0) -> str:
    """Long format: one row per (grid point, seed, iteration); metrics are ``[G, S, n]``;
    seed ``s`` of the arrays is written as ``first_seed + s``."""
    names = sorted(k for k in metrics if k != "env_steps")
    grid_size, seeds, iterations = np.shape(metrics["env_steps"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["grid_point", *HPARAM_COLUMNS, "seed", "iteration", "env_steps", *names])
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    for g in range(grid_size):
        hp = [str(np.float32(hparam_rows[g][name])) for name in HPARAM_NAMES]
        for s in range(seeds):
            for i in range(iterations):
                # str() of a numpy scalar is its shortest round-tripping repr (float32 stays short).
                values = [str(arrays[name][g, s, i]) for name in names]
                writer.writerow([g, *hp, first_seed + s, i + 1, int(arrays["env_steps"][g, s, i]), *values])
    return buffer.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def rows_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


# ------------------------------------------------------------- checkpoints
def _to_storable(tree):
    # Host numpy arrays: orbax saves them as they are, also in a multi-process run (it refuses
    # host-local jax.Arrays there).
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x)) if _is_key(x) else np.asarray(x), tree)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _checkpoint_manager(run_dir: Path, create: bool):
    import orbax.checkpoint as ocp

    return ocp.CheckpointManager(
        Path(run_dir).resolve() / CHECKPOINT_DIR,
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=create),
    )


# A process of a multi-process run checkpoints its own seeds alone, as checkpoints/<iteration>.npz
# (written to a temporary file, then renamed; the two newest kept). Orbax cannot do this: in a
# multi-process program it writes host arrays from process 0 only and refuses process-local
# jax.Arrays, while these processes share no arrays.
def _save_part_checkpoint(directory: Path, iteration: int, payload) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{str(i): np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(payload))})
    atomic_write_bytes(directory / f"{iteration}.npz", buffer.getvalue())
    for older in part_checkpoint_steps(directory)[:-2]:
        (directory / f"{older}.npz").unlink()


def part_checkpoint_steps(directory: Path) -> list[int]:
    """Iterations a process's part holds checkpoints for (``checkpoints/<iteration>.npz``), oldest first."""
    return sorted(int(p.stem) for p in directory.glob("*.npz") if p.stem.isdigit())


def _restore_part_checkpoint(path: Path, target):
    leaves, treedef = jax.tree.flatten(target)
    try:
        with np.load(path) as data:
            stored = [data[str(i)] for i in range(len(leaves))]
    except Exception as error:  # zip/npy errors of a damaged file
        raise ConfigError(f"checkpoint {path} is unreadable ({type(error).__name__}); "
                          f"delete it to fall back to an earlier one, or start a new run") from None  # fmt: skip
    for value, like in zip(stored, leaves, strict=True):
        if value.shape != like.shape or value.dtype != like.dtype:
            raise ConfigError(f"checkpoint {path} does not match this run's shapes; it belongs to another run")
    return jax.tree.unflatten(treedef, stored)


def save_checkpoint(run_dir: Path, iteration: int, states, metrics: dict) -> None:
    payload = {"states": _to_storable(states), "metrics": metrics}
    if jax.process_count() > 1:
        _save_part_checkpoint(Path(run_dir) / CHECKPOINT_DIR, int(iteration), payload)
        return
    import orbax.checkpoint as ocp

    manager = _checkpoint_manager(run_dir, create=True)
    try:
        manager.save(int(iteration), args=ocp.args.StandardSave(payload), force=True)
        manager.wait_until_finished()
    finally:
        manager.close()


def restore_checkpoint(run_dir: Path, abstract_states, metric_names: list[str]):
    """Latest complete checkpoint as ``(iteration, states, metrics)``; ``ConfigError`` if none."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        raise ConfigError(f"{run_dir} has no checkpoints/ to resume from; start a new run instead of --resume")

    def target(step: int):
        leading = np.shape(jax.tree.leaves(abstract_states)[0])[:2]
        return {
            "states": jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape + (2,), jnp.uint32) if _is_key(x) else x, abstract_states
            ),
            "metrics": {name: jax.ShapeDtypeStruct(leading + (step,), _METRIC_DTYPES.get(name, jnp.float32))
                        for name in metric_names},
        }  # fmt: skip

    part_steps = part_checkpoint_steps(directory)
    if part_steps:  # one process's part of a multi-process run
        step = part_steps[-1]
        restored = _restore_part_checkpoint(directory / f"{step}.npz", target(step))
    else:
        step, restored = _restore_orbax(run_dir, directory, target)
    states = jax.tree.map(
        lambda stored, like: jax.random.wrap_key_data(stored) if _is_key(like) else stored,
        restored["states"],
        abstract_states,
    )
    return step, states, restored["metrics"]


def _restore_orbax(run_dir: Path, directory: Path, target):
    import orbax.checkpoint as ocp

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)  # orbax logs damaged files itself; the one message is ours
    manager = _checkpoint_manager(run_dir, create=False)
    try:
        step = manager.latest_step()
        if step is None:
            raise ConfigError(f"{directory} holds no complete checkpoint; start a new run instead of --resume")
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(target(step)))
        except Exception as error:  # orbax raises many types for damaged files
            raise ConfigError(
                f"checkpoint {directory / str(step)} is unreadable ({type(error).__name__}); "
                f"delete it to fall back to an earlier one, or start a new run"
            ) from None
    finally:
        manager.close()
        absl_logger.setLevel(level)
    return step, restored


_METRIC_DTYPES = {name: jnp.int32 for name in ("env_steps", "episodes", "update_epochs_done", "diverged")}


# ---------------------------------------------------------------- loading
class LoadedRun(NamedTuple):
    run_dir: Path
    settings: RunSettings
    trainer: Trainer
    states: Any  # TrainState with leading axes [G, S]
    metrics: dict
    iteration: int
    grid_points: list[dict]

    @property
    def num_grid_points(self) -> int:
        return len(self.grid_points)

    @property
    def num_seeds(self) -> int:
        return self.settings.seeds


def read_settings(run_dir: Path) -> RunSettings:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a jaxppo run directory (no {CONFIG_FILE}); pass the --out of a run")
    try:
        return RunSettings.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is malformed ({error}); it was not written by this jaxppo version") from None


def abstract_states(trainer: Trainer, settings: RunSettings, seed_range: range | None = None):
    grid, points = settings.grid_hparams()
    keys = run_keys(settings, seed_range)
    return jax.eval_shape(batched_init(trainer, len(points)), keys, grid)


def run_keys(settings: RunSettings, seed_range: range | None = None) -> jax.Array:
    """Seed ``s`` gets the same key at every grid point (common random numbers), and the same
    key whichever process trains it (``seed_range``: those seeds only)."""
    keys = jax.random.split(jax.random.key(settings.seed), settings.seeds)
    return keys if seed_range is None else keys[seed_range.start : seed_range.stop]


def batched_init(trainer: Trainer, grid_size: int, sequential: bool = False):
    """``(keys [S], grid [G]) -> TrainState [G, S]`` (a grid of defaults has no leaves: pass its size).

    ``sequential`` initialises one agent after another (``lax.map``): the same states, and on
    CPU, where agents run one after another anyway, it compiles in about half the time of the
    vmapped init (3.5 s against 7 s at 8 seeds), for no measurable run time.
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


def load_run(run_dir) -> LoadedRun:
    """A run's settings, latest states ``[G, S]`` and metrics; the parts of a multi-process run
    are put back together (seed blocks in process order)."""
    run_dir = Path(run_dir)
    settings = read_settings(run_dir)
    trainer = make_trainer(settings.config)
    names = metric_names(trainer, settings)
    processes = stored_process_count(run_dir)
    if processes == 1:
        iteration, states, metrics = restore_checkpoint(run_dir, abstract_states(trainer, settings), names)
    else:
        from jaxppo.parallel import process_seed_range

        parts = [
            restore_checkpoint(
                process_dir(run_dir, k),
                abstract_states(trainer, settings, process_seed_range(settings.seeds, k, processes)),
                names,
            )
            for k in range(processes)
        ]
        iteration = min(p[0] for p in parts)
        if any(p[0] != iteration for p in parts):
            raise ConfigError(f"the parts of {run_dir} stopped at different iterations; resume the run to finish them")
        states = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *(p[1] for p in parts))
        metrics = {k: np.concatenate([np.asarray(p[2][k]) for p in parts], axis=1) for k in names}
    _, points = settings.grid_hparams()
    return LoadedRun(run_dir, settings, trainer, states, metrics, iteration, points)


def metric_names(trainer: Trainer, settings: RunSettings) -> list[str]:
    hparams = PPOHParams(**settings.hparams)
    state = jax.eval_shape(trainer.init, jax.random.key(0), hparams)
    return list(jax.eval_shape(trainer.step, state, hparams)[1])


def load_policy(run_dir, seed: int = 0, grid_point: int = 0, deterministic: bool = True):
    """A jitted ``act(obs, key) -> action`` for one trained agent of a run directory.

    ``obs`` is one raw observation or a batch of them; observation normalisation (if the
    run used it) is applied with the agent's final statistics.
    """
    from jaxppo.evaluation import make_act

    run = load_run(run_dir)
    if not 0 <= seed < run.num_seeds:
        raise ConfigError(f"seed {seed} is out of range; the run has seeds 0..{run.num_seeds - 1}")
    if not 0 <= grid_point < run.num_grid_points:
        raise ConfigError(f"grid_point {grid_point} is out of range; the run has 0..{run.num_grid_points - 1}")
    agent = jax.tree.map(lambda x: x[grid_point, seed], run.states)
    act = make_act(run.trainer, deterministic)
    return jax.jit(lambda obs, key: act(agent.params, agent.obs_stats, obs, key))
