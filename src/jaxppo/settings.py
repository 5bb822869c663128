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
import math
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from jaxppo.config import HPARAM_NAMES, ConfigError, PPOConfig, PPOHParams, hparam_grid
from jaxppo.declared import check_fields, coerce, declared, flag_name, setting
from jaxppo.declared import to_json as json_value

if TYPE_CHECKING:
    import jax

GROUPS = {"run": "run", "pbt": "population-based training (the seeds of each grid point are a population)",
          "hosts": "several processes or hosts (jax.distributed; run the same command on each)",
          "PPOConfig": "PPOConfig (static; CleanRL names)",
          "PPOHParams": "PPOHParams (traced; sweepable with --grid)"}  # fmt: skip


class Grid(NamedTuple):
    """The grid of a run: ``hparams`` with a leading ``[G]`` axis, and each point's swept values."""

    hparams: PPOHParams
    points: list[dict]


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's numbers; resume refuses any difference in these.

    ``config`` and ``hparams`` hold the ``PPOConfig`` and the explicitly given ``PPOHParams``
    values (None: the env's default); every other field is declared here, once, with its flag.
    """

    config: PPOConfig
    hparams: dict  # base hyperparameters given explicitly (None = env default)
    grid: dict = setting(dataclasses.MISSING, "table", "sweep a PPOHParams field; several --grid give the Cartesian "
                         "product; a swept field cannot also be given one value (by its flag or a config file)",
                         metavar="NAME=V1,V2,...", group="run")  # fmt: skip
    seeds: int = setting(8, "int", "number of seeds trained together (default 8)", low=1, group="run")
    seed: int = setting(0, "int", "base random seed (default 0)", group="run")
    eval_episodes: int = setting(0, "int", "evaluate the final policies on N episodes", low=0, metavar="N",
                                 group="run")  # fmt: skip
    deterministic_eval: bool = setting(True, "bool", "evaluate with the policy's mode (default) or "
                                       "--no-deterministic-eval to sample", group="run",
                                       off_flags=(("--stochastic-eval", "sample actions"),))  # fmt: skip
    # Seeds per lax.map chunk: bounds memory, and is part of the numerics' layout.
    seed_chunk: int | None = setting(None, "int", "train seeds in sequential chunks of M (bounds memory; same "
                                     "results)", low=1, metavar="M", group="run")  # fmt: skip
    network: str | None = setting(None, "str", "a network factory network(action_size=...) -> flax.linen.Module, "
                                  "imported from the current directory or the Python path, in place of the "
                                  "built-in networks", metavar="MODULE:FACTORY", group="run")  # fmt: skip
    optimizer: str | None = setting(None, "str", "an optimizer factory optimizer(hparams) -> "
                                    "optax.GradientTransformation, the learning rate included (default: CleanRL's "
                                    "clip + Adam)", metavar="MODULE:FACTORY", group="run")  # fmt: skip
    pbt: bool = setting(False, "bool", "every --pbt-interval iterations, the weakest members copy the learner of a "
                        "stronger one and explore their --pbt-search hyperparameters (one process only)",
                        switch="on", group="pbt")  # fmt: skip
    pbt_interval: int | None = setting(None, "int", "iterations between exploits (default 10)", low=1, metavar="K",
                                       group="pbt")  # fmt: skip
    pbt_quantile: float | None = setting(None, "float", "the bottom Q of each population, ranked by the mean return "
                                         "of the episodes since the last exploit, copy a member of the top Q "
                                         "(default 0.25; at most 0.5)", metavar="Q", group="pbt")  # fmt: skip
    pbt_search: tuple[str, ...] = setting((), "strings", "the range a PPOHParams field explores (repeatable): a "
                                          "member's value is multiplied by 0.8 or 1.25, or drawn again from the "
                                          "range with probability 0.25, then clipped; it starts at its flag's, "
                                          "config file's or grid's value, else at a draw in the range",
                                          metavar="NAME=LOW:HIGH[:log]", group="pbt")  # fmt: skip

    def __post_init__(self):
        check_fields(self, by_flag=True)

    def to_json(self) -> dict:
        """``config.json``'s settings: every field by its name, ``config`` as a table of its fields."""
        config = {name: json_value(declaration, getattr(self.config, name))
                  for name, (declaration, _) in declared(PPOConfig).items()}  # fmt: skip
        run = {name: json_value(declaration, getattr(self, name)) for name, (declaration, _) in declared(RunSettings).items()}
        return {"config": config, "hparams": dict(self.hparams), **run}

    @classmethod
    def from_json(cls, data: dict) -> RunSettings:
        """The settings ``to_json`` stored (a field it lacks takes its default)."""
        config = {name: _coerce(name, data["config"][name]) for name in declared(PPOConfig) if name in data["config"]}
        run = {name: _coerce(name, data[name]) for name in declared(RunSettings) if name in data}
        run["grid"] = {k: list(v) for k, v in data["grid"].items()}
        return cls(config=PPOConfig(**config), hparams=dict(data["hparams"]), **run)

    def differences(self, other: RunSettings) -> list[str]:
        mine, theirs = _flatten(self.to_json()), _flatten(other.to_json())
        return [
            f"{key}: {mine.get(key)!r} in the run, {theirs.get(key)!r} now"
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        ]

    def replace_total_timesteps(self, total_timesteps: int) -> RunSettings:
        return dataclasses.replace(self, config=self.config.replace(total_timesteps=total_timesteps))

    @property
    def grid_size(self) -> int:
        """How many grid points the run trains (1 without a grid)."""
        return math.prod(len(values) for values in self.grid.values())

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

    checkpoint_every: int | None = setting(None, "int", "checkpoint every K iterations (default: after every 10%% "
                                           "of the iterations, at least 30 s apart, so a short run saves only at "
                                           "its end); always at the end and on Ctrl-C", low=1, metavar="K",
                                           group="run")  # fmt: skip
    checkpoint_minutes: float | None = setting(None, "float", "also checkpoint once M minutes of training passed "
                                               "since the latest checkpoint (default 5; 0: never by time)", low=0,
                                               metavar="M", group="run")  # fmt: skip
    eval_every: int | None = setting(None, "int", "also evaluate every K iterations (needs --eval-episodes; "
                                     "written to eval.csv)", low=1, metavar="K", group="run")  # fmt: skip
    video_every: int | None = setting(None, "int", "every K iterations, videos/iteration_K.gif: python -m "
                                      "jaxppo.render of that checkpoint (at most 1000 steps; to TensorBoard, W&B "
                                      "if on)", low=1, metavar="K", group="run")  # fmt: skip
    show_progress: bool = setting(True, "bool", "no progress bar", switch="off", flag="--no-progress", group="run")
    tensorboard: bool = setting(False, "bool", "write TensorBoard logs, one run per (grid point, seed) (pip "
                                "install jaxppo[tensorboard])", switch="on", group="run")  # fmt: skip
    wandb: bool = setting(False, "bool", "log to Weights & Biases, one run per grid point (pip install "
                          "jaxppo[wandb])", switch="on", group="run")  # fmt: skip

    def __post_init__(self):
        check_fields(self, by_flag=True)


# ------------------------------------------------------------ config files
def read_config_file(path: str) -> dict:
    """A TOML or YAML file's settings, with ``-`` in names read as ``_``; unknown names are errors."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} does not exist or is not a file; check the --config path")
    data = _parse_config_text(file, path)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    known = set(FILE_SETTINGS) | {"env"}
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
        if name not in HPARAM_NAMES:
            close = difflib.get_close_matches(name, HPARAM_NAMES, n=1)
            hint = f"did you mean {close[0]}?" if close else f"choose from {', '.join(HPARAM_NAMES)}"
            raise ConfigError(f"--grid field {name!r} is not a PPOHParams field; {hint}")
        if not values:
            raise ConfigError(f"--grid {name} has no values; give at least one")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"--grid {name} values must be numbers, got {values!r}")
    return grid


def _parse_env_kwargs(given) -> dict:
    """``--env-kwarg name=value`` entries (values read as JSON, else as text), or a file's table."""
    if isinstance(given, dict):
        return dict(given)
    if not isinstance(given, (list, tuple)):
        raise ConfigError(f"env_kwargs must be a table of name = value, got {given!r}")
    kwargs = {}
    for entry in given:
        key, sep, text = str(entry).partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-kwarg {entry!r} is malformed; write --env-kwarg name=value")
        try:
            kwargs[key] = json.loads(text)
        except ValueError:
            kwargs[key] = text
    return kwargs


# What a config file (and a stored run) may set: every field of the three declarations, by its name.
FILE_SETTINGS = {**declared(PPOConfig), **declared(PPOHParams), **declared(RunSettings)}


def _coerce(name: str, value):
    """A setting from a flag or a file, as its declared kind; a wrong kind is a ConfigError."""
    return coerce(name, FILE_SETTINGS[name][0], value) if name in FILE_SETTINGS else value


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
    merged, grids, env_kwargs = {}, [], {}
    for layer in layers:  # the two tables merge key by key; every other setting is replaced
        merged.update({k: v for k, v in layer.values.items() if k not in ("grid", "env_kwargs")})
        if layer.values.get("grid") is not None:
            grids.append((layer, _parse_layer_grid(layer.values["grid"])))
        if layer.values.get("env_kwargs") is not None:
            env_kwargs.update(_parse_env_kwargs(layer.values["env_kwargs"]))
    grid = {name: values for _, layer_grid in grids for name, values in layer_grid.items()}
    _refuse_fixed_and_swept(layers, grids, grid)
    merged = {k: _coerce(k, v) for k, v in merged.items()}
    config = PPOConfig(**{k: merged[k] for k in declared(PPOConfig) if k in merged}, env_kwargs=env_kwargs)
    hparams = {name: merged[name] for name in HPARAM_NAMES if merged.get(name) is not None}
    PPOHParams(**hparams).validate()
    run = {k: merged[k] for k in declared(RunSettings) if k != "grid" and merged.get(k) is not None}
    settings = RunSettings(config=config, hparams=hparams, grid=grid, **run)
    _check_pbt(settings)
    return settings


def _check_pbt(settings: RunSettings) -> None:
    """``ConfigError`` for population settings that cannot train: set without ``--pbt``, bad
    ranges or quantile, one seed, or a searched hyperparameter set outside its range."""
    given = [flag_name(name, declaration) for name, (declaration, default) in declared(RunSettings).items()
             if declaration.group == "pbt" and name != "pbt" and getattr(settings, name) != default]  # fmt: skip
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
    return {**data.pop("config"), **data.pop("hparams"), **data}
