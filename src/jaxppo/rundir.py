"""Run directories: the files of a run and its checkpoints, and nothing that trains.

Every file is written atomically (temporary file, then rename), so a crash mid-write leaves
the previous version intact; a checkpoint is one ``checkpoints/<iteration>.npz`` file (each process
of a multi-process run writes its own seeds' file into its part).

Layout of a run directory::

    config.json            settings, grid, seeds, versions, device
    metrics.csv            one row per (grid point, seed, iteration)
    eval.csv               periodic evaluations (--eval-every)
    summary.json           per grid point: final-return statistics across seeds, timings
    learning_curves.png    return against env steps, mean and 95 % CI per grid point
    checkpoints/<iter>.npz every seed's full TrainState (+ metrics so far); the newest two are kept
    timings.json           per checkpoint: the parts trained so far (iterations, compile and run seconds)
    process<K>/            one process's part of a multi-process run (the same files, its seeds)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import HPARAM_NAMES, ConfigError
from jaxppo.settings import RunSettings

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, PLOT_FILE, CHECKPOINT_DIR, EVAL_FILE, TIMINGS_FILE = (
    "config.json",
    "metrics.csv",
    "summary.json",
    "learning_curves.png",
    "checkpoints",
    "eval.csv",
    "timings.json",
)
PBT_FILE, PBT_PLOT_FILE = "pbt.csv", "pbt.png"  # a --pbt run's copies, and its members' schedules
# metrics.csv prefixes the grid point's hyperparameters: the metric "learning_rate" is the annealed value.
HPARAM_COLUMNS = [f"hp_{name}" for name in HPARAM_NAMES]


# ------------------------------------------------------------------- files
LOCK_FILE = ".jaxppo.lock"  # held (flock) by the process that trains the run; empty


class RunLock:
    """An exclusive ``flock`` on a run directory's lock file, held while one process trains it, so
    that a second command given the same directory is refused instead of writing into it. The
    kernel releases it when the process ends, however it ends (``kill -9`` included)."""

    def __init__(self, directory: Path):
        import fcntl

        # read-only: a descriptor open for writing would keep the file system from being remounted
        self.fd = os.open(Path(directory) / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise ConfigError(f"{directory} is in use: another jaxppo process is training it; wait until it "
                              f"ends, or choose another --out") from None  # fmt: skip

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = None


def _entries(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name != LOCK_FILE]


def prepare_out_dir(out: Path, overwrite: bool) -> RunLock:
    """Make ``out`` an empty, writable directory for a new run, locked for this process (the
    ``RunLock`` returned); never replace what is not a run, nor a run another process trains."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another --out")
    if out.is_dir() and _entries(out) and not (out / CONFIG_FILE).exists():
        what = "not empty; choose another --out" if not overwrite else "not empty and not a jaxppo run; refusing to --overwrite it"
        raise ConfigError(f"--out {out} is {what}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--out {out} is not writable ({error.strerror}); choose another --out") from None
    lock = RunLock(out)
    try:
        if _entries(out):  # checked again under the lock: another process may have started a run here
            if not overwrite:
                saved = saved_iterations(out)
                what = f"its checkpoint of iteration {saved[-1]}" if saved else "iteration 0 (it has no checkpoint)"
                raise ConfigError(f"--out {out} holds a run; pass --resume {out} to continue it from {what}, "
                                  f"--overwrite to replace it, or another --out")  # fmt: skip
            for entry in _entries(out):  # the lock file stays: this process holds it
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode())


def writable_file(out, flag: str, suffixes: tuple[str, ...], example: str) -> Path:
    """``out`` as a ``Path`` if a file ending in one of ``suffixes`` can be written there (``example``
    names such a file), else ``ConfigError`` naming ``flag``; nothing is created."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a directory; name a file in it, e.g. {out / example}")
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {out} does not end in {' or '.join(suffixes)}; name the file to write, e.g. {example}")
    if not out.parent.is_dir():
        raise ConfigError(f"{flag} {out}: directory {out.parent} does not exist; create it or choose another path")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {out}: directory {out.parent} is not writable; choose another path")
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, sync, then rename over it.

    The file gets mode ``0o666 & ~umask``, as a plain ``open()`` would give a new file (also when
    it replaces an older one), so others can read a run as the umask allows.
    """
    import secrets

    path = Path(path)
    while True:
        # Not tempfile.mkstemp: it creates 0600 whatever the umask. O_EXCL keeps the name ours alone.
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
            name: installed(name) for name in ("jaxppo", "jax", "jaxlib", "flax", "optax", "gymnax")
        },
        "commit": _source_commit(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "platform": jax.default_backend(),
    }


def write_config(run_dir: Path, facts, seed_range: range | None = None) -> None:
    """config.json: the settings, and as the run's trainer resolved them (``facts``: the run's
    ``jaxppo.factories.RunFacts``).

    ``seed_range``: the seeds this directory holds, when it is one process's part of a run."""
    settings, resolved = facts.settings, facts.trainer
    seed_range = range(settings.seeds) if seed_range is None else seed_range
    data = {
        **settings.to_json(),
        "resolved_config": {**dataclasses.asdict(resolved.config), "env_kwargs": dict(resolved.config.env_kwargs)},
        "resolved_grid": facts.hparam_rows,
        "architecture": resolved.architecture(),  # what encoder="auto" and the other settings built
        "num_iterations": resolved.config.num_iterations,
        "env_steps_per_seed": resolved.config.env_steps,
        "processes": jax.process_count(),
        "seed_range": [seed_range.start, seed_range.stop],
        "environment": environment_info(),
    }
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(data, indent=2, default=str) + "\n")


def record_extension(run_dir: Path, facts, iteration: int) -> None:
    """config.json of a run trained longer: its new budget, and in ``extensions`` the budget it
    had, where the longer training started and the environment that continued it."""
    from datetime import datetime, timezone

    path = Path(run_dir) / CONFIG_FILE
    data = json.loads(path.read_text())
    extension = {"total_timesteps_before": data["resolved_config"]["total_timesteps"], "from_iteration": int(iteration),
                 "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "environment": environment_info()}
    settings, resolved = facts.settings, facts.trainer
    data["config"]["total_timesteps"] = data["resolved_config"]["total_timesteps"] = settings.config.total_timesteps
    data["num_iterations"] = resolved.config.num_iterations
    data["env_steps_per_seed"] = resolved.config.env_steps
    data["extensions"] = [*data.get("extensions", []), extension]
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_settings(run_dir: Path) -> RunSettings:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a jaxppo run directory (no {CONFIG_FILE}); pass the --out of a run")
    try:
        return RunSettings.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is malformed ({error}); it was not written by this jaxppo version") from None


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


def metrics_csv(metrics: dict, hparam_rows: list[dict], first_seed: int = 0) -> str:
    """Long format: one row per (grid point, seed, iteration); metrics are ``[G, S, n]``;
    seed ``s`` of the arrays is written as ``first_seed + s``. The ``hp_*`` columns are each grid
    point's row, or each iteration's own values where ``metrics`` records them (a ``--pbt`` run)."""
    names = sorted(k for k in metrics if k != "env_steps" and k not in HPARAM_COLUMNS)
    grid_size, seeds, iterations = np.shape(metrics["env_steps"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["grid_point", *HPARAM_COLUMNS, "seed", "iteration", "env_steps", *names])
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    for g in range(grid_size):
        row = [np.float32(hparam_rows[g][name]) for name in HPARAM_NAMES]
        for s in range(seeds):
            for i in range(iterations):
                # str() of a numpy scalar is its shortest round-tripping repr (float32 stays short).
                hp = [arrays[c][g, s, i] if c in arrays else v for c, v in zip(HPARAM_COLUMNS, row, strict=True)]
                values = [str(arrays[name][g, s, i]) for name in names]
                writer.writerow([g, *map(str, hp), first_seed + s, i + 1, int(arrays["env_steps"][g, s, i]), *values])
    return buffer.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def rows_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV text of ``rows`` (``columns``: the header, written even when there are no rows)."""
    buffer = io.StringIO()
    if rows or columns:
        writer = csv.DictWriter(buffer, fieldnames=columns or list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


# ------------------------------------------------------------- checkpoints
# One format for every run: checkpoints/<iteration>.npz, the flattened leaves of the payload
# (every agent's TrainState and the metrics so far) written to a temporary file and renamed, the
# two newest kept. A process of a multi-process run writes its own seeds' file into its part.
# experiments/bench_checkpoint.py measures it against orbax (docs/performance.md).
def _to_storable(tree):
    # Host numpy arrays; a PRNG key as its raw uint32 data.
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x)) if _is_key(x) else np.asarray(x), tree)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def save_checkpoint(run_dir: Path, iteration: int, states, metrics: dict) -> None:
    """``checkpoints/<iteration>.npz`` in ``run_dir`` (this process's part of a multi-process run):
    ``states`` ``[G, S]`` and ``metrics`` ``[G, S, iteration]``; older ones but the newest two go."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"states": _to_storable(states), "metrics": metrics}
    buffer = io.BytesIO()
    np.savez(buffer, **{str(i): np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(payload))})
    atomic_write_bytes(directory / f"{int(iteration)}.npz", buffer.getvalue())
    for older in checkpoint_steps(directory)[:-2]:
        (directory / f"{older}.npz").unlink()


def checkpoint_steps(directory: Path) -> list[int]:
    """Iterations ``directory`` (a ``checkpoints/``) holds complete checkpoints of, oldest first."""
    return sorted(int(p.stem) for p in Path(directory).glob("*.npz") if p.stem.isdigit())


def _restore(path: Path, target):
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


def saved_iterations(run_dir: Path) -> list[int]:
    """Iterations of the complete checkpoints in a run directory (or any process's part), oldest first."""
    directories = [Path(run_dir) / CHECKPOINT_DIR, *Path(run_dir).glob(f"process*/{CHECKPOINT_DIR}")]
    return sorted({step for d in directories if d.is_dir() for step in checkpoint_steps(d)})


class NoCheckpoint(ConfigError):
    """A run directory without a complete checkpoint: resuming it trains it from the start."""


class Checkpoint(NamedTuple):
    iteration: int
    states: Any  # TrainState with leading axes [G, S]
    metrics: dict  # name -> [G, S, iteration]


def restore_checkpoint(run_dir: Path, abstract_states, metric_names: dict) -> Checkpoint:
    """The latest complete checkpoint (``metric_names``: ``{name: dtype}`` of the metrics); ``ConfigError`` if none."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        raise NoCheckpoint(f"{run_dir} has no checkpoints/ to resume from")
    steps = checkpoint_steps(directory)
    if not steps:
        raise NoCheckpoint(f"{directory} holds no complete checkpoint")
    step = steps[-1]
    leading = np.shape(jax.tree.leaves(abstract_states)[0])[:2]
    target = {
        "states": jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape + (2,), jnp.uint32) if _is_key(x) else x, abstract_states
        ),
        "metrics": {name: jax.ShapeDtypeStruct(leading + (step,), dtype) for name, dtype in metric_names.items()},
    }  # fmt: skip
    restored = _restore(directory / f"{step}.npz", target)
    states = jax.tree.map(
        lambda stored, like: jax.random.wrap_key_data(stored) if _is_key(like) else stored,
        restored["states"],
        abstract_states,
    )
    return Checkpoint(step, states, restored["metrics"])


def save_timings(run_dir: Path, iteration: int, parts: list[dict]) -> None:
    """Record the parts (``{"iterations": [first, last], "compile_seconds", "run_seconds"}``) that
    trained the checkpoint of ``iteration``; the entries of the three newest checkpoints are kept."""
    path = Path(run_dir) / TIMINGS_FILE
    by_checkpoint = _read_timings(path)
    by_checkpoint[str(int(iteration))] = parts
    newest = sorted(by_checkpoint, key=int)[-3:]
    atomic_write_text(path, json.dumps({"parts_by_checkpoint": {k: by_checkpoint[k] for k in newest}}, indent=1))


def read_timings(run_dir: Path, iteration: int) -> list[dict] | None:
    """The parts that trained the checkpoint of ``iteration``; ``None`` when not recorded."""
    return _read_timings(Path(run_dir) / TIMINGS_FILE).get(str(int(iteration)))


def _read_timings(path: Path) -> dict:
    try:
        return dict(json.loads(path.read_text())["parts_by_checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: timings are not numbers of the run
        return {}




