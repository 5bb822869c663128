"""Command line: ``python -m jaxppo.run --env CartPole-v1 --seeds 64`` (also the ``jaxppo`` script).

All grid points x all seeds train in one compiled call. The loop runs in chunks of
iterations between host-side checkpoint saves; a chunked run equals an unchunked one.
Bad input gets a one-line error and exit status 2; Ctrl-C (or SIGTERM) finishes the
current chunk, saves a checkpoint and the logs so far, and exits 130 (143).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from jaxppo.config import ConfigError, PPOConfig, PPOHParams

PROG = "python -m jaxppo.run"
CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}
HPARAM_FIELDS = [f.name for f in dataclasses.fields(PPOHParams)]
INT_FIELDS = ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "adv_std_ddof")
BOOL_FIELDS = ("anneal_lr", "norm_adv", "clip_vloss", "normalize_observations", "normalize_rewards")
RUN_KEYS = ("seeds", "seed", "eval_episodes", "deterministic_eval", "grid", "env_kwarg", "seed_chunk")


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
    run.add_argument("--env", dest="env_id", help="gymnax env id (default CartPole-v1)")
    run.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="env constructor argument (repeatable)")
    run.add_argument("--seeds", type=_int, help="number of seeds trained together (default 8)")
    run.add_argument("--seed", type=_int, help="base random seed (default 0)")
    run.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                     help="sweep a PPOHParams field; several --grid give the Cartesian product")  # fmt: skip
    run.add_argument("--config", metavar="FILE", help="TOML or YAML file of settings; flags override it")
    run.add_argument("--out", metavar="DIR", help="run directory (default runs/<env>__<UTC timestamp>)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    run.add_argument("--checkpoint-every", type=_int, metavar="K", help="checkpoint every K iterations")
    run.add_argument("--eval-episodes", type=_int, metavar="N", help="evaluate the final policies on N episodes")
    run.add_argument("--eval-every", type=_int, metavar="K",
                     help="also evaluate every K iterations (needs --eval-episodes; written to eval.csv)")  # fmt: skip
    run.add_argument("--tensorboard", action="store_true",
                     help="write TensorBoard logs, one run per (grid point, seed) (pip install jaxppo[tensorboard])")  # fmt: skip
    run.add_argument("--wandb", action="store_true",
                     help="log to Weights & Biases, one run per grid point (pip install jaxppo[wandb])")  # fmt: skip
    run.add_argument("--deterministic-eval", action=argparse.BooleanOptionalAction,
                     help="evaluate with the policy's mode (default) or --no-deterministic-eval to sample")  # fmt: skip
    run.add_argument("--stochastic-eval", dest="deterministic_eval", action="store_false", help="sample actions")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument("--seed-chunk", type=_int, metavar="M",
                     help="train seeds in sequential chunks of M (bounds memory; same results)")  # fmt: skip
    run.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                     help="do not use the on-disk compilation cache ($JAXPPO_CACHE_DIR or ~/.cache/jaxppo/xla)")  # fmt: skip
    run.add_argument("--host-devices", type=_int, metavar="N",
                     help="XLA:CPU devices to shard seeds over (default: one per CPU core)")  # fmt: skip
    hosts = p.add_argument_group("several processes or hosts (jax.distributed; run the same command on each)")
    hosts.add_argument("--coordinator-address", metavar="HOST:PORT",
                       help="address of process 0, which every process joins")  # fmt: skip
    hosts.add_argument("--num-processes", type=_int, metavar="N", help="how many processes share the run")
    hosts.add_argument("--process-id", type=_int, metavar="K", help="this process's index, 0 .. N-1")
    ppo = p.add_argument_group("PPOConfig (static; CleanRL names)")
    for name in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "adv_std_ddof"):
        ppo.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_steps if name == "total_timesteps" else _int)
    for name in BOOL_FIELDS:
        ppo.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction)
    ppo.add_argument("--target-kl", dest="target_kl", type=_optional_number, help="early-stop KL, or none")
    ppo.add_argument("--truncation", choices=["bootstrap", "terminate"])
    ppo.add_argument("--hidden-sizes", dest="hidden_sizes", type=_int_list, metavar="64,64")
    ppo.add_argument("--activation")
    ppo.add_argument("--obs-clip", dest="obs_clip", type=_number)
    ppo.add_argument("--reward-clip", dest="reward_clip", type=_number)
    hp = p.add_argument_group("PPOHParams (traced; sweepable with --grid)")
    for name in HPARAM_FIELDS:
        hp.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_number)
    return p


# ------------------------------------------------------------ settings
def _read_config_file(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist or is not a file; check the --config path")
    try:
        text = file.read_text()
        if file.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path} must end in .toml, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as error:  # tomllib/yaml/OS errors all mean "unreadable"
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"config file {path} is unreadable or malformed: {first_line}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    known = set(CONFIG_FIELDS) | set(HPARAM_FIELDS) | set(RUN_KEYS) | {"env", "env_id", "env_kwargs"}
    normalised = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise ConfigError(
                f"config file {path}: unknown setting {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            )
        normalised["env_id" if name == "env" else name] = value
    return normalised


def _parse_grid(entries, from_file: dict | None) -> dict:
    grid = {}
    for name, values in (from_file or {}).items():
        values = values if isinstance(values, list) else [values]
        try:  # YAML reads 1e-3 as a string
            grid[str(name).replace("-", "_")] = [float(v) if isinstance(v, str) else v for v in values]
        except ValueError:
            raise ConfigError(f"grid {name} values must be numbers, got {values!r}") from None
    for entry in entries or []:
        if not isinstance(entry, str) or "=" not in entry:
            raise ConfigError(f"--grid {entry!r} is malformed; write --grid name=v1,v2 (e.g. learning_rate=1e-4,3e-4)")
        name, _, text = entry.partition("=")
        name = name.strip().replace("-", "_")
        if not text.strip():
            raise ConfigError(f"--grid {name} has no values; write --grid {name}=v1,v2")
        try:
            grid[name] = [float(v) for v in text.split(",")]
        except ValueError:
            raise ConfigError(f"--grid {name} values must be numbers, got {text!r}") from None
    for name, values in grid.items():
        if name not in HPARAM_FIELDS:
            close = difflib.get_close_matches(name, HPARAM_FIELDS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"choose from {', '.join(HPARAM_FIELDS)}"
            raise ConfigError(f"--grid field {name!r} is not a PPOHParams field; {hint}")
        if not values:
            raise ConfigError(f"--grid {name} has no values; give at least one")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"--grid {name} values must be numbers, got {values!r}")
    return grid


def _parse_env_kwargs(entries, from_file) -> dict:
    if from_file is not None and not isinstance(from_file, dict):
        raise ConfigError(f"env_kwargs must be a table of name = value, got {from_file!r}")
    kwargs = dict(from_file or {})
    for entry in entries or []:
        key, sep, text = entry.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-kwarg {entry!r} is malformed; write --env-kwarg name=value")
        try:
            kwargs[key] = json.loads(text)
        except ValueError:
            kwargs[key] = text
    return kwargs


_KINDS = {
    **{name: int for name in INT_FIELDS},
    **{name: bool for name in BOOL_FIELDS},
    **{name: float for name in ("target_kl", "obs_clip", "reward_clip", *HPARAM_FIELDS)},
    **{name: str for name in ("env_id", "truncation", "activation")},
    "hidden_sizes": tuple,
    "seeds": int, "seed": int, "eval_episodes": int, "seed_chunk": int, "deterministic_eval": bool,
}  # fmt: skip
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               tuple: "a list of integers such as [64, 64]"}  # fmt: skip


def _coerce(name: str, value):
    """A setting from a flag or a file, as its field's type; a wrong type is a ConfigError."""
    kind = _KINDS.get(name)
    if value is None or kind is None:
        return value
    try:
        if kind is bool or isinstance(value, bool):
            if isinstance(value, bool) and kind is bool:
                return value
            raise TypeError
        if kind is int:
            number = float(value)  # accepts 5e5 and "1e5" as YAML leaves them
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError
        return tuple(_coerce("seeds", v) for v in value)  # hidden sizes: integers
    except (TypeError, ValueError, ConfigError):
        raise ConfigError(f"setting {name} must be {_KIND_NAMES[kind]}, got {value!r}") from None


def settings_from_args(args: dict, base: dict | None = None):
    """Merge (stored run or config file) < explicit flags into ``RunSettings``."""
    from jaxppo.rundir import RunSettings

    merged = {**(base or {}), **{k: v for k, v in args.items() if k != "config"}}
    merged = {k: _coerce(k, v) for k, v in merged.items()}
    config_values = {k: merged[k] for k in CONFIG_FIELDS if k in merged and k != "env_kwargs"}
    config_values["env_kwargs"] = _parse_env_kwargs(merged.get("env_kwarg"), merged.get("env_kwargs"))
    config = PPOConfig(**config_values)
    hparams = {name: merged[name] for name in HPARAM_FIELDS if merged.get(name) is not None}
    PPOHParams(**hparams).validate()
    for name, low in (("seeds", 1), ("seed_chunk", 1), ("eval_episodes", 0)):
        if merged.get(name) is not None and merged[name] < low:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(
                f"{flag} must be {'a positive integer' if low else 'zero or positive'}, got {merged[name]}"
            )
    grid = merged.get("grid")
    if grid is not None and not isinstance(grid, (list, dict)):
        raise ConfigError(f"grid must be a table of name = [values] (or --grid name=v1,v2), got {grid!r}")
    return RunSettings(
        config=config,
        hparams=hparams,
        grid=_parse_grid(grid if isinstance(grid, list) else None, grid if isinstance(grid, dict) else None),
        seeds=merged.get("seeds", 8),
        seed=merged.get("seed", 0),
        eval_episodes=merged.get("eval_episodes", 0),
        deterministic_eval=merged.get("deterministic_eval", True),
        seed_chunk=merged.get("seed_chunk"),
    )


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


# ------------------------------------------------------------ output dir
def prepare_out_dir(out: Path, overwrite: bool) -> None:
    from jaxppo.rundir import CONFIG_FILE

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            what = "holds a run" if (out / CONFIG_FILE).exists() else "is not empty"
            raise ConfigError(f"--out {out} {what}; pass --resume {out} to continue it, --overwrite, or another --out")
        if not (out / CONFIG_FILE).exists():
            raise ConfigError(f"--out {out} is not empty and not a jaxppo run; refusing to --overwrite it")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--out {out} is not writable ({error.strerror}); choose another --out") from None


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
    except KeyboardInterrupt:  # outside the training loop (which saves and exits by itself)
        print(f"{PROG}: interrupted; the latest complete checkpoint (if any) is intact", file=sys.stderr)
        return 130


def _main(argv) -> int:
    args = vars(build_parser().parse_args(argv))
    host_devices = args.pop("host_devices", None)
    if host_devices is not None and host_devices <= 0:
        raise ConfigError(f"--host-devices must be a positive integer, got {host_devices}")
    from jaxppo.xla_cpu import unroll_threefry_on_cpu, use_host_devices

    use_host_devices(host_devices)  # before anything starts jax's backends
    unroll_threefry_on_cpu()  # the same random bits, about 3 s less compiling on CPU
    _join_processes(
        args.pop("coordinator_address", None), args.pop("num_processes", None), args.pop("process_id", None)
    )
    if args.pop("compile_cache", True):
        enable_compile_cache()
    out_arg, overwrite, resume = args.pop("out", None), args.pop("overwrite", False), args.pop("resume", None)
    from jaxppo.driver import RunOptions

    options = RunOptions(
        checkpoint_every=args.pop("checkpoint_every", None),
        eval_every=args.pop("eval_every", None),
        show_progress=args.pop("progress", True),
        tensorboard=args.pop("tensorboard", False),
        wandb=args.pop("wandb", False),
    )
    for flag, value in (("--checkpoint-every", options.checkpoint_every), ("--eval-every", options.eval_every)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be a positive integer, got {value}")
    if options.tensorboard:
        _require("tensorboardX", "--tensorboard", "tensorboard")
    if options.wandb:
        _require("wandb", "--wandb", "wandb")
    file_settings = _read_config_file(args["config"]) if "config" in args else {}

    import jax

    from jaxppo import parallel, rundir

    if resume:
        run_dir = Path(resume)
        stored = rundir.read_settings(run_dir)
        processes = rundir.stored_process_count(run_dir)
        if processes != jax.process_count():
            raise ConfigError(f"--resume {resume} was trained by {processes} process(es), this is {jax.process_count()}; "
                              f"resume it with --num-processes {processes} (one per part)")  # fmt: skip
        if out_arg and Path(out_arg).resolve() != run_dir.resolve():
            raise ConfigError(f"--out {out_arg} differs from --resume {resume}; a resumed run continues in place")
        settings = settings_from_args({**file_settings, **args}, base=_settings_as_args(stored))
        differences = stored.differences(settings)
        if differences:
            raise ConfigError(f"--resume {resume} with different settings: {'; '.join(differences)}")
    else:
        settings = settings_from_args({**file_settings, **args})
        env_name = settings.config.env_id.replace("/", "_")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        run_dir = Path(out_arg) if out_arg else Path("runs") / f"{env_name}__{stamp}"

    from jaxppo.train import make_trainer

    if options.eval_every and not settings.eval_episodes:
        raise ConfigError("--eval-every needs --eval-episodes N (how many episodes per evaluation)")
    trainer = make_trainer(settings.config)  # validates env and config before anything is written
    settings.grid_hparams()  # validates the grid
    seed_range = parallel.process_seed_range(settings.seeds)  # this process's seeds (all, for one process)
    if resume:
        _, states, metrics = rundir.restore_checkpoint(
            rundir.part_dir(run_dir),
            rundir.abstract_states(trainer, settings, seed_range),
            rundir.metric_names(trainer, settings),
        )
    else:
        # Process 0 prepares the run directory; the others then add their process<K>/ parts.
        if jax.process_index() == 0:
            prepare_out_dir(run_dir, overwrite)
            rundir.write_config(run_dir, settings, trainer)
        parallel.barrier("run-dir-ready", timeout_s=600)  # process 0 only checks and writes config.json
        if jax.process_count() > 1:
            prepare_out_dir(rundir.part_dir(run_dir), overwrite)
            rundir.write_config(rundir.part_dir(run_dir), settings, trainer, seed_range)
        states = metrics = None
    from jaxppo.driver import train_run

    return train_run(trainer, settings, run_dir, states, metrics, options)


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


def _settings_as_args(settings) -> dict:
    data = settings.to_json()
    return {**data["config"], **data["hparams"], "grid": data["grid"], "seeds": data["seeds"], "seed": data["seed"],
            "eval_episodes": data["eval_episodes"], "deterministic_eval": data["deterministic_eval"],
            "seed_chunk": data["seed_chunk"]}  # fmt: skip


def cli() -> None:
    """``python -m jaxppo.run`` and the ``jaxppo`` script: ``main``, then exit with its status.

    A successful single-process run ends with ``os._exit`` once its output is flushed: every
    file is written and closed by then, and the interpreter's teardown (XLA's client and thread
    pools, the loaded libraries) took about 0.9 s of a 30 s CartPole run. With several
    processes, ``jax.distributed`` must shut down together; wandb syncs at exit: both exit normally.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if code == 0 and _teardown_can_be_skipped():
        os._exit(0)
    sys.exit(code)


def _teardown_can_be_skipped() -> bool:
    if "jax" not in sys.modules or "wandb" in sys.modules:
        return False
    import jax
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized() and jax.process_count() == 1


if __name__ == "__main__":
    cli()
