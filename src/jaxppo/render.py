"""``python -m jaxppo.render``: the command ``jaxppo.cli.render``, which importing this module also gives."""

import sys

from jaxppo.cli import render as _command

if __name__ == "__main__":
    sys.exit(_command.main())
else:
    sys.modules[__name__] = _command  # ``import jaxppo.render`` is the command's module itself
