"""A user's network and optimizer factories named by import path (``MODULE:FACTORY``), as the
command line takes them (``--network``, ``--optimizer``) and a run directory records them; and the
trainer of a run's settings, with those factories imported again."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jaxppo.config import ConfigError, first_line

if TYPE_CHECKING:
    from jaxppo.settings import RunSettings
    from jaxppo.train import Trainer

KINDS = {"network": "network(action_size=...) -> flax.linen.Module",
         "optimizer": "optimizer(hparams) -> optax.GradientTransformation"}  # fmt: skip


def load_factory(path: str, kind: str) -> Callable:
    """The callable ``MODULE:FACTORY`` names (``ConfigError`` naming what is wrong). ``MODULE`` is
    imported as Python would from the current directory (``python -m`` puts it on the path)."""
    module_name, sep, name = str(path).partition(":")
    flag = f"--{kind} {path}"
    if not sep or not module_name or not name:
        raise ConfigError(f"{flag}: write MODULE:FACTORY, e.g. my_nets:residual_mlp, for a {KINDS[kind]}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as python -m does, for entry points started otherwise
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raises while it runs
        raise ConfigError(f"{flag}: cannot import {module_name} ({type(error).__name__}: "
                          f"{first_line(error)}); it must be importable from the current directory "
                          f"or the Python path") from None  # fmt: skip
    factory = module
    for part in name.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ConfigError(f"{flag}: {module_name} has no {name}")
    if not callable(factory):
        raise ConfigError(f"{flag}: {name} is a {type(factory).__name__}, not a {KINDS[kind]}")
    return factory


def run_trainer(settings: RunSettings, env=None, env_params=None) -> Trainer:
    """The trainer of a run's settings, its network and optimizer factories imported again."""
    from jaxppo.train import make_trainer

    network = load_factory(settings.network, "network") if settings.network else None
    optimizer = load_factory(settings.optimizer, "optimizer") if settings.optimizer else None
    return make_trainer(settings.config, env, env_params, network=network, optimizer=optimizer)

