"""The host loop: a run's compiled program driven from Python, one chunk of iterations at a time.

All grid points x seeds advance together: ``scan`` over iterations of the doubly vmapped
``Trainer.step`` (equal to vmapping the scanned ``train``), seeds sharded over the local
devices. Between chunks the host advances the progress bar, writes the loggers, evaluates and
saves checkpoints when due, and reacts to signals (``Stopper``); a chunked run equals an
unchunked one. At the end it hands the results to ``jaxppo.cli.outputs``.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo import parallel, pbt, rundir
from jaxppo.cli.loggers import Evaluator, TensorBoard, Videos, Wandb
from jaxppo.cli.outputs import (
    Part,
    first_nonfinite_env_outputs,
    merge_parts,
    nonfinite_env_message,
    write_metrics,
    write_outputs,
)
from jaxppo.factories import RunFacts
from jaxppo.policy import architecture_text
from jaxppo.settings import RunOptions, run_keys

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopper:
    """First SIGINT/SIGTERM: stop after the current chunk. Second: abort at once.

    ``saved``: the iteration of the run's latest complete checkpoint (``None`` while there is
    none), which the loop updates after every save, so that an abort says what survives it.
    """

    def __init__(self, run_dir: Path | None = None, total: int | None = None, saved: int | None = None):
        self.signal = None
        self.run_dir, self.total, self.saved = run_dir, total, saved
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

    def what_survives(self) -> str:
        if self.run_dir is None:
            return "the latest complete checkpoint, if any, is intact"
        resume = f"python -m jaxppo.run --resume {self.run_dir}"
        if self.saved is None:
            return f"no checkpoint was saved yet; {resume} trains the run again from iteration 0"
        return f"the checkpoint of iteration {self.saved} of {self.total} is intact; continue with: {resume}"

    def _abort(self, signum, frame):
        # Exit here, not by raising: an exception raised in whatever the main thread is doing
        # (a compiled call in C++, a thread's join, jax's atexit clean-up) can
        # leave a non-daemon thread that the interpreter then waits for forever, abort the process,
        # or print a traceback. Every file is written atomically: a checkpoint being saved is
        # not yet the latest complete one.
        print(f"\n{signal.Signals(signum).name} again: aborting now; {self.what_survives()}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_CODES[signum])

    def __exit__(self, *exc):
        # Once stopping, the process is on its way out (jax's exit hooks still run): a
        # further signal keeps meaning "abort at once" until it has gone.
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if self.signal is None else self._abort)


DEFAULT_CHECKPOINT_FRACTION = 0.1  # of the run's iterations, between default checkpoints
CHECKPOINT_MIN_SECONDS = 30.0  # the default cadence's spacing: a short run saves only at its end
DEFAULT_CHECKPOINT_MINUTES = 5.0


class CheckpointCadence:
    """When the loop saves a checkpoint: after the last iteration, and

    * with ``every`` (``--checkpoint-every K``), every K iterations;
    * without it, once 10 % of the run's iterations were trained since the latest checkpoint
      and at least 30 s have passed since it (or since training started): a save costs a
      fraction of a second, so this spends at most about 1 % of the time on checkpoints, and
      loses at most 10 % of the run, or under 30 s of training, to an abort or a crash;
    * either way, once ``minutes`` of training have passed since the latest checkpoint (0: never).

    Checkpoints fall between compiled chunks, whose length does not depend on this: the cadence
    never changes the training numbers.
    """

    def __init__(self, total: int, every: int | None, minutes: float | None, done: int, clock=time.monotonic,
                 by_time: bool = True):  # fmt: skip
        self.total, self.every, self.clock = total, every, clock
        self.seconds = DEFAULT_CHECKPOINT_MINUTES * 60 if minutes is None else minutes * 60
        self.spacing = CHECKPOINT_MIN_SECONDS
        if not by_time:  # processes of one run save at the same iterations, whatever their clocks say
            self.seconds = self.spacing = 0.0
        self.stride = max(1, math.ceil(total * DEFAULT_CHECKPOINT_FRACTION))
        self.saved(done)

    def saved(self, done: int) -> None:
        self.last_iteration, self.last_time = done, self.clock()

    def due(self, done: int) -> bool:
        elapsed = self.clock() - self.last_time
        if done >= self.total or (self.seconds and elapsed >= self.seconds):
            return True
        if self.every:
            return done % self.every == 0
        return done - self.last_iteration >= self.stride and elapsed >= self.spacing


class Progress:
    """Training progress over env steps of all agents, advanced after every chunk of iterations.

    On a terminal, a tqdm bar; otherwise (a log file, a pipe, CI) one plain line about every
    10 % of the run, since a bar redrawn with carriage returns is one endless line there. The
    return shown is the mean over seeds of the last 100 episodes' return: of the single grid
    point, or of the best one in a grid.

    Chunks are short (about 2 % of the run), so it moves during training without a host
    callback inside the compiled loop, which keeps the executable cacheable on disk.
    """

    LINES = 10  # plain lines per run

    def __init__(self, total_steps: int, agents: int, enabled: bool, start_steps: int = 0, stream=None):
        self.agents, self.total, self.start = agents, total_steps * agents, start_steps * agents
        self.stream = sys.stderr if stream is None else stream
        self.bar, self.lines = None, enabled and not _is_terminal(self.stream)
        self.next_line = self._line_after(self.start)
        self.t0 = time.perf_counter()
        if enabled and not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.start, unit="step", unit_scale=True, dynamic_ncols=True,
                            file=self.stream, desc="training")  # fmt: skip

    def _line_after(self, steps: int) -> int:
        tenth = max(1, self.total // self.LINES)
        return min(self.total, (steps // tenth + 1) * tenth)

    def update(self, env_steps: int, returns: np.ndarray) -> None:
        steps, text = env_steps * self.agents, return_text(returns)
        if self.bar is not None:
            if text:
                self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(steps - self.bar.n)
        elif self.lines and steps >= self.next_line:
            self.next_line = self._line_after(steps)
            elapsed = time.perf_counter() - self.t0
            rate = f", {(steps - self.start) / elapsed:,.0f} steps/s" if elapsed > 0 else ""
            print(f"training: {100 * steps / self.total:3.0f}% ({steps:,} of {self.total:,} steps, {elapsed:.1f} s"
                  f"{rate}){'; ' + text if text else ''}", file=self.stream, flush=True)  # fmt: skip

    def close(self):
        if self.bar is not None:
            self.bar.close()


def return_text(returns: np.ndarray) -> str:
    """The progress's return field from ``[G, S]`` returns (NaN where no episode ended yet)."""
    returns = np.asarray(returns, np.float64)
    if not np.isfinite(returns).any():
        return ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(returns, axis=-1)  # per grid point, over seeds
        if returns.shape[0] == 1:
            return f"return mean {means[0]:.1f} min {np.nanmin(returns):.1f}"
        best = int(np.nanargmax(means))
        return f"best grid point {best}: return mean {means[best]:.1f} min {np.nanmin(returns[best]):.1f}"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


CHUNKS_PER_RUN = 50  # progress and Ctrl-C granularity: about 2 % of the run per compiled call


def chunk_length(num_iterations: int, *periods: int | None) -> int:
    """Iterations per compiled call: divides the run (one compilation) and every period given
    (checkpoints, evaluations).

    Among those divisors, the one closest to ``num_iterations / 50`` (a prime count of
    iterations runs one per call, which costs about a millisecond each).
    """
    period = math.gcd(num_iterations, *(p for p in periods if p))
    divisors = [d for d in range(1, period + 1) if period % d == 0]
    return min(divisors, key=lambda d: (abs(num_iterations / d - CHUNKS_PER_RUN), -d))


@contextlib.contextmanager
def garbage_collection_paused():
    """Python's cyclic garbage collector off inside the block, as it was after it.

    Tracing a training program allocates millions of short-lived objects, which trigger
    collections that walk everything alive (jax, flax, gymnax...): a visible part of the CLI's
    start-up for CartPole (docs/performance.md). Cycles made meanwhile are collected after the block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def preload_output_modules():
    """Import the plotting library in a background thread while training runs.

    The main thread only waits for the devices then, and the import (about half a second) would
    otherwise delay the plot at the end. The main thread calls the returned function (it waits
    for the import) before it plots, so no module is ever imported by both threads at once.
    """

    def load():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401

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


# ------------------------------------------------------------ the run
def train_run(facts: RunFacts, run_dir: Path, states, metrics, options: RunOptions) -> int:
    """Train (or continue) a run; ``states``/``metrics`` come from a checkpoint when resuming.

    With several processes (``jax.distributed``), this process trains its block of seeds
    (``parallel.process_seed_range``) and writes its files into ``rundir.part_dir``; process 0
    then merges every part into the run directory (``merge_parts``). Returns the exit status.
    """
    loop = HostLoop(facts, run_dir, options, metrics)
    loop.announce()
    # A signal while compiling stops after the first chunk; a second one, until this process has
    # said how it ended, aborts at once.
    with Stopper(run_dir, loop.total, loop.done or None) as stopper:
        states = loop.compile(states)
        trained = loop.train(states, stopper)
        stopped_code = loop.stopped_code()
        if stopped_code is not None:
            return stopped_code
    return loop.finish(trained)


class Trained(NamedTuple):
    states: Any  # TrainState [G, S] of this process's seeds, on the host
    metrics: dict  # name -> [G, S, iterations done]


class HostLoop:
    """One process's training of its block of seeds, and what it writes between chunks."""

    def __init__(self, facts: RunFacts, run_dir: Path, options: RunOptions, metrics: dict | None):
        self.facts, self.run_dir, self.options = facts, run_dir, options
        trainer, settings = facts.trainer, facts.settings
        self.trainer, self.settings, self.grid = trainer, settings, facts.grid
        self.seed_range = parallel.process_seed_range(settings.seeds)
        self.out_dir = rundir.part_dir(run_dir)
        self.grid_size, self.seeds = facts.num_points, len(self.seed_range)
        self.config = trainer.config
        self.total = self.config.num_iterations
        self.done = 0 if metrics is None else int(np.shape(metrics["env_steps"])[-1])
        self.earlier_parts = self._earlier_parts()
        self.chunk = self._chunk_length()
        self.evaluator = Evaluator(facts, self.out_dir, self.done, self.seed_range.start)
        self.videos = Videos(facts, self.out_dir, self.seed_range.start)
        self.loggers = [TensorBoard(self.out_dir, facts, self.done, self.seed_range)] if options.tensorboard else []
        if options.wandb:
            self.loggers.append(Wandb(self.out_dir, facts, self.seed_range))
        self.history = [] if metrics is None else [{k: np.asarray(v) for k, v in metrics.items()}]
        # Seeds are sharded over the local devices (one per CPU core by default) and padded to fill
        # them; each device runs its own seeds, with no communication, in seed_chunk pieces if asked.
        self.layout = parallel.seed_layout(self.seeds, settings.seed_chunk)
        # With --pbt the seeds of each grid point are a population whose members each have their own
        # hyperparameters, carried from chunk to chunk (``pbt.Population``) and recorded in the metrics.
        self.pbt = settings.pbt_config()
        if self.pbt is None:
            self.step = jax.vmap(self.layout.over_seeds(trainer.step), axis_size=self.grid_size)
        else:
            member_step = jax.vmap(self.layout.over_seeds(lambda pair: trainer.step(*pair)))
            self.step = lambda states, hparams: member_step((states, hparams))
            self.population_draws, self.population_stream = pbt.population_keys(jax.random.key(settings.seed))
            self.population = None if metrics is None else pbt.Population.from_metrics(metrics)
        self.programs = {}  # chunk length -> compiled program
        self.states_like = None  # what the chunk programs are compiled for
        self.compile_seconds = self.run_seconds = 0.0
        self.first = self.done  # where this leg's part of the run starts
        self.stopped = None  # the signal that stopped this process's training
        self.nonfinite_told = set()  # (grid point, seed) whose env's NaN or inf was reported

    def _earlier_parts(self) -> list[dict]:
        """The legs that trained the checkpoint this one continues (none for a new run)."""
        if not self.done:
            return []
        parts = rundir.read_timings(self.out_dir, self.done)
        return parts or [{"iterations": [0, self.done], "compile_seconds": None, "run_seconds": None}]

    def _chunk_length(self) -> int:
        """A resumed run keeps the chunk length it had where that still fits (divides the run, the
        checkpoint and evaluation periods): the same program, from the compilation cache."""
        periods = (self.options.checkpoint_every, self.options.eval_every, self.options.video_every)
        before = self.earlier_parts[-1].get("chunk") if self.earlier_parts else None
        if before and self.total % before == 0 and all(p % before == 0 for p in periods if p):
            return before
        return chunk_length(self.total, *periods)

    def parts(self) -> list[dict]:
        """Every leg's iterations and timings, this one's so far included."""
        mine = {"iterations": [self.first, self.done], "compile_seconds": self.compile_seconds,
                "run_seconds": self.run_seconds, "chunk": self.chunk}  # fmt: skip
        return [*self.earlier_parts, mine]

    def announce(self) -> None:
        start, stop = self.seed_range.start, self.seed_range.stop
        process = f" (process {jax.process_index()} of {jax.process_count()}: seeds {start}..{stop - 1})"
        _say(f"jaxppo: {self.settings.config.env_id}, {self.grid_size} grid point(s) x {self.seeds} seed(s) on "
             f"{self.layout.mesh.size} device(s), {self.total} iterations of {self.config.batch_size} steps"
             f"{process if jax.process_count() > 1 else ''}; writing {self.out_dir}",
             self.options.show_progress)  # fmt: skip
        architecture = self.trainer.architecture()
        _say(f"jaxppo: policy: {architecture_text(architecture)} ({architecture['parameters']:,} parameters)",
             self.options.show_progress)  # fmt: skip

    def compile(self, states):
        """Compile (or load from the disk cache) the programs; the states to start from, on the devices."""
        t0 = time.perf_counter()
        with garbage_collection_paused():  # tracing, not training
            if states is None:
                # Each device initialises its own seeds: moving states made on one device to all of
                # them cost a measurable delay against nothing for the sharded keys (docs/performance.md).
                keys = self.layout.put(run_keys(self.settings, self.seed_range), 0)
                if self.pbt is None:
                    sequential = jax.default_backend() == "cpu"  # compiles faster; CPU runs agents in turn anyway
                    init = parallel.batched_init(self.trainer, self.grid_size, sequential)
                    init = jax.jit(self.layout.shard(init, (0, None), 1)).lower(keys, self.grid)
                else:  # each member's optimiser starts from its own hyperparameters
                    self._place_population(self._initial_population())
                    init = jax.vmap(jax.vmap(self.trainer.init), in_axes=(None, 0))
                    init = jax.jit(self.layout.shard(init, (0, 1), 1)).lower(keys, self.population.hparams)
                # XLA compiles (or loads) the init program while this thread traces the chunk program
                # from the init's output shapes: a shorter start-up (docs/performance.md).
                init_compiled = in_background(init.compile)
                self.states_like = init.out_info
            else:
                states = self.layout.put(states, 1)
                # Shapes and dtypes alone, as the init's outputs that a new run compiles for: lowered
                # for the arrays themselves (their shardings), the program differed from the new run's
                # and missed the compilation cache (several seconds of compiling on every resume).
                self.states_like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), states)
                if self.pbt is not None:
                    self._place_population(self.population)
            self.program(min(self.chunk, self.total - self.done) if self.done < self.total else self.chunk)
            if states is None:
                states = init_compiled()(keys, self.grid if self.pbt is None else self.population.hparams)
        self.compile_seconds = time.perf_counter() - t0
        _say(f"compiled in {self.compile_seconds:.1f} s", self.options.show_progress)  # near 0 from the disk cache
        return states

    def _initial_population(self) -> pbt.Population:
        """A new run's members ``[G, S]``: drawn for this process's seeds alone, then padded."""
        return pbt.initial_population(self.pbt, self.grid, self.trainer.spec.action_kind, self.population_draws,
                                      (self.grid_size, self.seeds))  # fmt: skip

    def _place_population(self, population: pbt.Population) -> None:
        self.population = self.layout.put(population, 1)

    def program(self, length: int):
        """The compiled ``(states, grid) -> (states, metrics [G, S, length])`` of ``length`` iterations;
        with ``--pbt``, ``(states, population) -> ((states, population), metrics)``."""
        if length not in self.programs:
            if self.pbt is None:
                run_chunk = lambda st, hp: self._run_chunk(st, hp, length)
                sharded = jax.jit(self.layout.shard(run_chunk, (1, None), 1))
                self.programs[length] = sharded.lower(self.states_like, self.grid).compile()
            else:
                population_like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self.population)
                run_chunk = jax.jit(lambda st, pop, done: self._run_population_chunk(st, pop, done, length))
                done_like = jax.ShapeDtypeStruct((), jnp.int32)
                self.programs[length] = run_chunk.lower(self.states_like, population_like, done_like).compile()
        return self.programs[length]

    def _run_chunk(self, states, grid, length: int):
        states, m = jax.lax.scan(lambda st, _: self.step(st, grid), states, None, length=length)
        return states, jax.tree.map(lambda x: jnp.moveaxis(x, 0, -1), m)  # [G, S, n]

    def _run_population_chunk(self, states, population, done, length: int):
        """``length`` iterations of the populations from ``done`` iterations done: each device steps its
        own members, and the exploits between iterations read and copy across devices."""
        step = self.layout.shard(self.step, (1, 1), 1)
        stream = self.population_stream
        body = lambda carry, i: pbt.population_iteration(self.pbt, step, stream, self.seeds, carry, i)
        (states, population), m = jax.lax.scan(body, (states, population), done + jnp.arange(length))
        return (states, population), jax.tree.map(lambda x: jnp.moveaxis(x, 0, -1), m)  # [G, S, n]

    def _advance(self, states, length: int):
        """``length`` iterations from ``states``: ``(states, metrics [G, S, length])``."""
        if self.pbt is None:
            return self.program(length)(states, self.grid)
        (states, self.population), metrics = self.program(length)(states, self.population, np.int32(self.done))
        return states, metrics

    def train(self, states, stopper: Stopper) -> Trained:
        """Run chunks to the end of the run, or to the chunk in which a signal came."""
        progress = Progress(self.config.env_steps, self.grid_size * self.seeds, self.options.show_progress,
                            self.done * self.config.batch_size)  # fmt: skip
        preloaded = preload_output_modules()
        self.cadence = CheckpointCadence(self.total, self.options.checkpoint_every, self.options.checkpoint_minutes,
                                         self.done, by_time=jax.process_count() == 1)  # fmt: skip
        while self.done < self.total:
            length = min(self.chunk - self.done % self.chunk, self.total - self.done)
            t1 = time.perf_counter()
            states, chunk_metrics = self._advance(states, length)
            self.history.append(parallel.host_slice(chunk_metrics, self.seeds, axis=1))
            self.run_seconds += time.perf_counter() - t1
            self.done += length
            self._after_chunk(states, progress, stopper)
            if stopper.signal and self.done < self.total:
                self.stopped = stopper.signal
                break
        states = parallel.host_slice(states, self.seeds, axis=1)
        progress.close()
        preloaded()
        return Trained(states, _concat(self.history))

    def _after_chunk(self, states, progress: Progress, stopper: Stopper) -> None:
        """The progress bar and loggers; the evaluation and checkpoint when due."""
        done, batch_size, latest, options = self.done, self.config.batch_size, self.history[-1], self.options
        progress.update(done * batch_size, latest["episode_return_last100"][..., -1])
        self._tell_nonfinite_env_outputs(latest["env_nonfinite"], done)
        for logger in self.loggers:
            logger.write(latest)
        if options.eval_every and done % options.eval_every == 0:
            self.evaluator.record(parallel.host_slice(states, self.seeds, axis=1), done, done * batch_size)
        if options.video_every and done % options.video_every == 0:
            path = self.videos.write(parallel.host_slice(states, self.seeds, axis=1), done)
            for logger in self.loggers:
                logger.video(path, done * batch_size)
        if self.cadence.due(done) or stopper.signal:
            metrics = _concat(self.history)
            self.history = [metrics]
            rundir.save_checkpoint(self.out_dir, done, parallel.host_slice(states, self.seeds, axis=1), metrics)
            rundir.save_timings(self.out_dir, done, self.parts())
            write_metrics(self.out_dir, self.facts, metrics, self.seed_range.start)
            self.cadence.saved(done)
            stopper.saved = done

    def _tell_nonfinite_env_outputs(self, env_nonfinite: np.ndarray, done: int) -> None:
        """A line per agent, the first time its env returns a NaN or inf (``[G, S, n]`` up to ``done``)."""
        first = done - np.shape(env_nonfinite)[-1] + 1
        for (g, s), (iteration, what) in first_nonfinite_env_outputs(env_nonfinite, first).items():
            if (g, s) not in self.nonfinite_told:
                self.nonfinite_told.add((g, s))
                seed = self.seed_range.start + s
                print(nonfinite_env_message(self.settings.config.env_id, seed, g, iteration, what), file=sys.stderr)

    def stopped_code(self) -> int | None:
        """The exit status when this process or another was stopped (it says so), else ``None``.

        Every process says how its training ended before any waits for the others' parts: a process
        that was stopped must not leave the others waiting for a part it will never write.
        """
        mine = "finished" if self.stopped is None else str(int(self.stopped))
        ended = parallel.gather_statuses("training-ended", mine)
        stopped_processes = [k for k, status in enumerate(ended) if status != "finished"]
        if not stopped_processes:
            return None
        stopped = self.stopped
        if stopped is None:  # this process finished its seeds, another one was stopped
            stopped = signal.Signals(int(ended[stopped_processes[0]]))
            others = ", ".join(map(str, stopped_processes))
            what = f"process(es) {others} stopped; this one trained all {self.total} iterations"
        else:
            what = f"stopped after iteration {self.done} of {self.total}"
        print(f"{what}; checkpoint and logs saved in {self.out_dir}\n"
              f"resume with: python -m jaxppo.run --resume {self.run_dir}"
              f"{' (and the same process flags, on every process)' if jax.process_count() > 1 else ''}",
              file=sys.stderr)  # fmt: skip
        return EXIT_CODES[stopped]

    def finish(self, trained: Trained) -> int:
        """The run's outputs, written here for one process; with several, this process's part, which
        process 0 merges with the others once all are written."""
        for logger in self.loggers:
            logger.close()
        part = Part(
            metrics=trained.metrics,
            eval_returns=self.evaluator.final(trained.states) if self.settings.eval_episodes else None,
            diverged_at=np.asarray(trained.states.diverged_at),
            parts=tuple(self.parts()),
        )
        if jax.process_count() == 1:  # the last checkpoint wrote the final metrics.csv
            write_outputs(self.run_dir, self.facts, part, metrics_written=True)
            return 0
        part.save(self.out_dir)
        parallel.barrier("parts-written")
        if jax.process_index() != 0:
            start, stop = self.seed_range.start, self.seed_range.stop
            print(f"process {jax.process_index()}: seeds {start}..{stop - 1} done in {self.out_dir}; "
                  f"process 0 merges the run", file=sys.stderr)  # fmt: skip
            return 0
        return merge_parts(self.run_dir)


def _say(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def _concat(history: list[dict]) -> dict:
    return {k: np.concatenate([h[k] for h in history], axis=-1) for k in history[0]}
