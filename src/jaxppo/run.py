"""``python -m jaxppo.run``: the command ``jaxppo.cli.run``, which importing this module also gives."""

import sys

from jaxppo.cli import run as _command

if __name__ == "__main__":
    _command.cli()
else:
    sys.modules[__name__] = _command  # ``import jaxppo.run`` is the command's module itself
