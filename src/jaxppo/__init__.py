"""jaxppo: PPO in JAX, one compiled call for many seeds and hyperparameter grids.

CPU-specific helpers (host devices, the unrolled Threefry lowering, the compile-time
workarounds the loop uses) live in ``jaxppo.xla_cpu``.
"""

from jaxppo import xla_cpu
from jaxppo.config import ConfigError, PPOConfig, PPOHParams, UnresolvedConfigError, default_hparams, hparam_grid
from jaxppo.evaluation import evaluate
from jaxppo.exporting import export_policy
from jaxppo.gae import compute_gae
from jaxppo.loading import Policy, load_policy, load_run
from jaxppo.parallel import train_many
from jaxppo.pbt import PBTConfig, SearchRange, make_pbt_train
from jaxppo.train import Trainer, TrainResult, TrainState, make_train, make_trainer
from jaxppo.video import render_agent, render_episodes, save_video

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "PBTConfig",
    "PPOConfig",
    "PPOHParams",
    "SearchRange",
    "Policy",
    "TrainResult",
    "TrainState",
    "Trainer",
    "UnresolvedConfigError",
    "compute_gae",
    "default_hparams",
    "evaluate",
    "export_policy",
    "hparam_grid",
    "load_policy",
    "load_run",
    "make_pbt_train",
    "make_train",
    "make_trainer",
    "render_agent",
    "render_episodes",
    "save_video",
    "train_many",
    "xla_cpu",
]
