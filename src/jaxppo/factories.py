"""A user's network and optimizer factories named by import path (``MODULE:FACTORY``), as the
command line takes them (``--network``, ``--optimizer``) and a run directory records them; and the
trainer of a run's settings, with those factories imported again, and the facts of a run computed
once from its settings (``RunFacts``)."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jaxppo.config import ConfigError, PPOHParams, first_line

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



@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What a run's settings fix, computed once (``run_facts``) and passed to every part of the
    command line that writes or reads the run: its trainer, its grid and each point's resolved
    hyperparameters, and (on first use: it traces one update) the metrics an iteration records."""

    settings: RunSettings
    trainer: Trainer  # its config is the resolved one: every count and budget is read from it
    grid: PPOHParams  # every leaf [G]
    points: list[dict]  # each grid point's swept values
    hparam_rows: list[dict]  # each grid point's hyperparameters as the env resolves them (the hp_* columns)

    @property
    def num_points(self) -> int:
        return len(self.points)

    @functools.cached_property
    def metric_dtypes(self) -> dict:
        """The metrics one training iteration records: ``{name: dtype}`` (a ``--pbt`` run's included)."""
        import jax

        from jaxppo import pbt

        hparams = PPOHParams(**self.settings.hparams)
        state = jax.eval_shape(self.trainer.init, jax.random.key(0), hparams)
        metrics = {name: m.dtype for name, m in jax.eval_shape(self.trainer.step, state, hparams)[1].items()}
        return {**metrics, **pbt.METRIC_DTYPES} if self.settings.pbt else metrics


def run_facts(settings: RunSettings, trainer: Trainer | None = None) -> RunFacts:
    """The ``RunFacts`` of ``settings`` (with ``trainer``, its trainer if already made); validates
    the env, the config and the grid."""
    trainer = run_trainer(settings) if trainer is None else trainer
    grid, points = settings.grid_hparams()
    return RunFacts(settings, trainer, grid, points, resolved_points(trainer, grid, points))


def resolved_points(trainer: Trainer, grid: PPOHParams, points: list[dict]) -> list[dict]:
    """Each grid point's hyperparameters as ``trainer`` resolves them for its env (the rows of the files)."""
    import numpy as np

    resolved = grid.resolve(trainer.spec.action_kind)
    # float32 values by their shortest repr (0.00025, not 0.0002500000118743628)
    return [{name: float(str(np.broadcast_to(np.asarray(value), (len(points),))[g])) for name, value in resolved.items()}
            for g in range(len(points))]  # fmt: skip
