"""One declaration per setting: a dataclass field's default, kind, help, choices and bounds.

A field declared with ``setting(...)`` carries everything the rest of the package needs to know
about it: the command line builds its flag from it (``jaxppo.cli.flags``), a config file's value
is coerced and checked by it (``coerce``), ``config.json`` stores it by its name, and the flag
reference in ``docs/cli.md`` is rendered from the flags. Adding a setting is adding one field.

Kinds: ``int``, ``float``, ``bool``, ``str``, ``ints`` (a tuple of integers: ``64,64`` on the
command line, ``[64, 64]`` in a file), ``strings`` (a tuple of strings, one per repeated flag),
and ``table`` (``KEY=VALUE`` entries on the command line, a table in a file; parsed by its owner).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

KINDS = ("int", "float", "bool", "str", "ints", "strings", "table")
KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
              "ints": "a list of integers such as [64, 64]",
              "strings": "a list of strings such as ['learning_rate=1e-5:1e-3:log']",
              "table": "a table of name = value"}  # fmt: skip


class ConfigError(ValueError):
    """Invalid configuration or input; the message names the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """How a setting is given and checked (see ``setting``)."""

    kind: str
    help: str = ""
    choices: tuple | None = None  # the allowed values (None in them is spelled "none")
    low: float | None = None  # the smallest allowed value (integers: 1 "positive", 0 "zero or positive")
    high: float | None = None  # the largest allowed value (traced hyperparameters' ranges)
    nullable: bool = False  # the flag also takes "none" for None
    flag: str | None = None  # default: --name-with-dashes
    metavar: str | None = None
    switch: str = "both"  # bool only: "both" (--x / --no-x), "on" (--x sets True), "off" (flag sets False)
    off_flags: tuple[tuple[str, str], ...] = ()  # bool only: further (flag, help) pairs that set False
    group: str | None = None  # the flag reference's group; None: its class's

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TypeError(f"unknown setting kind {self.kind!r}; one of {KINDS}")


def setting(default: Any, kind: str, help: str = "", **options) -> Any:
    """A dataclass field declared as a setting: ``num_envs: int | None = setting(None, "int", "...", low=1)``."""
    return dataclasses.field(default=default, metadata={"setting": Setting(kind, help, **options)})


def declared(cls) -> dict[str, tuple[Setting, Any]]:
    """The declared settings of a dataclass, in field order: name -> (setting, default)."""
    return {f.name: (f.metadata["setting"], f.default) for f in dataclasses.fields(cls) if "setting" in f.metadata}


def flag_name(name: str, declaration: Setting) -> str:
    return declaration.flag or "--" + name.replace("_", "-")


def coerce(name: str, declaration: Setting, value: Any) -> Any:
    """``value`` (a flag's text, or a TOML/YAML value) as the declared kind; ``ConfigError`` if it
    is not one. ``None`` stays ``None``. Tables are left to their owner."""
    kind = declaration.kind
    if value is None or kind == "table":
        return value
    if isinstance(value, str) and declaration.nullable and value.strip().lower() in ("none", "null", "off"):
        return None
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise TypeError
        if isinstance(value, bool):  # YAML's yes/no are not numbers or names
            raise TypeError
        if kind == "int":
            return _integer(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind == "strings":  # one string per entry (a single string is one entry)
            entries = [value] if isinstance(value, str) else list(value)
            if not all(isinstance(v, str) for v in entries):
                raise TypeError
            return tuple(entries)
        if isinstance(value, str):  # ints on the command line: 64,64
            return tuple(_integer(v) for v in value.split(",") if v.strip())
        if not hasattr(value, "__iter__"):
            raise TypeError
        return tuple(_integer(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} must be {KIND_NAMES[kind]}, got {value!r}") from None


def _integer(value) -> int:
    if isinstance(value, bool):
        raise TypeError
    number = float(value)  # accepts 5e5 and "1e5" as YAML leaves them
    if not number.is_integer():
        raise ValueError
    return int(number)


def check(name: str, declaration: Setting, value: Any) -> None:
    """``ConfigError`` when a value (already of its kind, or given in code) breaks its declaration:
    its kind, its choices or its lower bound. ``None`` passes (the field's "not set")."""
    if value is None or declaration.kind == "table":
        return
    kind = declaration.kind
    if kind == "ints":
        if not value or not all(_is_integer(v) for v in value) or (
            declaration.low is not None and any(v < declaration.low for v in value)
        ):
            raise ConfigError(f"{name} must be {_bound_text(declaration)}, got {value!r}")
        return
    if kind == "bool" and not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind == "int" and not _is_integer(value):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if declaration.choices is not None and value not in declaration.choices:
        raise ConfigError(f"{name} must be one of {declaration.choices}, got {value!r}")
    if declaration.low is not None and not value >= declaration.low:  # NaN fails too
        raise ConfigError(f"{name} must be {_bound_text(declaration)}, got {value!r}")


def _is_integer(value) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def _bound_text(declaration: Setting) -> str:
    low = declaration.low
    if declaration.kind == "ints":
        return "positive integers" if low == 1 else f"integers of at least {low:g}"
    if declaration.kind == "int":
        return {1: "a positive integer", 0: "zero or positive"}.get(low, f"an integer of at least {low:g}")
    return "zero or positive" if low == 0 else f"a number of at least {low:g}"


def check_fields(instance, by_flag: bool = False) -> None:
    """``check`` every declared field of a dataclass instance; a message names the field, or with
    ``by_flag`` its flag (for settings only the command line sets)."""
    for name, (declaration, _) in declared(type(instance)).items():
        check(flag_name(name, declaration) if by_flag else name, declaration, getattr(instance, name))


def to_json(declaration: Setting, value: Any) -> Any:
    """A field's value as ``config.json`` stores it: a tuple as a list, a table (``env_kwargs``'s pairs) as a table."""
    if declaration.kind == "table":
        return dict(value)
    return list(value) if isinstance(value, tuple) else value
