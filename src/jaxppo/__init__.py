"""jaxppo: PPO in JAX, one compiled call for many seeds and hyperparameter grids."""

from jaxppo.compilation import unroll_threefry_on_cpu
from jaxppo.config import ConfigError, PPOConfig, PPOHParams, default_hparams, hparam_grid
from jaxppo.evaluation import evaluate
from jaxppo.gae import compute_gae
from jaxppo.parallel import train_many, use_host_devices
from jaxppo.rundir import load_policy, load_run
from jaxppo.train import Trainer, TrainResult, TrainState, make_train, make_trainer

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "PPOConfig",
    "PPOHParams",
    "TrainResult",
    "TrainState",
    "Trainer",
    "compute_gae",
    "default_hparams",
    "evaluate",
    "load_policy",
    "load_run",
    "hparam_grid",
    "make_train",
    "make_trainer",
    "train_many",
    "unroll_threefry_on_cpu",
    "use_host_devices",
]
