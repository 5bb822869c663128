"""``python -m jaxppo.plot RUN_DIR [RUN_DIR ...] [--out FILE]``: the learning curves of runs in one PNG
(``jaxppo.plotting`` draws them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jaxppo.cli.parsing import Parser, integer, run_main
from jaxppo.config import ConfigError
from jaxppo.plotting import comparison, render
from jaxppo.rundir import CONFIG_FILE, PLOT_FILE, atomic_write_bytes

PROG = "python -m jaxppo.plot"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Plot the learning curves of one or more runs into one PNG: per grid "
                    "point, the mean episode return over seeds against env steps, with a 95 % bootstrap "
                    "confidence band of that mean.")  # fmt: skip
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories written by python -m jaxppo.run")
    parser.add_argument("--out", default="learning_curves.png",
                        help="PNG to write, never a run's own plot (default: %(default)s)")
    parser.add_argument("--title", default=None, help="plot title (default: the env(s) and what the curves sweep)")
    parser.add_argument("--smooth", type=integer(1, what="a positive number of iterations"), default=1, metavar="W",
                        help="average each seed's curve over a trailing window of W iterations before the mean "
                             "and band are taken (default: %(default)s, unsmoothed)")  # fmt: skip
    return parser


def main(argv=None) -> int:
    return run_main(PROG, _main, argv)


def check_out(out: Path) -> Path:
    """``out`` if a PNG can be written there; ``ConfigError`` (naming ``--out``) if not. Only a
    ``.png`` name is accepted, and never a run's own plot, so ``--out`` replaces no file of a run."""
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out} does not end in .png; name the PNG file to write, e.g. --out curves.png")
    if out.name == PLOT_FILE and (out.parent / CONFIG_FILE).is_file():
        raise ConfigError(f"--out {out} is the run's own plot, which plot does not replace; "
                          f"choose another --out, e.g. --out {out.with_name('compare.png')}")  # fmt: skip
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; name a file in it, e.g. --out {out / 'curves.png'}")
    parent = out.parent
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: directory {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: directory {parent} is not writable; choose another --out")
    return out


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    out = check_out(Path(args.out))
    curves, title, notes = comparison(args.run_dirs)
    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    try:
        atomic_write_bytes(out, render(curves, args.title or title, args.smooth))
    except OSError as error:
        raise ConfigError(f"--out {out} cannot be written ({error.strerror}); choose another --out") from None
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
