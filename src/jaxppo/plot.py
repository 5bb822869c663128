"""``python -m jaxppo.plot``: the command ``jaxppo.cli.plot``, which importing this module also gives."""

import sys

from jaxppo.cli import plot as _command

if __name__ == "__main__":
    sys.exit(_command.main())
else:
    sys.modules[__name__] = _command  # ``import jaxppo.plot`` is the command's module itself
