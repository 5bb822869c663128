"""The CLI's training driver: chunked compiled loop, progress, checkpoints, outputs.

All grid points x seeds advance together: ``scan`` over iterations of the doubly vmapped
``Trainer.step`` (equal to vmapping the scanned ``train``), seeds sharded over the local
devices. The host runs the compiled loop in short chunks; between chunks it advances the
progress bar, saves checkpoints and reacts to signals. A chunked run equals an unchunked one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxppo import parallel, rundir
from jaxppo.compilation import garbage_collection_paused
from jaxppo.evaluation import agent_keys, evaluate
from jaxppo.settings import RunOptions, run_keys
from jaxppo.stats import summarize

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopper:
    """First SIGINT/SIGTERM: stop after the current chunk. Second: abort at once."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        for sig in EXIT_CODES:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:
            self._abort(signum, frame)
        self.signal = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing the current chunk, then saving a checkpoint "
            "(send it again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    @staticmethod
    def _abort(signum, frame):
        # Exit here, not by raising: an exception raised in whatever the main thread is doing
        # (orbax's save waits on worker threads, tensorstore runs C++, jax's atexit clean-up) can
        # leave a non-daemon thread that the interpreter then waits for forever, abort the process,
        # or print a traceback. Every file is written atomically: the latest complete checkpoint is
        # intact.
        print(f"\n{signal.Signals(signum).name} again: aborting now; the latest complete checkpoint is intact",
              file=sys.stderr)  # fmt: skip
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_CODES[signum])

    def __exit__(self, *exc):
        # Once stopping, the process is on its way out (jax's and orbax's exit hooks still run): a
        # further signal keeps meaning "abort at once" until it has gone.
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if self.signal is None else self._abort)


class Progress:
    """tqdm bar over env steps of all agents, advanced after every chunk of iterations.

    Chunks are short (about 2 % of the run), so the bar moves during training without a host
    callback inside the compiled loop, which keeps the executable cacheable on disk.
    """

    def __init__(self, total_steps: int, agents: int, enabled: bool, start_steps: int = 0):
        self.agents = agents
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps * agents, initial=start_steps * agents, unit="step",
                            unit_scale=True, dynamic_ncols=True, file=sys.stderr, desc="training")  # fmt: skip

    def update(self, env_steps: int, returns: np.ndarray) -> None:
        if self.bar is None:
            return
        returns = np.asarray(returns, np.float64)
        if np.isfinite(returns).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                text = f"return mean {np.nanmean(returns):.1f} min {np.nanmin(returns):.1f}"
            self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(env_steps * self.agents - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def train_run(trainer, settings, run_dir: Path, states, metrics, options: RunOptions) -> int:
    """Train (or continue) a run; ``states``/``metrics`` come from a checkpoint when resuming.

    With several processes (``jax.distributed``), this process trains its block of seeds
    (``parallel.process_seed_range``) and writes its files into ``rundir.part_dir``; process 0
    then merges every part into the run directory (``merge_parts``).
    """
    from jaxppo.run import chunk_length

    checkpoint_every, show_progress = options.checkpoint_every, options.show_progress

    grid, points = settings.grid_hparams()
    seed_range = parallel.process_seed_range(settings.seeds)
    out_dir = rundir.part_dir(run_dir)
    grid_size, seeds = len(points), len(seed_range)
    config = trainer.config
    total = config.num_iterations
    done = 0 if metrics is None else int(np.shape(metrics["env_steps"])[-1])
    chunk = chunk_length(total, checkpoint_every, options.eval_every)
    evaluator = Evaluator(trainer, settings, out_dir, done, seed_range.start)
    loggers = [TensorBoard(out_dir, settings, done, seed_range)] if options.tensorboard else []
    if options.wandb:
        loggers.append(Wandb(out_dir, settings, trainer, seed_range))
    history = [] if metrics is None else [{k: np.asarray(v) for k, v in metrics.items()}]

    # Seeds are sharded over the local devices (one per CPU core by default) and padded to fill
    # them; each device runs its own seeds, with no communication, in seed_chunk pieces if asked.
    mesh = parallel.seed_mesh()
    padded, per_chunk = parallel.padded_seed_count(seeds, mesh.size, settings.seed_chunk)
    step_local = jax.vmap(parallel.seed_chunked(trainer.step, padded // per_chunk), axis_size=grid_size)

    def run_chunk(states, grid, length):
        states, m = jax.lax.scan(lambda st, _: step_local(st, grid), states, None, length=length)
        return states, jax.tree.map(lambda x: jnp.moveaxis(x, 0, -1), m)  # [G, S, n]

    process = (
        f" (process {jax.process_index()} of {jax.process_count()}: seeds {seed_range.start}..{seed_range.stop - 1})"
    )
    _say(f"jaxppo: {settings.config.env_id}, {grid_size} grid point(s) x {seeds} seed(s) on {mesh.size} "
         f"device(s), {total} iterations of {config.batch_size} steps"
         f"{process if jax.process_count() > 1 else ''}; writing {out_dir}", show_progress)  # fmt: skip
    stopped = None
    # A signal while compiling stops after the first chunk; a second one, until this process has
    # said how it ended, aborts at once.
    with Stopper() as stopper:
        t0 = time.perf_counter()
        with garbage_collection_paused():  # tracing, not training
            if states is None:
                # Each device initialises its own seeds: moving states made on one device to all of
                # them took about 1 s (8 seeds, 2 CPU devices) against nothing for the sharded keys.
                keys = parallel.pad_seeds(run_keys(settings, seed_range), 0, padded)
                keys = jax.device_put(keys, NamedSharding(mesh, P(parallel.SEED_AXIS)))
                sequential = jax.default_backend() == "cpu"  # compiles faster; CPU runs agents in turn anyway
                init = parallel.batched_init(trainer, grid_size, sequential)
                init = jax.jit(parallel.shard_seeds(init, mesh, (0, None), 1)).lower(keys, grid)
                # XLA compiles (or loads) the init program while this thread traces the chunk program
                # from the init's output shapes: about 1.5 s less start-up on 2 cores.
                init_compiled = in_background(init.compile)
                states_like = init.out_info
            else:
                states = parallel.pad_seeds(states, 1, padded)
                states = states_like = jax.device_put(states, NamedSharding(mesh, P(None, parallel.SEED_AXIS)))
            compiled = {}

            def compiled_chunk(length):
                if length not in compiled:
                    sharded = parallel.shard_seeds(lambda st, hp: run_chunk(st, hp, length), mesh, (1, None), 1)
                    compiled[length] = jax.jit(sharded).lower(states_like, grid).compile()
                return compiled[length]

            compiled_chunk(min(chunk, total - done) if done < total else chunk)
            if states is None:
                states = init_compiled()(keys, grid)
        compile_seconds = time.perf_counter() - t0
        _say(f"compiled in {compile_seconds:.1f} s", show_progress)  # near 0 when the disk cache had it

        progress = Progress(config.env_steps, grid_size * seeds, show_progress, done * config.batch_size)
        preloaded = preload_output_modules()
        run_seconds = 0.0
        while done < total:
            length = min(chunk - done % chunk, total - done)
            t1 = time.perf_counter()
            states, chunk_metrics = compiled_chunk(length)(states, grid)
            history.append(parallel.host_slice(chunk_metrics, seeds, axis=1))
            run_seconds += time.perf_counter() - t1
            done += length
            progress.update(done * config.batch_size, history[-1]["episode_return_last100"][..., -1])
            for logger in loggers:
                logger.write(history[-1])
            if options.eval_every and done % options.eval_every == 0:
                evaluator.record(parallel.host_slice(states, seeds, axis=1), done, done * config.batch_size)
            if checkpoint_every and done % checkpoint_every == 0 or done == total or stopper.signal:
                metrics = _concat(history)
                history = [metrics]
                preloaded()  # never import orbax in two threads at once
                rundir.save_checkpoint(out_dir, done, parallel.host_slice(states, seeds, axis=1), metrics)
                _write_metrics(out_dir, trainer, settings, metrics, seed_range.start)
            if stopper.signal and done < total:
                stopped = stopper.signal
                break
        states = parallel.host_slice(states, seeds, axis=1)
        progress.close()
        preloaded()
        metrics = _concat(history)
        # Every process says how its training ended before any waits for the others' parts: a process
        # that was stopped must not leave the others waiting for a part it will never write.
        ended = parallel.gather_statuses("training-ended", "finished" if stopped is None else str(int(stopped)))
        stopped_processes = [k for k, status in enumerate(ended) if status != "finished"]
        if stopped_processes:
            if stopped is None:  # this process finished its seeds, another one was stopped
                stopped = signal.Signals(int(ended[stopped_processes[0]]))
                others = ", ".join(map(str, stopped_processes))
                what = f"process(es) {others} stopped; this one trained all {total} iterations"
            else:
                what = f"stopped after iteration {done} of {total}"
            print(f"{what}; checkpoint and logs saved in {out_dir}\n"
                  f"resume with: python -m jaxppo.run --resume {run_dir}"
                  f"{' (and the same process flags, on every process)' if jax.process_count() > 1 else ''}",
                  file=sys.stderr)  # fmt: skip
            return EXIT_CODES[stopped]

    for logger in loggers:
        logger.close()
    part = Part(
        metrics=metrics,
        eval_returns=evaluator.final(states) if settings.eval_episodes else None,
        diverged_at=np.asarray(states.diverged_at),
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
    )
    if jax.process_count() == 1:  # the last checkpoint wrote the final metrics.csv
        write_outputs(run_dir, trainer, settings, part, metrics_written=True)
        return 0
    part.save(out_dir)
    parallel.barrier("parts-written")
    if jax.process_index() != 0:
        print(f"process {jax.process_index()}: seeds {seed_range.start}..{seed_range.stop - 1} done in {out_dir}; "
              f"process 0 merges the run", file=sys.stderr)  # fmt: skip
        return 0
    return merge_parts(run_dir)


@dataclasses.dataclass(frozen=True)
class Part:
    """A block of seeds' final results (all seeds, for a single process): what the run's
    summary, metrics.csv and plot are made from."""

    metrics: dict  # name -> [G, S, iterations]
    eval_returns: np.ndarray | None  # [G, S, episodes]
    diverged_at: np.ndarray  # [G, S]
    compile_seconds: float
    run_seconds: float

    FILE = "part.npz"

    def save(self, directory: Path) -> None:
        import io

        arrays = {f"metric/{k}": np.asarray(v) for k, v in self.metrics.items()}
        if self.eval_returns is not None:
            arrays["eval_returns"] = np.asarray(self.eval_returns)
        buffer = io.BytesIO()
        np.savez(buffer, diverged_at=self.diverged_at, seconds=np.array([self.compile_seconds, self.run_seconds]),
                 **arrays)  # fmt: skip
        rundir.atomic_write_bytes(directory / self.FILE, buffer.getvalue())

    @classmethod
    def load(cls, directory: Path) -> Part:
        with np.load(directory / cls.FILE) as data:
            metrics = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("metric/")}
            eval_returns = data["eval_returns"] if "eval_returns" in data.files else None
            compile_seconds, run_seconds = (float(x) for x in data["seconds"])
            return cls(metrics, eval_returns, data["diverged_at"], compile_seconds, run_seconds)

    @classmethod
    def concatenate(cls, parts: list[Part]) -> Part:
        """Seeds of consecutive parts side by side; timings of the slowest process."""
        return cls(
            metrics={k: np.concatenate([p.metrics[k] for p in parts], axis=1) for k in parts[0].metrics},
            eval_returns=None if parts[0].eval_returns is None
            else np.concatenate([p.eval_returns for p in parts], axis=1),
            diverged_at=np.concatenate([p.diverged_at for p in parts], axis=1),
            compile_seconds=max(p.compile_seconds for p in parts),
            run_seconds=max(p.run_seconds for p in parts),
        )  # fmt: skip


def merge_parts(run_dir: Path) -> int:
    """Merge the ``process<K>/`` parts of a multi-process run into its metrics.csv, eval.csv,
    summary.json and plot (also ``python -m jaxppo.merge RUN`` after copying the parts in)."""
    from jaxppo.config import ConfigError
    from jaxppo.train import make_trainer

    run_dir = Path(run_dir)
    settings = rundir.read_settings(run_dir)
    count = rundir.stored_process_count(run_dir)
    directories = [rundir.process_dir(run_dir, k) for k in range(count)]
    missing = [str(d) for d in directories if not (d / Part.FILE).is_file()]
    if missing:
        raise ConfigError(f"{run_dir} lacks the finished part(s) {', '.join(missing)}; copy every process's "
                          f"process<K>/ directory into {run_dir} (or finish those processes), then merge again")  # fmt: skip
    trainer = make_trainer(settings.config)
    eval_rows = [
        row for d in directories if (d / rundir.EVAL_FILE).is_file() for row in rundir.read_csv(d / rundir.EVAL_FILE)
    ]
    if eval_rows:
        rundir.atomic_write_text(run_dir / rundir.EVAL_FILE, rundir.rows_csv(eval_rows))
    write_outputs(run_dir, trainer, settings, Part.concatenate([Part.load(d) for d in directories]))
    return 0


def write_outputs(run_dir: Path, trainer, settings, part: Part, metrics_written: bool = False) -> None:
    """The run's metrics.csv (unless ``metrics_written``), summary.json and learning-curve plot,
    and the console table."""
    if not metrics_written:
        _write_metrics(run_dir, trainer, settings, part.metrics)
    summary = _summary(trainer, settings, part)
    rundir.atomic_write_text(run_dir / rundir.SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    from jaxppo.plot import curves_from_csv, render

    curves = curves_from_csv(run_dir / rundir.METRICS_FILE)
    rundir.atomic_write_bytes(run_dir / rundir.PLOT_FILE, render(curves, f"{settings.config.env_id}, PPO"))
    print(_table(summary, run_dir))


class Evaluator:
    """In-jit evaluation of every agent at once: periodic rows in eval.csv, and the final one."""

    def __init__(self, trainer, settings, run_dir: Path, done: int, first_seed: int = 0):
        self.settings, self.path, self.first_seed = settings, run_dir / rundir.EVAL_FILE, first_seed
        self.evaluate_all = jax.jit(
            lambda p, s, k: evaluate(
                trainer, p, s, k, settings.eval_episodes, settings.deterministic_eval, batch_dims=2
            )
        )
        grid, points = settings.grid_hparams()
        self.hparam_rows = rundir.resolved_points(trainer, grid, points)
        # On resume, keep the evaluations made up to the checkpoint.
        self.rows = [r for r in rundir.read_csv(self.path) if int(r["iteration"]) <= done] if self.path.exists() else []

    def returns(self, states, key) -> np.ndarray:
        """``[G, S, episodes]``; agent (g, s) gets the same key whichever process evaluates it."""
        grid_size, seeds = np.shape(states.diverged_at)
        keys = agent_keys(key, (grid_size, self.settings.seeds))[:, self.first_seed : self.first_seed + seeds]
        return np.asarray(self.evaluate_all(states.params, states.obs_stats, keys))

    def record(self, states, iteration: int, env_steps: int) -> None:
        returns = self.returns(states, jax.random.fold_in(jax.random.key(self.settings.seed + 1), iteration))
        for g, s in np.ndindex(returns.shape[:2]):
            self.rows.append({"grid_point": g, **{f"hp_{k}": v for k, v in self.hparam_rows[g].items()}, "seed": self.first_seed + s,
                              "iteration": iteration, "env_steps": env_steps,
                              "eval_return": str(returns[g, s].mean()), "eval_return_std": str(returns[g, s].std())})  # fmt: skip
        rundir.atomic_write_text(self.path, rundir.rows_csv(self.rows))

    def final(self, states) -> np.ndarray:
        return self.returns(states, jax.random.key(self.settings.seed + 1))


class TensorBoard:
    """One TensorBoard run per (grid point, seed): every metric against env steps."""

    def __init__(self, run_dir: Path, settings, done: int, seed_range: range):
        from tensorboardX import SummaryWriter

        _, points = settings.grid_hparams()
        self.writers = {
            (g, s): SummaryWriter(str(run_dir / "tensorboard" / f"grid{g}_seed{seed}"), purge_step=done + 1)
            for g in range(len(points))
            for s, seed in enumerate(seed_range)
        }

    def write(self, metrics: dict) -> None:
        steps = metrics["env_steps"]
        for (g, s), writer in self.writers.items():
            for i in range(steps.shape[-1]):
                step = int(steps[g, s, i])
                for name, values in metrics.items():
                    if name != "env_steps" and np.isfinite(values[g, s, i]):
                        writer.add_scalar(f"train/{name}", float(values[g, s, i]), step)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class Wandb:
    """One Weights & Biases run per grid point (grouped by run directory): per-seed returns and
    every metric's mean over seeds, against env steps. ``WANDB_MODE=offline`` works without a login.
    """

    def __init__(self, run_dir: Path, settings, trainer, seed_range: range):
        import wandb

        grid, points = settings.grid_hparams()
        hparams = rundir.resolved_points(trainer, grid, points)
        self.runs = [
            wandb.init(
                project=os.environ.get("WANDB_PROJECT", "jaxppo"),
                group=run_dir.name,
                name=f"{run_dir.name}/grid{g}"
                + (f"/seeds{seed_range.start}-{seed_range.stop - 1}" if len(seed_range) < settings.seeds else ""),
                dir=str(run_dir),
                reinit="create_new",
                config={**settings.to_json()["config"], **hparams[g], "seeds": settings.seeds},
            )  # fmt: skip
            for g in range(len(points))
        ]
        self.first_seed = seed_range.start

    def write(self, metrics: dict) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN iterations (no episode finished)
            for g, run in enumerate(self.runs):
                for i in range(metrics["env_steps"].shape[-1]):
                    row = {name: float(np.nanmean(values[g, :, i])) for name, values in metrics.items()}
                    row.update({f"episode_return/seed{self.first_seed + s}": float(v)
                                for s, v in enumerate(metrics["episode_return"][g, :, i])})  # fmt: skip
                    run.log(row, step=int(metrics["env_steps"][g, 0, i]))

    def close(self) -> None:
        for run in self.runs:
            run.finish()


def preload_output_modules():
    """Import the checkpoint and plotting libraries in a background thread while training runs.

    The main thread only waits for the devices then, and these imports (about 1 s) would
    otherwise delay the first checkpoint and the plot at the end. The main thread calls the
    returned function (it waits for the imports) before it saves or plots, so no module is ever
    imported by both threads at once.
    """

    def load():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import orbax.checkpoint  # noqa: F401

    return in_background(load)


def in_background(fn):
    """Start ``fn()`` in a thread; the returned function waits for its result (or raises its error)."""
    outcome = {}

    def target():
        try:
            outcome["result"] = fn()
        except BaseException as error:  # handed to the caller, which raises it
            outcome["error"] = error

    thread = threading.Thread(target=target, name="jaxppo-background", daemon=True)
    thread.start()

    def result():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return result


def _say(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def _concat(history: list[dict]) -> dict:
    return {k: np.concatenate([h[k] for h in history], axis=-1) for k in history[0]}


def _write_metrics(run_dir, trainer, settings, metrics, first_seed: int = 0) -> None:
    grid, points = settings.grid_hparams()
    rows = rundir.resolved_points(trainer, grid, points)
    rundir.atomic_write_text(run_dir / rundir.METRICS_FILE, rundir.metrics_csv(metrics, rows, first_seed))


def _summary(trainer, settings, part: Part) -> dict:
    metrics, eval_returns, diverged_at = part.metrics, part.eval_returns, part.diverged_at
    compile_seconds, run_seconds = part.compile_seconds, part.run_seconds
    grid, points = settings.grid_hparams()
    rows = rundir.resolved_points(trainer, grid, points)
    final = np.asarray(metrics["episode_return_last100"])[:, :, -1]  # [G, S]
    steps = int(np.asarray(metrics["env_steps"])[0, 0, -1])
    agents = len(points) * settings.seeds
    out = {"env_id": settings.config.env_id, "seeds": settings.seeds, "env_steps_per_seed": steps,
           "compile_seconds": compile_seconds, "run_seconds": run_seconds,
           "env_steps_per_second": agents * steps / run_seconds if run_seconds > 0 else None,
           "final_return_definition": "per seed: mean raw return of its last 100 completed episodes",
           "grid_points": []}  # fmt: skip
    for g, point in enumerate(points):
        entry = {
            "grid_point": g,
            "swept": point,
            "hparams": rows[g],
            "final_return": summarize(final[g]),
            "final_return_per_seed": [None if np.isnan(v) else float(v) for v in final[g]],
            # All grid points train in the same compiled call: they share its timings.
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
            "env_steps_per_second": out["env_steps_per_second"],
            # Non-finite loss or parameters: updates rejected from that iteration on (frozen).
            "diverged": [{"seed": s, "iteration": int(i)} for s, i in enumerate(diverged_at[g]) if i >= 0],
        }
        if eval_returns is not None:
            entry["eval_return"] = summarize(eval_returns[g].mean(axis=-1))
            entry["eval_return_per_seed"] = eval_returns[g].mean(axis=-1).tolist()
        out["grid_points"].append(entry)
    means = [p["final_return"]["mean"] for p in out["grid_points"]]
    out["best_grid_point"] = int(np.nanargmax(means)) if np.isfinite(means).any() else None
    return out


def _table(summary: dict, run_dir: Path) -> str:
    lines = [f"\n{summary['env_id']}: final return (mean of last 100 episodes) over {summary['seeds']} seed(s), "
             f"{summary['env_steps_per_seed']} env steps per seed"]  # fmt: skip
    header = f"  {'':2}{'grid point':<40} {'mean ± std':>20} {'95% CI':>22}"
    has_eval = "eval_return" in summary["grid_points"][0]
    lines.append(header + (f" {'eval':>10}" if has_eval else ""))
    for point in summary["grid_points"]:
        label = ", ".join(f"{k}={v:g}" for k, v in point["swept"].items()) or "defaults"
        r = point["final_return"]
        mark = "* " if point["grid_point"] == summary["best_grid_point"] and len(summary["grid_points"]) > 1 else "  "
        row = f"  {mark}{label:<40} {r['mean']:>10.2f} ± {r['std']:<7.2f} [{r['ci95'][0]:>9.2f}, {r['ci95'][1]:>9.2f}]"
        if has_eval:
            row += f" {point['eval_return']['mean']:>10.2f}"
        if point["diverged"]:
            first = min(d["iteration"] for d in point["diverged"])
            row += f"  DIVERGED: {len(point['diverged'])} seed(s), first at iteration {first} (frozen)"
        lines.append(row)
    lines.append(f"compile {summary['compile_seconds']:.1f} s, run {summary['run_seconds']:.1f} s, "
                 f"{summary['env_steps_per_second'] or 0:,.0f} env steps/s")  # fmt: skip
    names = (rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.EVAL_FILE, rundir.SUMMARY_FILE, rundir.PLOT_FILE,
             rundir.CHECKPOINT_DIR, "tensorboard")  # fmt: skip
    lines.append("wrote: " + ", ".join(str(run_dir / n) for n in names if (run_dir / n).exists()))
    return "\n".join(lines)
