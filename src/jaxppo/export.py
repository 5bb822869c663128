"""``python -m jaxppo.export``: the command ``jaxppo.cli.export``, which importing this module also gives."""

import sys

from jaxppo.cli import export as _command

if __name__ == "__main__":
    sys.exit(_command.main())
else:
    sys.modules[__name__] = _command  # ``import jaxppo.export`` is the command's module itself
