"""What every command shares: one argparse parser whose errors are one line (with the closest
flag for a misspelt one), flags built from declared settings (``jaxppo.declared``), the flag
reference rendered from a parser, and ``run_main``, the one error path: a user's mistake is one
line ``python -m jaxppo.X: error: ...`` on stderr and exit status 2, Ctrl-C is 130."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from jaxppo.config import ConfigError
from jaxppo.declared import Setting, coerce, declared, flag_name


class Parser(argparse.ArgumentParser):
    """argparse whose errors (unknown flags, bad values) are one ``ConfigError`` line, not usage + error."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message):
        if message.startswith("unrecognized arguments"):
            known = [s for action in self._actions for s in action.option_strings]
            unknown = message.split(":", 1)[1].split()
            hints = [difflib.get_close_matches(u.split("=")[0], known, n=1) for u in unknown]
            hint = "; ".join(f"did you mean {h[0]}?" for h in hints if h)
            message = f"{message}{'; ' + hint if hint else ''}"
        raise ConfigError(f"{message} (see --help)")


class Stopped(Exception):
    """A command stopped by something other than a mistake in its input (Ctrl-C, a failed write):
    ``message`` says what happened and what survives, ``status`` is the exit status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def run_main(prog: str, body: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """``body(argv)``'s exit status; a user's mistake is one line on stderr and status 2."""
    try:
        return body(argv)
    except ConfigError as error:
        message = str(error)
    except Stopped as stopped:
        print(f"{prog}: {stopped}", file=sys.stderr)
        return stopped.status
    except OSError as error:  # a path the checks before could not foresee (a full disk, a vanished directory)
        where = f" {error.filename}" if error.filename else ""
        message = f"cannot use{where} ({error.strerror or error}); check that path and its permissions"
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; files it had finished writing are intact", file=sys.stderr)
        return 130
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def integer(low: int | None = None, high: int | None = None, what: str = "an integer"):
    """An argparse ``type``: an integer in ``low..high`` (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


# ------------------------------------------------------------ flags from declared settings
VALUE_NAMES = {"int": "INT", "float": "NUMBER", "ints": "INTS", "str": "TEXT", "strings": "TEXT", "table": "KEY=VALUE"}


def _value_type(name: str, declaration: Setting):
    """The argparse ``type`` of a declared setting's flag: its text coerced as the declaration says."""

    def parse(text: str):
        try:
            return coerce(name, declaration, text)
        except ConfigError:
            kind = {"int": "an integer", "float": "a number", "ints": "comma-separated integers such as 64,64"}
            raise argparse.ArgumentTypeError(f"expected {kind[declaration.kind]}, got {text!r}") from None

    parse.__name__ = declaration.kind  # argparse names the type in some messages
    return parse


def add_declared(parser: argparse.ArgumentParser, cls, groups: dict[str, str], default_group: str) -> None:
    """A flag for every declared field of ``cls`` (its dest is the field's name), in the argparse
    group ``groups[declaration.group or default_group]`` (made on first use). Flags given nowhere
    stay out of the parsed namespace (the parser's ``argument_default`` is ``SUPPRESS``)."""
    made = {group.title: group for group in parser._action_groups}
    for name, (declaration, _) in declared(cls).items():
        title = groups[declaration.group or default_group]
        group = made.get(title) or made.setdefault(title, parser.add_argument_group(title))
        _add_flag(group, name, declaration)


def _add_flag(group, name: str, declaration: Setting) -> None:
    flag, help_text = flag_name(name, declaration), declaration.help
    if declaration.kind == "bool":
        if declaration.switch == "both":
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(flag, dest=name, action="store_true" if declaration.switch == "on" else "store_false",
                               help=help_text)  # fmt: skip
        for off_flag, off_help in declaration.off_flags:
            group.add_argument(off_flag, dest=name, action="store_false", help=off_help)
        return
    options = {"dest": name, "help": help_text, "metavar": declaration.metavar}
    if declaration.kind in ("strings", "table"):
        options["action"] = "append"  # repeated flags, parsed by the setting's owner
    elif declaration.kind == "str":
        if declaration.choices:
            options["choices"] = ["none" if choice is None else choice for choice in declaration.choices]
            options.pop("metavar")
    else:
        options["type"] = _value_type(name, declaration)
        if declaration.nullable and not declaration.metavar:
            options["metavar"] = f"{VALUE_NAMES[declaration.kind]} or none"
    group.add_argument(flag, **{k: v for k, v in options.items() if v is not None})


# ------------------------------------------------------------ the flag reference (docs/cli.md)
FLAGS_BEGIN, FLAGS_END = "<!-- generated: flags -->", "<!-- /generated -->"


def _flag_value(action: argparse.Action) -> str:
    """What a flag takes: nothing for a switch, its choices, or its metavar (the dest, upper-cased, by default)."""
    if action.nargs == 0:
        return ""
    if action.choices:
        return " \\| ".join(f"`{choice}`" for choice in action.choices)
    kind = getattr(action.type, "__name__", None)
    return f"`{action.metavar or VALUE_NAMES.get(kind) or action.dest.upper()}`"


def _flag_help(action: argparse.Action, prog: str, field_groups: dict[str, str]) -> str:
    """The flag's help text as ``--help`` prints it (``%%`` expanded); a field's flag names its field."""
    text = ""
    if action.help:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        text = action.help % {**params, "prog": prog}
    if action.container.title in field_groups:
        text = f"`{field_groups[action.container.title]}.{action.dest}`" + (f": {text}" if text else "")
    if "append" in type(action).__name__.lower():
        text += " (repeatable)" if "repeatable" not in text else ""
    return text.replace("|", "\\|")


def flag_reference(parser: argparse.ArgumentParser, field_groups: dict[str, str] | None = None) -> str:
    """Every flag of ``parser`` as Markdown: a table per argparse group (flags, value, help).
    ``field_groups``: group title -> the class whose fields that group's flags set."""
    parts = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and a.help is not argparse.SUPPRESS]
        actions = [a for a in actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        parts += [f"### {group.title}", "", "| flag | value | what it does |", "| --- | --- | --- |"]
        for action in actions:
            flags = ", ".join(f"`{flag}`" for flag in action.option_strings)
            parts.append(f"| {flags} | {_flag_value(action)} | {_flag_help(action, parser.prog, field_groups or {})} |")
        parts.append("")
    return "\n".join(parts)


def write_generated_block(path: str | Path, text: str, begin: str = FLAGS_BEGIN, end: str = FLAGS_END) -> None:
    """Replace the block between ``begin`` and ``end`` in ``path`` with ``text``."""
    path = Path(path)
    content = path.read_text()
    head, found, rest = content.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise ValueError(f"{path} has no {begin} ... {end} block")
    path.write_text(f"{head}{begin}\n{text}{end}{tail}")


def flags_of(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    """The parser's flags (its options, not its positional arguments or ``--help``)."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
