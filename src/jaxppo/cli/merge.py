"""``python -m jaxppo.merge RUN_DIR``: merge the parts of a multi-process run.

Process 0 merges by itself when every host writes into one shared run directory. When the
hosts have their own disks, copy each host's ``RUN_DIR/process<K>/`` into one ``RUN_DIR``
(beside process 0's ``config.json``), then run this.
"""

from __future__ import annotations

import sys

from jaxppo.cli.parsing import Parser, run_main
from jaxppo.config import ConfigError

PROG = "python -m jaxppo.merge"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Merge the process<K>/ parts of a multi-process run into its "
                    "metrics.csv, eval.csv, summary.json and plot.")  # fmt: skip
    parser.add_argument("run_dir", help="the run directory of a multi-process run, with every process<K>/ in it")
    return parser


def main(argv=None) -> int:
    return run_main(PROG, _main, argv)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    from jaxppo import rundir
    from jaxppo.cli.outputs import merge_parts
    from jaxppo.loading import run_directory

    run_dir = run_directory(args.run_dir)
    rundir.read_settings(run_dir)  # a malformed config.json is reported before anything is written
    if rundir.stored_process_count(run_dir) == 1:
        raise ConfigError(f"{run_dir} was trained by one process and has no parts to merge; its outputs are complete")
    return merge_parts(run_dir)


if __name__ == "__main__":
    sys.exit(main())
