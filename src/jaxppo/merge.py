"""``python -m jaxppo.merge``: the command ``jaxppo.cli.merge``, which importing this module also gives."""

import sys

from jaxppo.cli import merge as _command

if __name__ == "__main__":
    sys.exit(_command.main())
else:
    sys.modules[__name__] = _command  # ``import jaxppo.merge`` is the command's module itself
