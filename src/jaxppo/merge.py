"""``python -m jaxppo.merge RUN_DIR``: merge the parts of a multi-process run.

Process 0 merges by itself when every host writes into one shared run directory. When the
hosts have their own disks, copy each host's ``RUN_DIR/process<K>/`` into one ``RUN_DIR``
(beside process 0's ``config.json``), then run this.
"""

from __future__ import annotations

import argparse
import sys

from jaxppo.config import ConfigError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxppo.merge", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    from jaxppo.outputs import merge_parts

    try:
        return merge_parts(args.run_dir)
    except ConfigError as error:
        print(f"jaxppo.merge: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
