"""Command line: ``python -m jaxppo.run --env CartPole-v1 --seeds 64`` (also the ``jaxppo`` script).

All grid points x all seeds train in one compiled call. The loop runs in chunks of
iterations between host-side checkpoint saves; a chunked run equals an unchunked one.
Bad input gets a one-line error and exit status 2; Ctrl-C (or SIGTERM) finishes the
current chunk, saves a checkpoint and the logs so far, and exits 130 (143).

The top layer: flags to ``RunSettings`` (``jaxppo.settings``), jax's devices and processes,
the run directory to start or resume (``jaxppo.rundir``), then ``jaxppo.cli.loop.train_run``.
Everything that imports jax's backends is imported only after ``use_host_devices``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from jaxppo.cli.parsing import FLAGS_BEGIN, FLAGS_END, Parser, Stopped, add_declared, run_main, write_generated_block
from jaxppo.cli.parsing import flag_reference as render_flag_reference
from jaxppo.config import ConfigError, PPOConfig, PPOHParams
from jaxppo.declared import check_fields, declared, setting
from jaxppo.settings import (
    GROUPS,
    RunOptions,
    RunSettings,
    Source,
    read_config_file,
    settings_as_args,
    settings_from_args,
)

PROG = "python -m jaxppo.run"


@dataclasses.dataclass(frozen=True)
class Launch:
    """Which run directory, and how this process starts: flags that change neither a run's numbers
    (``RunSettings``) nor how it reports (``RunOptions``)."""

    config: str | None = setting(None, "str", "TOML or YAML file of settings; flags override it", metavar="FILE",
                                 group="run")  # fmt: skip
    out: str | None = setting(None, "str", "run directory (default runs/<env>__<UTC timestamp>)", metavar="DIR",
                              group="run")  # fmt: skip
    overwrite: bool = setting(False, "bool", "replace an existing run in --out", switch="on", group="run")
    resume: str | None = setting(None, "str", "continue the run in DIR from its latest checkpoint (from iteration 0 "
                                 "if it has none); a finished run is left as it is, unless a larger "
                                 "--total-timesteps trains it longer (runs trained with --no-anneal-lr only: "
                                 "annealing ties the learning rate to the old budget)", metavar="DIR",
                                 group="run")  # fmt: skip
    compile_cache: bool = setting(True, "bool", "do not use the on-disk compilation cache ($JAXPPO_CACHE_DIR or "
                                  "~/.cache/jaxppo/xla)", switch="off", flag="--no-compile-cache",
                                  group="run")  # fmt: skip
    host_devices: int | None = setting(None, "int", "XLA:CPU devices to shard seeds over (default: one per CPU "
                                       "core)", low=1, metavar="N", group="run")  # fmt: skip
    coordinator_address: str | None = setting(None, "str", "address of process 0, which every process joins",
                                              metavar="HOST:PORT", group="hosts")  # fmt: skip
    num_processes: int | None = setting(None, "int", "how many processes share the run", metavar="N", group="hosts")
    process_id: int | None = setting(None, "int", "this process's index, 0 .. N-1", metavar="K", group="hosts")

    def __post_init__(self):
        check_fields(self, by_flag=True)


# Every flag of the command, by the declaration it sets; the flag reference's field groups.
DECLARATIONS = ((PPOConfig, "PPOConfig"), (RunSettings, "run"), (RunOptions, "run"), (Launch, "run"),
                (PPOHParams, "PPOHParams"))  # fmt: skip
FIELD_GROUPS = {GROUPS["PPOConfig"]: "PPOConfig", GROUPS["PPOHParams"]: "PPOHParams"}


def build_parser() -> Parser:
    """The command's parser: a flag per declared field of ``DECLARATIONS`` (its dest is the field)."""
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0], argument_default=argparse.SUPPRESS)
    for title in GROUPS.values():  # the groups in this order, each flag in its declaration's order
        parser.add_argument_group(title)
    for cls, group in DECLARATIONS:
        add_declared(parser, cls, GROUPS, group)
    return parser


def _split(args: dict, cls):
    """The declared fields of ``cls`` taken out of the parsed flags, as an instance of ``cls``."""
    return cls(**{name: args.pop(name) for name in declared(cls) if name in args})


def flag_reference() -> str:
    """Every flag of ``build_parser()`` as Markdown (docs/cli.md's generated block)."""
    return render_flag_reference(build_parser(), FIELD_GROUPS)


def write_flag_reference(path: str | Path = "docs/cli.md") -> None:
    """Replace the block between ``FLAGS_BEGIN`` and ``FLAGS_END`` in ``path`` with ``flag_reference()``:
    ``python -c "from jaxppo.run import write_flag_reference; write_flag_reference()"``."""
    write_generated_block(path, flag_reference(), FLAGS_BEGIN, FLAGS_END)


# ------------------------------------------------------------ the run
def _require(module: str, flag: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{flag} needs the {module} package; pip install 'jaxppo[{extra}]'")


def enable_compile_cache() -> Path:
    """Persistent XLA cache: a second identical run skips compilation."""
    import jax

    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxppo" / "xla"
    directory = Path(os.environ.get("JAXPPO_CACHE_DIR", default))
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return directory


def main(argv=None) -> int:
    return run_main(PROG, _main, argv)


WRITE_FAILED = 1  # the exit status when the run directory could not be written (a full disk, ...)


def _interrupted(run_dir: Path) -> Stopped:
    """Ctrl-C outside the training loop (which saves and exits by itself), once the run directory is known."""
    return Stopped(f"interrupted; {what_survives(run_dir)}", 130)


def _write_failed(run_dir: Path, error: OSError) -> Stopped:
    """A file of the run (a checkpoint, the logs, the outputs) could not be written."""
    what = f"could not write {error.filename or f'to {run_dir}'} ({error.strerror or error})"
    return Stopped(f"error: {what}; {what_survives(run_dir)}", WRITE_FAILED)


def what_survives(run_dir: Path) -> str:
    """What a run directory holds after its training stopped early, and how to go on."""
    from jaxppo import rundir

    if not (run_dir / rundir.CONFIG_FILE).is_file():
        return f"nothing was written to {run_dir}"
    saved = rundir.saved_iterations(run_dir)
    resume = f"{PROG} --resume {run_dir}"
    if not saved:
        return f"{run_dir} holds no checkpoint; {resume} trains it from iteration 0"
    return f"the checkpoint of iteration {saved[-1]} in {run_dir} is intact; continue with: {resume}"


class _Target(NamedTuple):
    """The run to train: its facts (settings, trainer, grid: ``jaxppo.factories.RunFacts``), its
    directory, and whether it continues from a checkpoint."""

    facts: Any
    run_dir: Path
    resume: bool
    overwrite: bool
    extended: bool = False  # a resumed run trained to a larger --total-timesteps


class _Start(NamedTuple):
    states: Any  # TrainState [G, S] of this process's seeds from the checkpoint; None for a new run
    metrics: dict | None


def _main(argv) -> int:
    args = vars(build_parser().parse_args(argv))
    launch, options = _split(args, Launch), _split(args, RunOptions)  # what remains are RunSettings' flags
    _start_jax(launch)
    _check_options(options)
    file = [Source(f"config file {launch.config}", read_config_file(launch.config))] if launch.config else []
    target = _resumed_run(launch, file, args) if launch.resume else _new_run(launch, file, args)
    try:
        with contextlib.ExitStack() as locks:  # the run directory is this process's while it trains
            start = _prepare(target, options, locks)
            if start is None:  # a finished run: nothing to train, nothing rewritten
                return 0
            from jaxppo.cli.loop import train_run

            return train_run(target.facts, target.run_dir, start.states, start.metrics, options)
    except KeyboardInterrupt:
        raise _interrupted(target.run_dir) from None
    except OSError as error:  # a full disk, a directory made unwritable, ...
        raise _write_failed(target.run_dir, error) from None


def _start_jax(launch: Launch) -> None:
    """Host devices, the Threefry lowering, the process group and the compilation cache: all of
    them before anything starts jax's backends."""
    from jaxppo.xla_cpu import unroll_threefry_on_cpu, use_host_devices

    use_host_devices(launch.host_devices)  # before anything starts jax's backends
    unroll_threefry_on_cpu()  # the same random bits, compiled faster on CPU (docs/performance.md)
    _join_processes(launch.coordinator_address, launch.num_processes, launch.process_id)
    if launch.compile_cache:
        enable_compile_cache()


def _check_options(options: RunOptions) -> None:
    """What the reporting options need before anything trains: mujoco's headless GL for videos,
    and the packages of the loggers asked for."""
    if options.video_every:
        from jaxppo.frames import headless_mujoco

        headless_mujoco()  # before a brax or Playground env imports mujoco
    if options.tensorboard:
        _require("tensorboardX", "--tensorboard", "tensorboard")
    if options.wandb:
        _require("wandb", "--wandb", "wandb")


def _resumed_run(flags: Launch, file: list[Source], args: dict) -> _Target:
    """The run in ``--resume DIR``, whose stored settings the flags may repeat but not change."""
    import jax

    from jaxppo import rundir

    run_dir = Path(flags.resume)
    stored = rundir.read_settings(run_dir)
    processes = rundir.stored_process_count(run_dir)
    if processes != jax.process_count():
        raise ConfigError(f"--resume {flags.resume} was trained by {processes} process(es), this is "
                          f"{jax.process_count()}; resume it with --num-processes {processes} "
                          f"(one per part)")  # fmt: skip
    if flags.out and Path(flags.out).resolve() != run_dir.resolve():
        raise ConfigError(f"--out {flags.out} differs from --resume {flags.resume}; a resumed run continues in place")
    run = Source(f"the run in {flags.resume}", settings_as_args(stored))
    settings = settings_from_args(args, sources=[run, *file])
    differences = stored.differences(settings.replace_total_timesteps(stored.config.total_timesteps))
    if differences:
        raise ConfigError(f"--resume {flags.resume} with different settings: {'; '.join(differences)}")
    facts = _facts(settings)
    # Budgets compare resolved: a run started without --total-timesteps has None stored.
    stored_config = stored.config.resolve(facts.trainer.spec.action_kind)
    extended = _extension(flags.resume, stored_config, facts.trainer.config)
    return _Target(facts, run_dir, resume=True, overwrite=False, extended=extended)


def _extension(run_dir: str, old, new) -> bool:
    """Whether ``--total-timesteps`` trains the run longer (``old`` and ``new``: the stored and the
    requested ``PPOConfig``, both resolved); refuses a shorter budget, and a longer one for a run
    whose learning rate anneals to zero over its own number of iterations."""
    old, new = old.require_resolved("--resume"), new.require_resolved("--resume")
    if new.total_timesteps == old.total_timesteps:
        return False
    if new.total_timesteps < old.total_timesteps:
        raise ConfigError(f"--resume {run_dir} --total-timesteps {new.total_timesteps}: the run's budget is "
                          f"{old.total_timesteps}; a budget can grow, not shrink")  # fmt: skip
    if old.anneal_lr:
        raise ConfigError(f"--resume {run_dir} --total-timesteps {new.total_timesteps}: the run anneals its "
                          f"learning rate to 0 over its {old.num_iterations} iterations, and a longer horizon "
                          f"would change the schedule it trained with; only runs trained with --no-anneal-lr "
                          f"can be trained longer (start a new run with --total-timesteps "
                          f"{new.total_timesteps} instead)")  # fmt: skip
    return True


def _new_run(flags: Launch, file: list[Source], args: dict) -> _Target:
    settings = settings_from_args(args, sources=file)
    facts = _facts(settings)
    env_name = settings.config.env_id.replace("/", "_")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(flags.out) if flags.out else Path("runs") / f"{env_name}__{stamp}"
    return _Target(facts, run_dir, resume=False, overwrite=flags.overwrite)


def _facts(settings: RunSettings):
    """The run's facts, computed once: validates env, config and grid before anything is written."""
    from jaxppo.factories import run_facts

    return run_facts(settings)


def _prepare(target: _Target, options: RunOptions, locks: contextlib.ExitStack) -> _Start | None:
    """The checkpoint to continue from, or the new run's directory with its config.json; ``None``
    when the run to resume is finished (it says so). The directories this process writes are
    locked for it (``locks`` releases them)."""
    import jax

    from jaxppo import parallel, rundir

    facts, run_dir = target.facts, target.run_dir
    settings, trainer = facts.settings, facts.trainer
    if options.eval_every and not settings.eval_episodes:
        raise ConfigError("--eval-every needs --eval-episodes N (how many episodes per evaluation)")
    if settings.pbt and jax.process_count() > 1:
        raise ConfigError("--pbt trains a population in one process (its members copy each other's learners "
                          "every interval); run it without --num-processes")  # fmt: skip
    if options.video_every:
        from jaxppo.frames import renderer

        try:  # an env without a renderer: refused before anything is written
            renderer(trainer.spec.env, trainer.spec.env_params)
        except ConfigError as error:
            raise ConfigError(f"--video-every: {error}") from None
    seed_range = parallel.process_seed_range(settings.seeds)  # this process's seeds (all, for one process)
    if target.resume:
        if jax.process_index() == 0:
            locks.callback(rundir.RunLock(run_dir).release)
        if jax.process_count() > 1:
            locks.callback(rundir.RunLock(rundir.part_dir(run_dir)).release)
        return _resume_start(target, seed_range)
    # Process 0 prepares the run directory; the others then add their process<K>/ parts.
    if jax.process_index() == 0:
        locks.callback(rundir.prepare_out_dir(run_dir, target.overwrite).release)
        rundir.write_config(run_dir, facts)
    parallel.barrier("run-dir-ready", timeout_s=600)  # process 0 only checks and writes config.json
    if jax.process_count() > 1:
        locks.callback(rundir.prepare_out_dir(rundir.part_dir(run_dir), target.overwrite).release)
        rundir.write_config(rundir.part_dir(run_dir), facts, seed_range)
    return _Start(None, None)


def _resume_start(target: _Target, seed_range: range) -> _Start | None:
    """The checkpoint to continue from (from iteration 0 when there is none); ``None`` when the
    run is finished (it says so). An extended run's config.json records its new budget."""
    import jax

    from jaxppo import loading, rundir

    facts, run_dir = target.facts, target.run_dir
    try:
        checkpoint = rundir.restore_checkpoint(
            rundir.part_dir(run_dir), loading.abstract_states(facts, seed_range), facts.metric_dtypes
        )
    except rundir.NoCheckpoint as missing:
        # Killed before its first checkpoint: its settings are all it has, and all it needs.
        print(f"{missing}: training {run_dir} again from iteration 0", file=sys.stderr)
        checkpoint = rundir.Checkpoint(0, None, None)
    config = facts.trainer.config  # resolved
    total = config.num_iterations
    if checkpoint.iteration >= total and (run_dir / rundir.SUMMARY_FILE).is_file():
        longer = "" if config.anneal_lr else (
            f"; to train it longer: --resume {run_dir} --total-timesteps N, N above {config.env_steps}")
        print(f"{run_dir} is finished: all {total} iterations trained, outputs in place; nothing changed{longer}",
              file=sys.stderr)  # fmt: skip
        return None
    if target.extended:
        if jax.process_index() == 0:
            rundir.record_extension(run_dir, facts, checkpoint.iteration)
        if jax.process_count() > 1:
            rundir.record_extension(rundir.part_dir(run_dir), facts, checkpoint.iteration)
    return _Start(checkpoint.states, checkpoint.metrics)


def _join_processes(address: str | None, count: int | None, index: int | None) -> None:
    """``jax.distributed.initialize`` from the three process flags (all or none)."""
    given = {"--coordinator-address": address, "--num-processes": count, "--process-id": index}
    if all(v is None for v in given.values()):
        return
    missing = [flag for flag, v in given.items() if v is None]
    if missing:
        raise ConfigError(f"several processes need all three of --coordinator-address, --num-processes and "
                          f"--process-id; missing {', '.join(missing)}")  # fmt: skip
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--process-id must be in 0..{count - 1} for --num-processes {count}, got {index}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--coordinator-address {address!r} must be HOST:PORT, e.g. 10.0.0.1:1234")
    import jax

    try:
        jax.distributed.initialize(address, num_processes=count, process_id=index, initialization_timeout=300)
    except Exception as error:  # jax raises RuntimeError/XlaRuntimeError with multi-line texts
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"could not join the {count} processes at {address} ({first}); start every process "
            f"with the same --coordinator-address, reachable from all of them"
        ) from None


def cli() -> None:
    """``python -m jaxppo.run`` and the ``jaxppo`` script: ``main``, then exit with its status.

    A successful single-process run ends with ``os._exit`` once its output is flushed: every
    file is written and closed by then, and the interpreter's teardown (XLA's client and thread
    pools, the loaded libraries) would only add seconds of nothing (docs/performance.md). With several
    processes, ``jax.distributed`` must shut down together; wandb syncs at exit: both exit normally.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # After a failed write too: the run's files are closed, and its status is all that is left to give.
    if code in (0, WRITE_FAILED) and _teardown_can_be_skipped():
        os._exit(code)
    sys.exit(code)


def _teardown_can_be_skipped() -> bool:
    if "jax" not in sys.modules or "wandb" in sys.modules:
        return False
    import jax
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized() and jax.process_count() == 1


if __name__ == "__main__":
    cli()
