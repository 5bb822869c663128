"""The two configuration types: static ``PPOConfig`` and traced ``PPOHParams``.

``PPOConfig`` fixes everything that decides shapes, loop counts and code paths; it is a
frozen, hashable dataclass and changing it recompiles. ``PPOHParams`` holds the float
hyperparameters as a pytree: they are traced, so a grid of values (leading axes) trains
in one compiled call and new values never recompile.

Fields left as ``None`` mean "the default for this env's action space": CleanRL's
``ppo.py`` for discrete actions, ``ppo_continuous_action.py`` for continuous ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxppo.declared import ConfigError, check_fields, declared, setting


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception as one short line for a one-line error: its first line, or its type's name."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


class UnresolvedConfigError(TypeError):
    """A ``PPOConfig`` whose action-space defaults (``None`` fields) are not filled in was used
    where only a resolved one makes sense: a mistake in the calling code, not in the user's input."""


ActionKind = Literal["discrete", "continuous"]
ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "elu")
TRUNCATION_MODES = ("bootstrap", "terminate")
RECURRENT_CORES = (None, "gru")
ENCODERS = ("auto", "mlp", "cnn")

# CleanRL ppo.py (discrete) and ppo_continuous_action.py (continuous) defaults for the
# fields that differ between the two scripts; everything else is shared.
_CONFIG_DEFAULTS: dict[ActionKind, dict] = {
    "discrete": dict(
        total_timesteps=500_000,
        num_envs=4,
        num_steps=128,
        num_minibatches=4,
        update_epochs=4,
        normalize_observations=False,
        normalize_rewards=False,
    ),
    "continuous": dict(
        total_timesteps=1_000_000,
        num_envs=1,
        num_steps=2048,
        num_minibatches=32,
        update_epochs=10,
        normalize_observations=True,
        normalize_rewards=True,
    ),
}
# The fields ``resolve`` fills: the derived counts need them all.
RESOLVED_FIELDS = tuple(_CONFIG_DEFAULTS["discrete"])
_HPARAM_DEFAULTS: dict[ActionKind, dict] = {
    "discrete": dict(learning_rate=2.5e-4, ent_coef=0.01),
    "continuous": dict(learning_rate=3e-4, ent_coef=0.0),
}
_SHARED_HPARAM_DEFAULTS = dict(gamma=0.99, gae_lambda=0.95, clip_coef=0.2, vf_coef=0.5, max_grad_norm=0.5)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static PPO settings (shapes, counts, flags). Frozen and hashable.

    ``None`` in a count or normalisation flag picks the CleanRL default for the env's
    action space (see ``resolve``).
    """

    env_id: str = setting("CartPole-v1", "str", "env id: a gymnax id (default CartPole-v1) or suite/name (brax/ant, "
                          "jumanji/Snake-v1, pgx/2048, ...)", flag="--env", metavar="ID", group="run")  # fmt: skip
    env_kwargs: tuple[tuple[str, object], ...] | dict = setting(
        (), "table", "env constructor argument (repeatable)", flag="--env-kwarg", metavar="KEY=VALUE", group="run")
    total_timesteps: int | None = setting(None, "int", "env steps per seed, e.g. 5e5 (with --resume: a larger N "
                                          "trains the run longer)", low=1, metavar="N")  # fmt: skip
    num_envs: int | None = setting(None, "int", "parallel envs per seed", low=1)
    num_steps: int | None = setting(None, "int", "steps per env per iteration (the rollout length)", low=1)
    num_minibatches: int | None = setting(None, "int", "minibatches per epoch", low=1)
    update_epochs: int | None = setting(None, "int", "epochs over each rollout", low=1)
    anneal_lr: bool = setting(True, "bool", "anneal the learning rate linearly to 0 over the run")
    norm_adv: bool = setting(True, "bool", "normalise advantages per minibatch")
    clip_vloss: bool = setting(True, "bool", "clip the value loss around the rollout's values")
    target_kl: float | None = setting(None, "float", "stop an iteration's epochs once the approximate KL "
                                      "exceeds this, or none", nullable=True)  # fmt: skip
    truncation: Literal["bootstrap", "terminate"] = setting(
        "bootstrap", "str", "at a time limit, bootstrap from the value of the final observation, or treat it as "
        "a termination", choices=TRUNCATION_MODES)  # fmt: skip
    normalize_observations: bool | None = setting(None, "bool", "running mean/std observation normalisation "
                                                  "(default: on for continuous actions)")  # fmt: skip
    normalize_rewards: bool | None = setting(None, "bool", "scale rewards by the std of the discounted return "
                                             "(default: on for continuous actions)")  # fmt: skip
    hidden_sizes: tuple[int, ...] = setting((64, 64), "ints", "MLP layer widths", low=1, metavar="64,64")
    activation: str = setting("tanh", "str", "the MLP's activation", choices=ACTIVATIONS)
    encoder: str = setting("auto", "str", "observation encoder: auto (default) convolves [H, W, C] leaves of at "
                           "least 5x5 and flattens the others; mlp flattens all; cnn convolves every [H, W, C] "
                           "leaf", choices=ENCODERS)  # fmt: skip
    # Convolution layers (VALID, relu), before the MLP: the MinAtar paper's one 16 x 3x3 layer.
    cnn_channels: tuple[int, ...] = setting((16,), "ints", "filters per convolution layer (default 16)", low=1,
                                            metavar="16,32")  # fmt: skip
    cnn_kernels: tuple[int, ...] = setting((3,), "ints", "square kernel size per convolution layer (default 3)",
                                           low=1, metavar="3,3")  # fmt: skip
    cnn_strides: tuple[int, ...] = setting((1,), "ints", "stride per convolution layer (default 1)", low=1,
                                           metavar="1,1")  # fmt: skip
    shared_trunk: bool = setting(False, "bool", "one encoder + MLP trunk with a policy and a value head (vf_coef "
                                 "weighs the value loss on it), or separate actor and critic networks "
                                 "(default)")  # fmt: skip
    # 0 as CleanRL's JAX code and PureJaxRL, 1 as CleanRL torch.
    adv_std_ddof: int = setting(0, "int", "delta degrees of freedom of the advantages' std (0 or 1)",
                                choices=(0, 1))  # fmt: skip
    obs_clip: float = setting(10.0, "float", "clip normalised observations to [-obs_clip, obs_clip]")
    reward_clip: float = setting(10.0, "float", "clip normalised rewards to [-reward_clip, reward_clip]")
    # Its state is kept per env, reset at episode starts, and the update replays whole env sequences.
    recurrent: str | None = setting(None, "str", "a GRU core between the encoder and the MLP, its state reset at "
                                    "episode starts (default none)", choices=RECURRENT_CORES)  # fmt: skip
    recurrent_size: int = setting(128, "int", "the GRU's state size", low=1)

    def __post_init__(self):
        # Dicts are not hashable: store env_kwargs as sorted items so the config stays static.
        if isinstance(self.env_kwargs, dict):
            object.__setattr__(self, "env_kwargs", tuple(sorted(self.env_kwargs.items())))
        for name in (name for name, (declaration, _) in declared(PPOConfig).items() if declaration.kind == "ints"):
            try:
                object.__setattr__(self, name, tuple(getattr(self, name)))
            except TypeError:
                raise ConfigError(f"{name} must be a sequence of positive integers, got {getattr(self, name)!r}") from None
        if isinstance(self.recurrent, str) and self.recurrent.lower() == "none":  # as flags and files spell it
            object.__setattr__(self, "recurrent", None)

    # ----- derived counts: only a resolved config has them -----
    @property
    def is_resolved(self) -> bool:
        """Whether every field the action space decides is filled (``resolve`` did it)."""
        return all(getattr(self, name) is not None for name in RESOLVED_FIELDS)

    def require_resolved(self, what: str = "this", fields: tuple[str, ...] = RESOLVED_FIELDS) -> PPOConfig:
        """``self`` if ``fields`` are filled; otherwise ``UnresolvedConfigError`` naming the missing ones."""
        missing = [name for name in fields if getattr(self, name) is None]
        if missing:
            raise UnresolvedConfigError(
                f"{what} needs a resolved PPOConfig, but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} None (the action space's default); use "
                f"config.resolve(action_kind) or the config of make_trainer(config), which is resolved"
            )
        return self

    @property
    def batch_size(self) -> int:
        self.require_resolved("PPOConfig.batch_size", ("num_envs", "num_steps"))
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        self.require_resolved("PPOConfig.minibatch_size", ("num_envs", "num_steps", "num_minibatches"))
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        self.require_resolved("PPOConfig.num_iterations", ("total_timesteps", "num_envs", "num_steps"))
        return self.total_timesteps // self.batch_size

    @property
    def env_steps(self) -> int:
        """Environment steps really taken (a whole number of iterations)."""
        self.require_resolved("PPOConfig.env_steps", ("total_timesteps", "num_envs", "num_steps"))
        return self.num_iterations * self.batch_size

    def replace(self, **changes) -> PPOConfig:
        return dataclasses.replace(self, **changes)

    def resolve(self, action_kind: ActionKind) -> PPOConfig:
        """Fill ``None`` fields with the defaults for ``action_kind`` and validate."""
        if action_kind not in _CONFIG_DEFAULTS:
            raise ConfigError(f"unknown action kind {action_kind!r}")
        filled = {name: value for name, value in _CONFIG_DEFAULTS[action_kind].items() if getattr(self, name) is None}
        resolved = dataclasses.replace(self, **filled)
        resolved.validate()
        return resolved

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first problem and its fix: each field against its
        declaration (kind, choices, bounds), then the checks that involve several fields."""
        check_fields(self)
        if self.target_kl is not None and not (math.isfinite(self.target_kl) and self.target_kl > 0):
            raise ConfigError(f"target_kl must be None or a positive number, got {self.target_kl!r}")
        for name in ("obs_clip", "reward_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        lengths = {len(self.cnn_channels), len(self.cnn_kernels), len(self.cnn_strides)}
        if len(lengths) > 1:
            raise ConfigError(
                f"cnn_channels {self.cnn_channels}, cnn_kernels {self.cnn_kernels} and cnn_strides "
                f"{self.cnn_strides} must have one entry per convolution layer each (equal lengths)"
            )
        if None in (self.num_envs, self.num_steps, self.num_minibatches, self.total_timesteps):
            return  # counts not resolved yet; checked again by resolve()
        if self.recurrent is not None and self.num_envs % self.num_minibatches:
            raise ConfigError(
                f"a recurrent policy's minibatches split whole env sequences, so num_envs = {self.num_envs} "
                f"must be divisible by num_minibatches = {self.num_minibatches}; choose num_minibatches "
                f"among {_divisors(self.num_envs)} or change num_envs"
            )
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"num_envs*num_steps = {self.batch_size} is not divisible by "
                f"num_minibatches = {self.num_minibatches}; choose num_minibatches among "
                f"{_divisors(self.batch_size)} or change num_envs/num_steps"
            )
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"total_timesteps = {self.total_timesteps} is smaller than one iteration "
                f"(num_envs*num_steps = {self.batch_size}); raise total_timesteps to at least "
                f"{self.batch_size} or lower num_envs/num_steps"
            )

def _divisors(n: int, limit: int = 8) -> list[int]:
    found = [d for d in range(1, n + 1) if n % d == 0]
    return found if len(found) <= limit else found[: limit - 1] + [n]


@struct.dataclass
class PPOHParams:
    """Float hyperparameters, traced (a pytree): vmap over them for grids.

    ``None`` picks the default for the env's action space (see ``resolve``). For a grid,
    every leaf carries the same leading axes (``hparam_grid`` builds one).
    """

    learning_rate: jax.Array | float | None = setting(None, "float", "Adam's step size (annealed with --anneal-lr)",
                                                      low=0.0, high=math.inf)  # fmt: skip
    gamma: jax.Array | float | None = setting(None, "float", "discount factor", low=0.0, high=1.0)
    gae_lambda: jax.Array | float | None = setting(None, "float", "GAE's lambda", low=0.0, high=1.0)
    clip_coef: jax.Array | float | None = setting(None, "float", "the policy ratio's clip range (and the value "
                                                  "loss's with --clip-vloss)", low=0.0, high=math.inf)  # fmt: skip
    ent_coef: jax.Array | float | None = setting(None, "float", "entropy bonus coefficient", low=0.0, high=math.inf)
    vf_coef: jax.Array | float | None = setting(None, "float", "value loss coefficient", low=0.0, high=math.inf)
    max_grad_norm: jax.Array | float | None = setting(None, "float", "global gradient norm clip", low=0.0,
                                                      high=math.inf)  # fmt: skip

    def resolve(self, action_kind: ActionKind) -> PPOHParams:
        """Fill ``None`` with the defaults for ``action_kind`` (float32 scalars)."""
        defaults = {**_SHARED_HPARAM_DEFAULTS, **_HPARAM_DEFAULTS[action_kind]}
        return self.replace(
            **{
                name: jnp.asarray(defaults[name] if value is None else value, jnp.float32)
                for name, value in self.items()
            }
        )

    def items(self):
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def validate(self) -> None:
        """Check concrete values (skipped for traced ones); raise ``ConfigError``."""
        for name, value in self.items():
            if value is None or isinstance(value, jax.core.Tracer):
                continue
            array = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(array)):
                raise ConfigError(f"{name} must be finite, got {value!r}")
            low, high = hparam_range(name)
            if np.any(array < low) or np.any(array > high):
                raise ConfigError(
                    f"{name} must lie in [{low}, {high}], got {value!r}; "
                    f"{_HPARAM_HINTS.get(name, 'use a value in range')}"
                )


HPARAM_NAMES = tuple(f.name for f in dataclasses.fields(PPOHParams))  # the traced hyperparameters, in order


def hparam_range(name: str) -> tuple[float, float]:
    """The values a traced hyperparameter may take, as its declaration gives them: ``(low, high)``."""
    declaration = declared(PPOHParams)[name][0]
    return declaration.low, declaration.high

_HPARAM_HINTS = {
    "gamma": "a discount factor such as 0.99",
    "gae_lambda": "a GAE lambda such as 0.95",
    "learning_rate": "a non-negative step size such as 2.5e-4",
}


def default_hparams(action_kind: ActionKind = "discrete") -> PPOHParams:
    """Concrete default hyperparameters for an action kind."""
    return PPOHParams().resolve(action_kind)


def hparam_grid(base: PPOHParams | None = None, **values) -> tuple[PPOHParams, list[dict]]:
    """Cartesian product of hyperparameter values as one batched ``PPOHParams``.

    Returns ``(grid, points)``: ``grid`` has leading axis ``[G]`` on every leaf (base values
    broadcast, ``None`` kept for env-dependent defaults only when never swept) and
    ``points[g]`` is the dict of swept values of grid point ``g``.

    >>> grid, points = hparam_grid(learning_rate=[1e-4, 3e-4], clip_coef=[0.1, 0.2])
    """
    base = PPOHParams() if base is None else base
    known = {f.name for f in dataclasses.fields(PPOHParams)}
    for name, options in values.items():
        if name not in known:
            raise ConfigError(f"unknown hyperparameter {name!r} in grid; choose from {sorted(known)}")
        if len(options) == 0:
            raise ConfigError(f"grid for {name!r} is empty; give at least one value")
    names = list(values)
    points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values.values())]
    size = len(points)
    fields = {}
    for name, value in base.items():
        if name in values:
            fields[name] = jnp.asarray([p[name] for p in points], jnp.float32)
        elif value is not None:
            fields[name] = jnp.broadcast_to(jnp.asarray(value, jnp.float32), (size,))
        else:
            fields[name] = None
    grid = PPOHParams(**fields)
    grid.validate()
    return grid, points
