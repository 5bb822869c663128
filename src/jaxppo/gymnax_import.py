"""gymnax, imported once with its rendering-only dependencies deferred, and the info key under which
an env reports per-episode statistics: what the env seam (``envs``) and the suite adapters
(``suites``) both need, below both of them.

gymnax is imported inside functions: importing it initialises jax's backends, which must wait until
the command line has chosen the number of host devices (see ``xla_cpu.use_host_devices``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

EPISODE_METRICS = "episode_metrics"  # info key of an env's per-episode statistics (see suites.base)

# Imported by gymnax at start-up for rendering only: Pong imports seaborn (and with it scipy.stats and
# pandas) and matplotlib.colors, Catch imports matplotlib.pyplot: most of gymnax's import time. They are
# deferred to their first use, so a run that never renders never pays for them. The matplotlib package
# itself is deferred too (docs/performance.md measures both): a submodule's stand-in is also an attribute
# of its parent's stand-in.
DEFERRED_RENDERING_MODULES = ("seaborn", "matplotlib", "matplotlib.pyplot", "matplotlib.colors")


class _DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module until an attribute is first read, then imports it."""

    def __getattr__(self, attribute):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)  # later reads of this stand-in skip __getattr__
        return getattr(module, attribute)


def import_gymnax():
    """``import gymnax``, with its rendering-only dependencies deferred until first used."""
    if "gymnax" not in sys.modules:
        # find_spec of the top-level name only: for "a.b" it would import the package "a"
        specs = {name: importlib.util.find_spec(name.partition(".")[0]) for name in DEFERRED_RENDERING_MODULES}
        deferred = [name for name, spec in specs.items() if name not in sys.modules and spec is not None]
        for name in deferred:
            stand_in = _DeferredModule(name)
            stand_in.__spec__ = None  # not "being initialised": the import system hands it out as it is
            if "." not in name and specs[name].submodule_search_locations is not None:
                stand_in.__path__ = list(specs[name].submodule_search_locations)  # a package, without importing it
            sys.modules[name] = stand_in
            parent, _, child = name.rpartition(".")
            if isinstance(sys.modules.get(parent), _DeferredModule):  # `from parent import child`
                setattr(sys.modules[parent], child, stand_in)
        try:
            import gymnax  # noqa: F401
        finally:
            for name in deferred:  # later imports load the real modules; gymnax keeps its stand-ins
                if isinstance(sys.modules.get(name), _DeferredModule):
                    del sys.modules[name]
    return sys.modules["gymnax"]
