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
import difflib
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from jaxppo.config import ConfigError
from jaxppo.settings import (
    BOOL_FIELDS,
    HPARAM_FIELDS,
    RunOptions,
    RunSettings,
    Source,
    read_config_file,
    settings_as_args,
    settings_from_args,
)

PROG = "python -m jaxppo.run"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and close-name suggestions for unknown flags."""

    def error(self, message):
        if message.startswith("unrecognized arguments"):
            known = [s for action in self._actions for s in action.option_strings]
            unknown = message.split(":", 1)[1].split()
            hints = [difflib.get_close_matches(u.split("=")[0], known, n=1) for u in unknown]
            hint = "; ".join(f"did you mean {h[0]}?" for h in hints if h)
            message = f"{message}{'; ' + hint if hint else ''} (see --help)"
        raise ConfigError(message)


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _optional_number(text: str):
    return None if text.lower() in ("none", "null", "off") else _number(text)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,64, got {text!r}") from None


def _steps(text: str) -> int:
    value = _number(text)  # accepts 5e5
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number of steps, got {text!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0], argument_default=argparse.SUPPRESS, allow_abbrev=False)
    run = p.add_argument_group("run")
    run.add_argument("--env", dest="env_id", help="env id: a gymnax id (default CartPole-v1) or suite/name (brax/ant, jumanji/Snake-v1, pgx/2048, ...)")
    run.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="env constructor argument (repeatable)")
    run.add_argument("--seeds", type=_int, help="number of seeds trained together (default 8)")
    run.add_argument("--seed", type=_int, help="base random seed (default 0)")
    run.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                     help="sweep a PPOHParams field; several --grid give the Cartesian product; a swept "
                          "field cannot also be given one value (by its flag or a config file)")  # fmt: skip
    run.add_argument("--config", metavar="FILE", help="TOML or YAML file of settings; flags override it")
    run.add_argument("--network", metavar="MODULE:FACTORY",
                     help="a network factory network(action_size=...) -> flax.linen.Module, imported from the "
                          "current directory or the Python path, in place of the built-in networks")  # fmt: skip
    run.add_argument("--optimizer", metavar="MODULE:FACTORY",
                     help="an optimizer factory optimizer(hparams) -> optax.GradientTransformation, the "
                          "learning rate included (default: CleanRL's clip + Adam)")  # fmt: skip
    run.add_argument("--out", metavar="DIR", help="run directory (default runs/<env>__<UTC timestamp>)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the run in DIR from its latest checkpoint (from iteration 0 if it has "
                          "none); a finished run is left as it is, unless a larger --total-timesteps trains "
                          "it longer (runs trained with --no-anneal-lr only: annealing ties the learning "
                          "rate to the old budget)")  # fmt: skip
    run.add_argument("--checkpoint-every", type=_int, metavar="K",
                     help="checkpoint every K iterations (default: after every 10%% of the iterations, at "
                          "least 30 s apart, so a short run saves only at its end); always at the end "
                          "and on Ctrl-C")  # fmt: skip
    run.add_argument("--checkpoint-minutes", type=_number, metavar="M",
                     help="also checkpoint once M minutes of training passed since the latest checkpoint "
                          "(default 5; 0: never by time)")  # fmt: skip
    run.add_argument("--eval-episodes", type=_int, metavar="N", help="evaluate the final policies on N episodes")
    run.add_argument("--eval-every", type=_int, metavar="K",
                     help="also evaluate every K iterations (needs --eval-episodes; written to eval.csv)")  # fmt: skip
    run.add_argument("--video-every", type=_int, metavar="K", help="every K iterations, videos/iteration_K.gif: "
                     "python -m jaxppo.render of that checkpoint (at most 1000 steps; to TensorBoard, W&B if on)")
    run.add_argument("--tensorboard", action="store_true",
                     help="write TensorBoard logs, one run per (grid point, seed) "
                          "(pip install jaxppo[tensorboard])")  # fmt: skip
    run.add_argument("--wandb", action="store_true",
                     help="log to Weights & Biases, one run per grid point (pip install jaxppo[wandb])")  # fmt: skip
    run.add_argument("--deterministic-eval", action=argparse.BooleanOptionalAction,
                     help="evaluate with the policy's mode (default) or --no-deterministic-eval to sample")  # fmt: skip
    run.add_argument("--stochastic-eval", dest="deterministic_eval", action="store_false", help="sample actions")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument("--seed-chunk", type=_int, metavar="M",
                     help="train seeds in sequential chunks of M (bounds memory; same results)")  # fmt: skip
    run.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                     help="do not use the on-disk compilation cache "
                          "($JAXPPO_CACHE_DIR or ~/.cache/jaxppo/xla)")  # fmt: skip
    run.add_argument("--host-devices", type=_int, metavar="N",
                     help="XLA:CPU devices to shard seeds over (default: one per CPU core)")  # fmt: skip
    _add_pbt_flags(p)
    hosts = p.add_argument_group("several processes or hosts (jax.distributed; run the same command on each)")
    hosts.add_argument("--coordinator-address", metavar="HOST:PORT",
                       help="address of process 0, which every process joins")  # fmt: skip
    hosts.add_argument("--num-processes", type=_int, metavar="N", help="how many processes share the run")
    hosts.add_argument("--process-id", type=_int, metavar="K", help="this process's index, 0 .. N-1")
    _add_ppo_flags(p)
    return p


def _add_pbt_flags(p: argparse.ArgumentParser) -> None:
    """The flags of population-based training (``jaxppo.pbt``)."""
    pbt = p.add_argument_group("population-based training (the seeds of each grid point are a population)")
    pbt.add_argument("--pbt", action="store_true",
                     help="every --pbt-interval iterations, the weakest members copy the learner of a stronger one "
                          "and explore their --pbt-search hyperparameters (one process only)")  # fmt: skip
    pbt.add_argument("--pbt-interval", type=_int, metavar="K",
                     help="iterations between exploits (default 10)")  # fmt: skip
    pbt.add_argument("--pbt-quantile", type=_number, metavar="Q",
                     help="the bottom Q of each population, ranked by the mean return of the episodes since the "
                          "last exploit, copy a member of the top Q (default 0.25; at most 0.5)")  # fmt: skip
    pbt.add_argument("--pbt-search", action="append", metavar="NAME=LOW:HIGH[:log]",
                     help="the range a PPOHParams field explores (repeatable): a member's value is multiplied "
                          "by 0.8 or 1.25, or drawn again from the range with probability 0.25, then clipped; "
                          "it starts at its flag's, config file's or grid's value, else at a draw in the range")  # fmt: skip


def _add_ppo_flags(p: argparse.ArgumentParser) -> None:
    """A flag per ``PPOConfig`` and ``PPOHParams`` field."""
    ppo = p.add_argument_group("PPOConfig (static; CleanRL names)")
    ppo.add_argument("--total-timesteps", dest="total_timesteps", type=_steps, metavar="N",
                     help="env steps per seed, e.g. 5e5 (with --resume: a larger N trains the run longer)")  # fmt: skip
    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "adv_std_ddof", "recurrent_size"):
        ppo.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_int)
    bool_help = {"shared_trunk": "one encoder + MLP trunk with a policy and a value head (vf_coef weighs the "
                                 "value loss on it), or separate actor and critic networks (default)"}  # fmt: skip
    for name in BOOL_FIELDS:
        ppo.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction,
                         help=bool_help.get(name))  # fmt: skip
    ppo.add_argument("--target-kl", dest="target_kl", type=_optional_number, help="early-stop KL, or none")
    ppo.add_argument("--truncation", choices=["bootstrap", "terminate"])
    ppo.add_argument("--hidden-sizes", dest="hidden_sizes", type=_int_list, metavar="64,64")
    ppo.add_argument("--activation")
    ppo.add_argument("--recurrent", choices=["gru", "none"],
                     help="a GRU core between the encoder and the MLP, its state reset at episode starts (default none)")  # fmt: skip
    ppo.add_argument("--encoder", choices=["auto", "mlp", "cnn"],
                     help="observation encoder: auto (default) convolves [H, W, C] leaves of at least 5x5 and "
                          "flattens the others; mlp flattens all; cnn convolves every [H, W, C] leaf")  # fmt: skip
    ppo.add_argument("--cnn-channels", dest="cnn_channels", type=_int_list, metavar="16,32",
                     help="filters per convolution layer (default 16)")  # fmt: skip
    ppo.add_argument("--cnn-kernels", dest="cnn_kernels", type=_int_list, metavar="3,3",
                     help="square kernel size per convolution layer (default 3)")  # fmt: skip
    ppo.add_argument("--cnn-strides", dest="cnn_strides", type=_int_list, metavar="1,1",
                     help="stride per convolution layer (default 1)")  # fmt: skip
    ppo.add_argument("--obs-clip", dest="obs_clip", type=_number)
    ppo.add_argument("--reward-clip", dest="reward_clip", type=_number)
    hp = p.add_argument_group("PPOHParams (traced; sweepable with --grid)")
    for name in HPARAM_FIELDS:
        hp.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_number)



# ------------------------------------------------------------ the flag reference (docs/cli.md)
FLAGS_BEGIN, FLAGS_END = "<!-- generated: flags -->", "<!-- /generated -->"
_FIELD_GROUPS = {"PPOConfig": "PPOConfig", "PPOHParams": "PPOHParams"}


def _flag_value(action: argparse.Action) -> str:
    """What a flag takes: nothing for a switch, its choices, or its metavar (the dest, upper-cased, by default)."""
    if action.nargs == 0:
        return ""
    if action.choices:
        return " \\| ".join(f"`{choice}`" for choice in action.choices)
    named = {_int: "INT", _number: "NUMBER", _optional_number: "NUMBER or none", _steps: "N"}
    return f"`{action.metavar or named.get(action.type) or action.dest.upper()}`"


def _flag_help(action: argparse.Action, group: str) -> str:
    """The flag's help text as ``--help`` prints it (``%%`` expanded); a field's flag names its field."""
    text = ""
    if action.help:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        text = action.help % {**params, "prog": PROG}
    field = next((cls for key, cls in _FIELD_GROUPS.items() if group.startswith(key)), None)
    if field:
        text = f"`{field}.{action.dest}`" + (f": {text}" if text else "")
    if "append" in type(action).__name__.lower():
        text += " (repeatable)" if "repeatable" not in text else ""
    return text.replace("|", "\\|")


def flag_reference() -> str:
    """Every flag of ``build_parser()`` as Markdown: a table per argparse group (flags, value, help)."""
    parser = build_parser()
    parts = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and a.help is not argparse.SUPPRESS]
        actions = [a for a in actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        parts += [f"### {group.title}", "", "| flag | value | what it does |", "| --- | --- | --- |"]
        for action in actions:
            flags = ", ".join(f"`{flag}`" for flag in action.option_strings)
            parts.append(f"| {flags} | {_flag_value(action)} | {_flag_help(action, group.title)} |")
        parts.append("")
    return "\n".join(parts)


def write_flag_reference(path: str | Path = "docs/cli.md") -> None:
    """Replace the block between ``FLAGS_BEGIN`` and ``FLAGS_END`` in ``path`` with ``flag_reference()``:
    ``python -c "from jaxppo.run import write_flag_reference; write_flag_reference()"``."""
    path = Path(path)
    text = path.read_text()
    head, found, rest = text.partition(FLAGS_BEGIN)
    _, found_end, tail = rest.partition(FLAGS_END)
    if not (found and found_end):
        raise ValueError(f"{path} has no {FLAGS_BEGIN} ... {FLAGS_END} block")
    path.write_text(f"{head}{FLAGS_BEGIN}\n{flag_reference()}{FLAGS_END}{tail}")


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
    try:
        return _main(argv)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except _Interrupted as interrupted:  # outside the training loop (which saves and exits by itself)
        print(f"{PROG}: interrupted; {what_survives(interrupted.run_dir)}", file=sys.stderr)
        return 130
    except _WriteFailed as failed:
        print(f"{PROG}: error: {failed.what}; {what_survives(failed.run_dir)}", file=sys.stderr)
        return WRITE_FAILED
    except KeyboardInterrupt:  # before a run directory was chosen
        print(f"{PROG}: interrupted before anything was written", file=sys.stderr)
        return 130


WRITE_FAILED = 1  # the exit status when the run directory could not be written (a full disk, ...)


class _Interrupted(Exception):
    """Ctrl-C outside the training loop, once the run directory is known."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


class _WriteFailed(Exception):
    """A file of the run (a checkpoint, the logs, the outputs) could not be written."""

    def __init__(self, run_dir: Path, error: BaseException):
        if isinstance(error, OSError):
            self.what = f"could not write {error.filename or f'to {run_dir}'} ({error.strerror or error})"
        else:
            self.what = str(error)
        super().__init__(self.what)
        self.run_dir = run_dir


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


class _OutFlags(NamedTuple):
    out: str | None
    overwrite: bool
    resume: str | None


class _Target(NamedTuple):
    """The run to train: its settings, its trainer (whose config is the resolved one: every count
    and budget is read from it), its directory, and whether it continues from a checkpoint."""

    settings: RunSettings
    trainer: Any
    run_dir: Path
    resume: bool
    overwrite: bool
    extended: bool = False  # a resumed run trained to a larger --total-timesteps


class _Start(NamedTuple):
    trainer: Any
    states: Any  # TrainState [G, S] of this process's seeds from the checkpoint; None for a new run
    metrics: dict | None


def _main(argv) -> int:
    args = vars(build_parser().parse_args(argv))
    _start_jax(args)
    flags = _OutFlags(args.pop("out", None), args.pop("overwrite", False), args.pop("resume", None))
    options = _run_options(args)
    file = [Source(f"config file {args['config']}", read_config_file(args["config"]))] if "config" in args else []
    target = _resumed_run(flags, file, args) if flags.resume else _new_run(flags, file, args)
    from jaxppo.rundir import SaveFailed

    try:
        with contextlib.ExitStack() as locks:  # the run directory is this process's while it trains
            start = _prepare(target, options, locks)
            if start is None:  # a finished run: nothing to train, nothing rewritten
                return 0
            from jaxppo.cli.loop import train_run

            return train_run(start.trainer, target.settings, target.run_dir, start.states, start.metrics, options)
    except KeyboardInterrupt:
        raise _Interrupted(target.run_dir) from None
    except (OSError, SaveFailed) as error:  # a full disk, a directory made unwritable, ...
        raise _WriteFailed(target.run_dir, error) from None


def _start_jax(args: dict) -> None:
    """Host devices, the Threefry lowering, the process group and the compilation cache: all of
    them before anything starts jax's backends."""
    host_devices = args.pop("host_devices", None)
    if host_devices is not None and host_devices <= 0:
        raise ConfigError(f"--host-devices must be a positive integer, got {host_devices}")
    from jaxppo.xla_cpu import unroll_threefry_on_cpu, use_host_devices

    use_host_devices(host_devices)  # before anything starts jax's backends
    unroll_threefry_on_cpu()  # the same random bits, compiled faster on CPU (docs/performance.md)
    _join_processes(
        args.pop("coordinator_address", None), args.pop("num_processes", None), args.pop("process_id", None)
    )
    if args.pop("compile_cache", True):
        enable_compile_cache()


def _run_options(args: dict) -> RunOptions:
    options = RunOptions(
        checkpoint_every=args.pop("checkpoint_every", None),
        checkpoint_minutes=args.pop("checkpoint_minutes", None),
        eval_every=args.pop("eval_every", None),
        video_every=args.pop("video_every", None),
        show_progress=args.pop("progress", True),
        tensorboard=args.pop("tensorboard", False),
        wandb=args.pop("wandb", False),
    )
    every = {"--checkpoint-every": options.checkpoint_every, "--eval-every": options.eval_every,
             "--video-every": options.video_every}  # fmt: skip
    for flag, value in every.items():
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be a positive integer, got {value}")
    if options.checkpoint_minutes is not None and not options.checkpoint_minutes >= 0:
        raise ConfigError(f"--checkpoint-minutes must be zero or positive, got {options.checkpoint_minutes:g}")
    if options.video_every:
        from jaxppo.frames import headless_mujoco

        headless_mujoco()  # before a brax or Playground env imports mujoco
    if options.tensorboard:
        _require("tensorboardX", "--tensorboard", "tensorboard")
    if options.wandb:
        _require("wandb", "--wandb", "wandb")
    return options


def _resumed_run(flags: _OutFlags, file: list[Source], args: dict) -> _Target:
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
    trainer = _make_trainer(settings)
    # Budgets compare resolved: a run started without --total-timesteps has None stored.
    stored_config = stored.config.resolve(trainer.spec.action_kind)
    extended = _extension(flags.resume, stored_config, trainer.config)
    return _Target(settings, trainer, run_dir, resume=True, overwrite=False, extended=extended)


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


def _new_run(flags: _OutFlags, file: list[Source], args: dict) -> _Target:
    settings = settings_from_args(args, sources=file)
    trainer = _make_trainer(settings)
    env_name = settings.config.env_id.replace("/", "_")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(flags.out) if flags.out else Path("runs") / f"{env_name}__{stamp}"
    return _Target(settings, trainer, run_dir, resume=False, overwrite=flags.overwrite)


def _make_trainer(settings: RunSettings):
    """The run's trainer: validates env and config before anything is written."""
    from jaxppo.factories import run_trainer

    trainer = run_trainer(settings)
    settings.grid_hparams()  # validates the grid
    return trainer


def _prepare(target: _Target, options: RunOptions, locks: contextlib.ExitStack) -> _Start | None:
    """The checkpoint to continue from, or the new run's directory with its config.json; ``None``
    when the run to resume is finished (it says so). The directories this process writes are
    locked for it (``locks`` releases them)."""
    import jax

    from jaxppo import parallel, rundir

    settings, run_dir, trainer = target.settings, target.run_dir, target.trainer
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
        return _resume_start(target, trainer, seed_range)
    # Process 0 prepares the run directory; the others then add their process<K>/ parts.
    if jax.process_index() == 0:
        locks.callback(rundir.prepare_out_dir(run_dir, target.overwrite).release)
        rundir.write_config(run_dir, settings, trainer)
    parallel.barrier("run-dir-ready", timeout_s=600)  # process 0 only checks and writes config.json
    if jax.process_count() > 1:
        locks.callback(rundir.prepare_out_dir(rundir.part_dir(run_dir), target.overwrite).release)
        rundir.write_config(rundir.part_dir(run_dir), settings, trainer, seed_range)
    return _Start(trainer, None, None)


def _resume_start(target: _Target, trainer, seed_range: range) -> _Start | None:
    """The checkpoint to continue from (from iteration 0 when there is none); ``None`` when the
    run is finished (it says so). An extended run's config.json records its new budget."""
    import jax

    from jaxppo import loading, rundir

    settings, run_dir = target.settings, target.run_dir
    try:
        checkpoint = rundir.restore_checkpoint(
            rundir.part_dir(run_dir),
            loading.abstract_states(trainer, settings, seed_range),
            loading.metric_names(trainer, settings),
        )
    except rundir.NoCheckpoint as missing:
        # Killed before its first checkpoint: its settings are all it has, and all it needs.
        print(f"{missing}: training {run_dir} again from iteration 0", file=sys.stderr)
        checkpoint = rundir.Checkpoint(0, None, None)
    config = trainer.config  # resolved
    total = config.num_iterations
    if checkpoint.iteration >= total and (run_dir / rundir.SUMMARY_FILE).is_file():
        longer = "" if config.anneal_lr else (
            f"; to train it longer: --resume {run_dir} --total-timesteps N, N above {config.env_steps}")
        print(f"{run_dir} is finished: all {total} iterations trained, outputs in place; nothing changed{longer}",
              file=sys.stderr)  # fmt: skip
        return None
    if target.extended:
        if jax.process_index() == 0:
            rundir.record_extension(run_dir, settings, trainer, checkpoint.iteration)
        if jax.process_count() > 1:
            rundir.record_extension(rundir.part_dir(run_dir), settings, trainer, checkpoint.iteration)
    return _Start(trainer, checkpoint.states, checkpoint.metrics)


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
    # After a failed write too: orbax's worker threads may wait on a save that will never finish.
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
