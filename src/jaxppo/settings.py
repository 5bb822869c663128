"""A run's settings: what decides its numbers (``RunSettings``) and what only changes how it
reports and saves (``RunOptions``), and the merge of a stored run or config file with flags.

Settings come as strings from flags and as TOML/YAML values from files; ``settings_from_args``
coerces each to its field's type and validates the whole, so bad input is a one-line
``ConfigError`` before anything trains. Needs only ``jaxppo.config``: every layer of the
command line reads these types.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from jaxppo.config import HPARAM_NAMES, ConfigError, PPOConfig, PPOHParams, hparam_grid

if TYPE_CHECKING:
    import jax

CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}
HPARAM_FIELDS = HPARAM_NAMES
INT_FIELDS = ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "adv_std_ddof",
              "recurrent_size")
BOOL_FIELDS = ("anneal_lr", "norm_adv", "clip_vloss", "normalize_observations", "normalize_rewards", "shared_trunk")
SIZES_FIELDS = ("hidden_sizes", "cnn_channels", "cnn_kernels", "cnn_strides")  # tuples of ints
RUN_KEYS = ("seeds", "seed", "eval_episodes", "deterministic_eval", "grid", "env_kwarg", "seed_chunk", "network",
            "optimizer", "pbt", "pbt_interval", "pbt_quantile", "pbt_search")


class Grid(NamedTuple):
    """The grid of a run: ``hparams`` with a leading ``[G]`` axis, and each point's swept values."""

    hparams: PPOHParams
    points: list[dict]


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
    network: str | None = None  # MODULE:FACTORY of a user's network (jaxppo.factories); None: built-in
    optimizer: str | None = None  # MODULE:FACTORY of a user's optimizer; None: CleanRL's
    pbt: bool = False  # the seeds of each grid point train as a population (jaxppo.pbt)
    pbt_interval: int | None = None  # None: pbt.DEFAULT_INTERVAL
    pbt_quantile: float | None = None  # None: pbt.DEFAULT_QUANTILE
    pbt_search: tuple[str, ...] = ()  # NAME=LOW:HIGH[:log] ranges

    def to_json(self) -> dict:
        config = dataclasses.asdict(self.config)
        config["env_kwargs"] = dict(self.config.env_kwargs)
        for name in SIZES_FIELDS:
            config[name] = list(getattr(self.config, name))
        return {
            "config": config,
            "hparams": self.hparams,
            "grid": self.grid,
            "seeds": self.seeds,
            "seed": self.seed,
            "eval_episodes": self.eval_episodes,
            "deterministic_eval": self.deterministic_eval,
            "seed_chunk": self.seed_chunk,
            "network": self.network,
            "optimizer": self.optimizer,
            "pbt": self.pbt,
            "pbt_interval": self.pbt_interval,
            "pbt_quantile": self.pbt_quantile,
            "pbt_search": list(self.pbt_search),
        }

    @classmethod
    def from_json(cls, data: dict) -> RunSettings:
        config = dict(data["config"])
        for name in SIZES_FIELDS:
            config[name] = tuple(config[name])
        return cls(
            config=PPOConfig(**config),
            hparams=dict(data["hparams"]),
            grid={k: list(v) for k, v in data["grid"].items()},
            seeds=int(data["seeds"]),
            seed=int(data["seed"]),
            eval_episodes=int(data.get("eval_episodes", 0)),
            deterministic_eval=bool(data.get("deterministic_eval", True)),
            seed_chunk=data.get("seed_chunk"),
            network=data.get("network"),
            optimizer=data.get("optimizer"),
            pbt=bool(data.get("pbt", False)),
            pbt_interval=data.get("pbt_interval"),
            pbt_quantile=data.get("pbt_quantile"),
            pbt_search=tuple(data.get("pbt_search", ())),
        )

    def differences(self, other: RunSettings) -> list[str]:
        mine, theirs = _flatten(self.to_json()), _flatten(other.to_json())
        return [
            f"{key}: {mine.get(key)!r} in the run, {theirs.get(key)!r} now"
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        ]

    def replace_total_timesteps(self, total_timesteps: int) -> RunSettings:
        return dataclasses.replace(self, config=self.config.replace(total_timesteps=total_timesteps))

    def grid_hparams(self) -> Grid:
        return Grid(*hparam_grid(PPOHParams(**self.hparams), **self.grid))

    def pbt_config(self):
        """The run's ``jaxppo.PBTConfig``, or ``None`` without ``--pbt``."""
        from jaxppo.pbt import pbt_from_settings  # jaxppo.pbt needs jax; the command line reads settings first

        return pbt_from_settings(self.pbt_interval, self.pbt_quantile, self.pbt_search) if self.pbt else None


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "env_kwargs":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_keys(settings: RunSettings, seed_range: range | None = None) -> jax.Array:
    """Seed ``s`` gets the same key at every grid point (common random numbers), and the same
    key whichever process trains it (``seed_range``: those seeds only)."""
    import jax  # the command line reads settings before it picks jax's devices

    keys = jax.random.split(jax.random.key(settings.seed), settings.seeds)
    return keys if seed_range is None else keys[seed_range.start : seed_range.stop]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run reports and saves; none of these change the training numbers."""

    checkpoint_every: int | None = None
    checkpoint_minutes: float | None = None  # None: the default (jaxppo.cli.loop.CheckpointCadence)
    eval_every: int | None = None
    video_every: int | None = None  # a GIF of an episode every K iterations (jaxppo.video)
    show_progress: bool = True
    tensorboard: bool = False
    wandb: bool = False


# ------------------------------------------------------------ config files
def read_config_file(path: str) -> dict:
    """A TOML or YAML file's settings, with ``-`` in names read as ``_``; unknown names are errors."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist or is not a file; check the --config path")
    data = _parse_config_text(file, path)
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


def _parse_config_text(file: Path, path: str):
    try:
        text = file.read_text()
        if file.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib

            return tomllib.loads(text)
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        raise ConfigError(f"config file {path} must end in .toml, .yaml or .yml")
    except ConfigError:
        raise
    except Exception as error:  # tomllib/yaml/OS errors all mean "unreadable"
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"config file {path} is unreadable or malformed: {first_line}") from None


# ------------------------------------------------------------ merge and coercion
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
    **{name: str for name in ("env_id", "truncation", "activation", "encoder", "recurrent")},
    **{name: tuple for name in SIZES_FIELDS},
    "seeds": int, "seed": int, "eval_episodes": int, "seed_chunk": int, "deterministic_eval": bool,
    "network": str, "optimizer": str, "pbt": bool, "pbt_interval": int, "pbt_quantile": float, "pbt_search": list,
}  # fmt: skip
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               tuple: "a list of integers such as [64, 64]",
               list: "a list of strings such as ['learning_rate=1e-5:1e-3:log']"}  # fmt: skip


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
        if kind is list:  # strings, one per entry (a single string is one entry)
            entries = [value] if isinstance(value, str) else list(value)
            if not all(isinstance(v, str) for v in entries):
                raise TypeError
            return tuple(entries)
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError
        return tuple(_coerce("seeds", v) for v in value)  # layer sizes: integers
    except (TypeError, ValueError, ConfigError):
        raise ConfigError(f"setting {name} must be {_KIND_NAMES[kind]}, got {value!r}") from None


class Source(NamedTuple):
    """One layer of settings and how a message names it: a stored run, a config file, the flags."""

    label: str  # "flags", or where the values come from: "config file x.toml", "the run in DIR"
    values: dict


def settings_from_args(args: dict, base: dict | None = None, *, sources: list[Source] | None = None) -> RunSettings:
    """Merge layers, later ones overriding earlier ones, into ``RunSettings``: ``sources`` (a stored
    run, a config file), or ``base``, then the explicit flags ``args``.

    A grid merges field by field. A hyperparameter both fixed and swept (in any two layers, or
    in one) is a ``ConfigError``: one of the two would be silently ignored.
    """
    layers = list(sources or ([Source("the stored run", base)] if base else []))
    layers.append(Source("flags", {k: v for k, v in args.items() if k != "config"}))
    merged, grids = {}, []
    for layer in layers:
        values = {k: v for k, v in layer.values.items() if k != "grid"}
        merged.update(values)
        if layer.values.get("grid") is not None:
            grids.append((layer, _parse_layer_grid(layer.values["grid"])))
    grid = {name: values for _, layer_grid in grids for name, values in layer_grid.items()}
    _refuse_fixed_and_swept(layers, grids, grid)
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
    settings = RunSettings(
        config=config,
        hparams=hparams,
        grid=grid,
        seeds=merged.get("seeds", 8),
        seed=merged.get("seed", 0),
        eval_episodes=merged.get("eval_episodes", 0),
        deterministic_eval=merged.get("deterministic_eval", True),
        seed_chunk=merged.get("seed_chunk"),
        network=merged.get("network"),
        optimizer=merged.get("optimizer"),
        pbt=bool(merged.get("pbt") or False),
        pbt_interval=merged.get("pbt_interval"),
        pbt_quantile=merged.get("pbt_quantile"),
        pbt_search=tuple(merged.get("pbt_search") or ()),
    )
    _check_pbt(settings)
    return settings


def _check_pbt(settings: RunSettings) -> None:
    """``ConfigError`` for population settings that cannot train: set without ``--pbt``, bad
    ranges or quantile, one seed, or a searched hyperparameter set outside its range."""
    given = [flag for flag, value in (("--pbt-interval", settings.pbt_interval), ("--pbt-quantile",
             settings.pbt_quantile), ("--pbt-search", settings.pbt_search or None)) if value is not None]  # fmt: skip
    if not settings.pbt:
        if given:
            raise ConfigError(f"{', '.join(given)} configure population-based training; add --pbt")
        return
    pbt = settings.pbt_config()
    pbt.validate(settings.seeds)
    pbt.check_start(PPOHParams(**settings.hparams))
    for name, values in settings.grid.items():
        pbt.check_start(PPOHParams(**{name: values}))


def _parse_layer_grid(grid) -> dict:
    if not isinstance(grid, (list, dict)):
        raise ConfigError(f"grid must be a table of name = [values] (or --grid name=v1,v2), got {grid!r}")
    return _parse_grid(grid if isinstance(grid, list) else None, grid if isinstance(grid, dict) else None)


def _refuse_fixed_and_swept(layers: list[Source], grids: list[tuple[Source, dict]], grid: dict) -> None:
    """A ``ConfigError`` naming both settings when a swept hyperparameter is also given one value."""
    for name in grid:
        fixed = [layer for layer in layers if layer.values.get(name) is not None]
        swept = [layer for layer, layer_grid in grids if name in layer_grid]
        if not fixed:
            continue
        fixed_by, swept_by = fixed[-1], swept[-1]
        value = fixed_by.values[name]
        values = ",".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in grid[name])
        if fixed_by.label == "flags":
            fixing = f"--{name.replace('_', '-')} {value}"
        else:
            fixing = f"{name} = {value} in {fixed_by.label}"
        sweeping = f"--grid {name}={values}" if swept_by.label == "flags" else f"[grid] {name} in {swept_by.label}"
        raise ConfigError(f"{name} is both fixed ({fixing}) and swept ({sweeping}); "
                          f"give only one of the two")  # fmt: skip


def settings_as_args(settings: RunSettings) -> dict:
    """A stored run's settings as the ``base`` of ``settings_from_args`` (what resume merges flags into)."""
    data = settings.to_json()
    return {**data["config"], **data["hparams"], "grid": data["grid"], "seeds": data["seeds"], "seed": data["seed"],
            "eval_episodes": data["eval_episodes"], "deterministic_eval": data["deterministic_eval"],
            "seed_chunk": data["seed_chunk"], "network": data["network"], "optimizer": data["optimizer"],
            "pbt": data["pbt"], "pbt_interval": data["pbt_interval"], "pbt_quantile": data["pbt_quantile"],
            "pbt_search": data["pbt_search"]}  # fmt: skip
