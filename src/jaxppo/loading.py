"""Trained agents back from a run directory: ``load_run`` (settings, states, metrics) and
``load_policy`` (one agent's jitted ``act``); also the shapes a checkpoint restores into.

The library side of run directories: ``jaxppo.load_run`` and ``jaxppo.load_policy`` are these,
``python -m jaxppo.evaluate`` and ``--resume`` read runs through them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo import rundir
from jaxppo.config import ConfigError
from jaxppo.evaluation import make_act
from jaxppo.factories import RunFacts, run_facts
from jaxppo.parallel import batched_init, process_seed_range
from jaxppo.settings import RunSettings, run_keys

if TYPE_CHECKING:
    from jaxppo.train import Trainer


class LoadedRun(NamedTuple):
    run_dir: Path
    settings: RunSettings
    trainer: Trainer
    states: Any  # TrainState with leading axes [G, S]
    metrics: dict
    iteration: int
    grid_points: list[dict]

    @property
    def num_grid_points(self) -> int:
        return len(self.grid_points)

    @property
    def num_seeds(self) -> int:
        return self.settings.seeds


def abstract_states(facts: RunFacts, seed_range: range | None = None):
    """Shapes and dtypes of the run's ``TrainState [G, S]`` (those seeds only, with ``seed_range``)."""
    keys = run_keys(facts.settings, seed_range)
    return jax.eval_shape(batched_init(facts.trainer, facts.num_points), keys, facts.grid)


def run_directory(run_dir) -> Path:
    """``run_dir`` as a ``Path``; ``ConfigError`` unless it is a directory that holds a run's config.json."""
    run_dir = Path(run_dir)
    fix = "pass a directory written by python -m jaxppo.run"
    if not run_dir.exists():
        raise ConfigError(f"run directory {run_dir} does not exist; {fix}")
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; {fix}")
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a jaxppo run directory (it has no {rundir.CONFIG_FILE}); {fix}")
    return run_dir


def _require_checkpoint(part: Path, run_dir: Path) -> None:
    """``ConfigError`` unless ``part`` holds a finished checkpoint (a ``<iteration>.npz``)."""
    directory = part / rundir.CHECKPOINT_DIR
    if directory.is_dir() and (
        rundir.checkpoint_steps(directory)
    ):
        return
    raise ConfigError(f"{run_dir} holds no checkpoint yet (its training stopped before the first save); "
                      f"continue it with python -m jaxppo.run --resume {run_dir}, or load another run")  # fmt: skip


def load_run(run_dir) -> LoadedRun:
    """A run's settings, latest states ``[G, S]`` and metrics; the parts of a multi-process run
    are put back together (seed blocks in process order). ``ConfigError`` if ``run_dir`` is not
    a run directory or holds no checkpoint yet."""
    run_dir = run_directory(run_dir)
    settings = rundir.read_settings(run_dir)
    processes = rundir.stored_process_count(run_dir)
    parts = [run_dir] if processes == 1 else [rundir.process_dir(run_dir, k) for k in range(processes)]
    for part in parts:
        _require_checkpoint(part, run_dir)
    facts = run_facts(settings)
    if processes == 1:
        checkpoint = rundir.restore_checkpoint(run_dir, abstract_states(facts), facts.metric_dtypes)
    else:
        checkpoint = _joined_parts(run_dir, facts, processes)
    return LoadedRun(run_dir, settings, facts.trainer, checkpoint.states, checkpoint.metrics, checkpoint.iteration,
                     facts.points)  # fmt: skip


def _joined_parts(run_dir: Path, facts: RunFacts, processes: int):
    names = facts.metric_dtypes
    parts = [
        rundir.restore_checkpoint(
            rundir.process_dir(run_dir, k),
            abstract_states(facts, process_seed_range(facts.settings.seeds, k, processes)),
            names,
        )
        for k in range(processes)
    ]
    iteration = min(p.iteration for p in parts)
    if any(p.iteration != iteration for p in parts):
        raise ConfigError(f"the parts of {run_dir} stopped at different iterations; resume the run to finish them")
    return rundir.Checkpoint(
        iteration=iteration,
        states=jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *(p.states for p in parts)),
        metrics={k: np.concatenate([np.asarray(p.metrics[k]) for p in parts], axis=1) for k in names},
    )


def _check_index(name: str, value, count: int, what: str, run_dir: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name}={value!r} must be an integer index; pass {name}=0..{count - 1}")
    if not 0 <= value < count:
        raise ConfigError(f"{name}={value} is out of range: {run_dir} has {count} {what}; pass {name}=0..{count - 1}")
    return int(value)


class Policy:
    """One trained agent of a run directory (what ``load_policy`` returns).

    ``policy(obs, key=None) -> action``: a jax array, jitted and itself jit-able; ``obs`` is one
    observation of shape ``obs_shape`` or a batch ``[N, *obs_shape]``. A deterministic policy
    (the mode of its action distribution) needs no key; a stochastic one samples and needs
    one (``ConfigError`` without).

    ``policy.predict(obs, key=None) -> action``: the same action on the host, for an env loop
    outside jax such as gymnasium's: a Python ``int`` for one observation of a discrete-action
    env, else a NumPy array (a batch, or a continuous action, clipped to the env's bounds).
    Without a key a stochastic policy samples with its own key sequence, which starts anew
    (at ``jax.random.key(0)``) with every ``load_policy``, so a loop repeats exactly.

    ``action_mask`` (``bool [num_actions]`` per observation; MultiDiscrete: the sub-actions'
    masks side by side) restricts both to the allowed actions, as in training.
    Observation normalisation (if the run used it) is applied with the agent's final statistics.

    A recurrent policy (``policy.recurrent``) remembers through a carry that the caller passes
    along: ``policy(obs, key=None, action_mask=None, carry=None) -> (action, carry)`` and
    ``policy.predict(..., carry=None) -> (action, carry)``; ``carry=None`` (or
    ``policy.initial_carry(batch)``) starts an episode, so pass it where the env reset.
    """

    def __init__(self, act, obs_shape: tuple[int, ...], action_kind: str, deterministic: bool, initial_carry=None,
                 recurrent: bool = False):  # fmt: skip
        self._act = act  # jitted (obs, key, action_mask, carry) -> action, or (action, carry) when recurrent
        self.obs_shape = dict(obs_shape) if isinstance(obs_shape, dict) else tuple(obs_shape)
        self.action_kind = action_kind
        self.deterministic = deterministic
        self._initial_carry = initial_carry  # num_envs -> carry (None for a feed-forward policy)
        self.recurrent = recurrent
        self._key = jax.random.key(0)  # predict's sequence; also the (unused) key of a deterministic call

    def initial_carry(self, batch: int | None = None):
        """A fresh episode's carry: for one observation, or for a batch of ``batch``."""
        if not self.recurrent:
            raise ConfigError("this policy is feed-forward: it has no carry; call policy(obs) without one")
        carry = self._initial_carry(1 if batch is None else batch)
        return jax.tree.map(lambda c: c[0], carry) if batch is None else carry

    def __call__(self, obs, key=None, action_mask=None, carry=None):
        obs = self._observation(obs)
        if key is None:
            if not self.deterministic:
                raise ConfigError("this policy samples its actions (deterministic=False): pass a key, "
                                  "policy(obs, jax.random.key(0)), or call policy.predict(obs)")  # fmt: skip
            key = self._key
        if carry is not None and not self.recurrent:
            raise ConfigError("this policy is feed-forward: it takes no carry; call policy(obs, key)")
        return self._act(obs, key, action_mask, carry)

    def predict(self, obs, key=None, action_mask=None, carry=None):
        if key is None and not self.deterministic:
            self._key, key = jax.random.split(self._key)
        out = self(obs, key, action_mask, carry)
        action, carry = out if self.recurrent else (out, None)
        action = np.asarray(action)
        action = int(action) if self.action_kind == "discrete" and action.ndim == 0 else action
        return (action, carry) if self.recurrent else action

    def _observation(self, obs):
        """``obs`` as an array of one observation or a batch; ``ConfigError`` naming the shape it takes."""
        if isinstance(self.obs_shape, dict):  # a Dict observation space: every key, each leaf checked
            if not isinstance(obs, dict) or set(obs) != set(self.obs_shape):
                raise ConfigError(f"this policy takes a dict with the keys {sorted(self.obs_shape)}, got {obs!r:.60}")
            return {key: Policy(None, shape, self.action_kind, True)._observation(obs[key])
                    for key, shape in self.obs_shape.items()}  # fmt: skip
        batch = ", ".join(["N", *map(str, self.obs_shape)])
        expected = f"one observation of shape {self.obs_shape} or a batch of shape ({batch})"
        if not isinstance(obs, jax.Array):  # host data; a jax array (or a tracer under jit) stays as it is
            try:
                obs = np.asarray(obs, np.float32)
            except (TypeError, ValueError):
                raise ConfigError(f"observation {obs!r:.60} is not numeric; this policy takes {expected}") from None
        shape = tuple(obs.shape)
        if shape != self.obs_shape and (len(shape) != len(self.obs_shape) + 1 or shape[1:] != self.obs_shape):
            raise ConfigError(f"observation of shape {shape} does not fit this policy, which takes {expected}")
        return obs

    def __repr__(self) -> str:
        mode = "deterministic" if self.deterministic else "stochastic"
        return f"Policy({mode}, obs_shape={self.obs_shape}, action_kind={self.action_kind!r})"


def load_policy(run_dir, seed: int = 0, grid_point: int = 0, deterministic: bool = True) -> Policy:
    """One trained agent of a run directory as a ``Policy``: ``policy(obs, key=None)`` (jax)
    and ``policy.predict(obs)`` (NumPy / Python actions for a host-side env loop).

    ``seed`` and ``grid_point`` index the run's seeds and grid points (``ConfigError`` when out
    of range); ``deterministic``: the mode of the action distribution, else a sample.
    """
    run, agent = load_agent(run_dir, seed, grid_point)
    act = make_act(run.trainer, deterministic)
    jitted = jax.jit(lambda obs, key, mask=None, carry=None: act(agent.params, agent.obs_stats, obs, key, mask, carry))
    policy = run.trainer.policy
    return Policy(jitted, run.trainer.spec.obs_shape, run.trainer.spec.action_kind, deterministic,
                  policy.initial_carry, policy.recurrent)  # fmt: skip


def check_agent(run_dir, seed: int = 0, grid_point: int = 0) -> tuple[Path, RunSettings, int, int]:
    """``(run_dir, settings, seed, grid_point)`` of one agent of a run, checked without reading its
    checkpoint (``ConfigError`` for what is not a run, or an index out of range)."""
    run_dir = run_directory(run_dir)
    settings = rundir.read_settings(run_dir)
    seed = _check_index("seed", seed, settings.seeds, "seed(s)", run_dir)
    grid_point = _check_index("grid_point", grid_point, settings.grid_size, "grid point(s)", run_dir)
    return run_dir, settings, seed, grid_point


def load_agent(run_dir, seed: int = 0, grid_point: int = 0) -> tuple[LoadedRun, Any]:
    """The run and the ``TrainState`` of its agent (``grid_point``, ``seed``), from the latest checkpoint."""
    run_dir, _, seed, grid_point = check_agent(run_dir, seed, grid_point)
    run = load_run(run_dir)
    return run, jax.tree.map(lambda x: x[grid_point, seed], run.states)
