"""``python -m jaxppo.evaluate``: the command ``jaxppo.cli.evaluate``.

``jaxppo.evaluate`` is also the library function (``jaxppo.evaluation.evaluate``). Importing this
module binds the package's attribute to it, so the module calls that function: the name keeps
working either way.
"""

import sys
import types

from jaxppo.cli.evaluate import build_parser, main
from jaxppo.evaluation import evaluate

__all__ = ["build_parser", "evaluate", "main"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
