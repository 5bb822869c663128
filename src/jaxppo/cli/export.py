"""``python -m jaxppo.export RUN_DIR --out policy.jaxexport``: one trained agent's deterministic
policy as a serialised ``jax.export`` function that runs with jax alone (``jaxppo.exporting``)."""

from __future__ import annotations

import sys

from jaxppo.cli.parsing import Parser, integer, run_main
from jaxppo.config import ConfigError
from jaxppo.exporting import PLATFORMS, SUFFIX, check_export_path, export_policy

PROG = "python -m jaxppo.export"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Export one trained agent's deterministic policy as a serialised "
                    "jax.export function observation -> action (recurrent: (carry, observation) -> (carry, "
                    "action)) that runs with jax alone; load it with jax.export.deserialize.")  # fmt: skip
    parser.add_argument("run_dir", help="a directory written by python -m jaxppo.run")
    parser.add_argument("--out", required=True, help=f"the file to write, ending in {SUFFIX}")
    parser.add_argument("--seed", type=integer(0, what="a seed index (0, 1, ...)"), default=0,
                        help="which of the run's seeds (default: %(default)s)")  # fmt: skip
    parser.add_argument("--grid-point", type=integer(0, what="a grid point index (0, 1, ...)"), default=0,
                        help="which of the run's grid points (default: %(default)s)")  # fmt: skip
    parser.add_argument("--platforms", default=None, metavar="P1,P2",
                        help=f"platforms to lower for (default: {','.join(PLATFORMS)}, or cpu alone where this "
                             "jax cannot lower for cuda)")  # fmt: skip
    return parser


def main(argv=None) -> int:
    return run_main(PROG, _main, argv)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    platforms = None
    if args.platforms is not None:
        platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
        if not platforms:
            raise ConfigError("--platforms names no platform; write e.g. --platforms cpu,cuda")
    check_export_path(args.out, "--out")
    try:
        exported = export_policy(args.run_dir, args.out, args.seed, args.grid_point, platforms)
    except ConfigError as error:  # the library's argument names as this command's flags
        raise ConfigError(str(error).replace("seed=", "--seed ").replace("grid_point=", "--grid-point ")) from None
    print(f"wrote {args.out} ({len(exported.data):,} bytes; {', '.join(exported.platforms)}): {exported.signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
