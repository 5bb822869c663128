"""What the small programs (``python -m jaxppo.evaluate``, ``.plot``, ``.merge``) share: argparse
with one-line errors, and a ``main`` that answers every failure a user can cause with one line
``python -m jaxppo.X: error: ...`` on stderr and exit status 2 (130 for Ctrl-C)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from jaxppo.config import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse whose errors (unknown flags, bad values) are one ``ConfigError`` line, not usage + error."""

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")


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


def run_main(prog: str, body: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """``body(argv)``'s exit status; a user's mistake is one line on stderr and status 2."""
    try:
        return body(argv)
    except ConfigError as error:
        message = str(error)
    except OSError as error:  # a path the checks before could not foresee (a full disk, a vanished directory)
        where = f" {error.filename}" if error.filename else ""
        message = f"cannot use{where} ({error.strerror or error}); check that path and its permissions"
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; files it had finished writing are intact", file=sys.stderr)
        return 130
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2

