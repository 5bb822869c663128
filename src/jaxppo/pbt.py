"""Population-based training (Jaderberg et al. 2017) inside the compiled run.

The seeds of a run (of each grid point) form a population. Every ``interval`` iterations, before
the next iteration's rollout, each population is ranked by its members' mean return over the
episodes they completed since the previous exploit; each member of the bottom ``quantile`` copies
the learner state of a member drawn from the top ``quantile`` (when that member scored higher),
and explores: each searched hyperparameter is multiplied by one of ``perturb_factors`` or, with
``resample_probability``, drawn again from its range, and clipped to the range.

The hyperparameters are a traced pytree, so exploring is new numbers, never a recompile: the whole
run stays one program (``make_pbt_train``; the command line's ``--pbt``). What one member copies
from another is its learner (``LEARNER_FIELDS``): never its env state, episode statistics or key.

A population's per-member state between iterations (``Population``) is recorded in the metrics of
every iteration (``METRICS``: the hyperparameters the iteration used, the window's return sum and
episode count, and the parent copied before it, or -1), so a checkpoint's metrics continue it
exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import HPARAM_NAMES, ConfigError, PPOConfig, PPOHParams, hparam_range
from jaxppo.train import TrainResult, TrainState, make_trainer

DEFAULT_INTERVAL = 10  # iterations between exploits: several episodes per member on most envs
DEFAULT_QUANTILE = 0.25
DEFAULT_FACTORS = (0.8, 1.25)
DEFAULT_RESAMPLE_PROBABILITY = 0.25
# What a member copies from its parent: everything its learning has produced. Not the env state, the
# running episodes' statistics or the key: the child goes on in its own envs with its own randomness.
LEARNER_FIELDS = ("params", "opt_state", "obs_stats", "reward_stats", "carry", "diverged_at")
PARENT, WINDOW_RETURN, WINDOW_EPISODES = "pbt_parent", "pbt_window_return", "pbt_window_episodes"
METRIC_DTYPES = {PARENT: jnp.int32, WINDOW_RETURN: jnp.float32, WINDOW_EPISODES: jnp.int32,
                 **{f"hp_{name}": jnp.float32 for name in HPARAM_NAMES}}  # fmt: skip
METRICS = tuple(METRIC_DTYPES)
_STREAM = 0x5B7  # folds a run's base key into the population's own random stream


@dataclasses.dataclass(frozen=True)
class SearchRange:
    """The range ``[low, high]`` a traced hyperparameter explores (log-uniform draws with ``log``)."""

    name: str
    low: float
    high: float
    log: bool = False

    @classmethod
    def parse(cls, text: str) -> SearchRange:
        """``NAME=LOW:HIGH`` or ``NAME=LOW:HIGH:log`` (``--pbt-search``)."""
        fix = "write NAME=LOW:HIGH or NAME=LOW:HIGH:log (e.g. learning_rate=1e-5:1e-3:log)"
        name, sep, rest = str(text).partition("=")
        parts = rest.split(":")
        if not sep or not name.strip() or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ConfigError(f"--pbt-search {text!r} is malformed; {fix}")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ConfigError(f"--pbt-search {text!r}: LOW and HIGH must be numbers; {fix}") from None
        return cls(name.strip().replace("-", "_"), low, high, len(parts) == 3).checked()

    def checked(self) -> SearchRange:
        where = f"--pbt-search {self.text()}"
        if self.name not in HPARAM_NAMES:
            raise ConfigError(f"{where}: {self.name!r} is not a traced hyperparameter; choose from "
                              f"{', '.join(HPARAM_NAMES)}")  # fmt: skip
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ConfigError(f"{where}: LOW must be below HIGH, both finite")
        allowed_low, allowed_high = hparam_range(self.name)
        if self.low < allowed_low or self.high > allowed_high:
            raise ConfigError(f"{where}: {self.name} must lie in [{allowed_low}, {allowed_high}]; narrow the range")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log range needs LOW > 0")
        return self

    def text(self) -> str:
        return f"{self.name}={self.low:g}:{self.high:g}{':log' if self.log else ''}"

    def sample(self, key: jax.Array, shape) -> jax.Array:
        if self.log:
            return jnp.exp(jax.random.uniform(key, shape, jnp.float32, math.log(self.low), math.log(self.high)))
        return jax.random.uniform(key, shape, jnp.float32, self.low, self.high)

    def clip(self, value: jax.Array) -> jax.Array:
        return jnp.clip(value, self.low, self.high)


@dataclasses.dataclass(frozen=True)
class PBTConfig:
    """Population-based training's settings (static: changing them recompiles).

    ``search``: ``SearchRange`` items, ``"NAME=LOW:HIGH[:log]"`` strings, or a dict
    ``{name: (low, high)}`` / ``{name: (low, high, "log")}``; hyperparameters without a range never
    change. ``quantile``: the bottom share of each population that copies a member of the top share
    (at least one member, and at most half of the ranked members, copy at each exploit).
    """

    interval: int = DEFAULT_INTERVAL
    quantile: float = DEFAULT_QUANTILE
    search: tuple = ()
    perturb_factors: tuple[float, ...] = DEFAULT_FACTORS
    resample_probability: float = DEFAULT_RESAMPLE_PROBABILITY

    def __post_init__(self):
        object.__setattr__(self, "search", _search_ranges(self.search))
        object.__setattr__(self, "perturb_factors", tuple(float(f) for f in self.perturb_factors))

    def validate(self, population: int | None = None) -> None:
        """``ConfigError`` naming the first bad setting (``population``: the members per grid point)."""
        if isinstance(self.interval, bool) or not isinstance(self.interval, (int, np.integer)) or self.interval < 1:
            raise ConfigError(f"--pbt-interval must be a positive integer (iterations), got {self.interval!r}")
        if not 0 < self.quantile <= 0.5:
            raise ConfigError(f"--pbt-quantile must lie in (0, 0.5], got {self.quantile!r}; e.g. 0.25")
        if not self.perturb_factors or not all(f > 0 and math.isfinite(f) for f in self.perturb_factors):
            raise ConfigError(f"PBTConfig.perturb_factors must be positive numbers, got {self.perturb_factors!r}")
        if not 0 <= self.resample_probability <= 1:
            raise ConfigError(f"PBTConfig.resample_probability must lie in [0, 1], got {self.resample_probability!r}")
        names = [r.name for r in self.search]
        if len(set(names)) != len(names):
            raise ConfigError(f"--pbt-search names a hyperparameter twice ({', '.join(names)}); give one range each")
        if population is not None and population < 2:
            raise ConfigError(f"--pbt needs a population of at least 2 members, got {population}; "
                              f"pass --seeds 2 or more (e.g. --seeds 8)")  # fmt: skip

    def truncation(self, population: int) -> int:
        """How many members at most copy (and are copied from) at each exploit."""
        return max(1, int(self.quantile * population))

    def check_start(self, hparams: PPOHParams) -> None:
        """``ConfigError`` if a searched hyperparameter is set outside its range (concrete values)."""
        for r in self.search:
            value = getattr(hparams, r.name)
            if value is None or isinstance(value, jax.core.Tracer):
                continue
            values = np.asarray(value, np.float64)
            if np.any(values < r.low) or np.any(values > r.high):
                raise ConfigError(f"{r.name} starts at {value!r}, outside its --pbt-search range "
                                  f"[{r.low:g}, {r.high:g}]; widen the range or change the value")  # fmt: skip


def _search_ranges(search) -> tuple[SearchRange, ...]:
    if isinstance(search, dict):
        items = []
        for name, spec in search.items():
            spec = tuple(spec)
            if len(spec) not in (2, 3) or (len(spec) == 3 and spec[2] != "log"):
                raise ConfigError(f"PBTConfig.search[{name!r}] must be (low, high) or (low, high, 'log'), got {spec!r}")
            items.append(SearchRange(str(name), float(spec[0]), float(spec[1]), len(spec) == 3).checked())
        return tuple(items)
    if isinstance(search, (str, SearchRange)):
        search = (search,)
    out = []
    for item in search:
        if isinstance(item, SearchRange):
            out.append(item.checked())
        elif isinstance(item, str):
            out.append(SearchRange.parse(item))
        else:
            raise ConfigError(f"PBTConfig.search items must be 'NAME=LOW:HIGH[:log]' or SearchRange, got {item!r}")
    return tuple(out)


class Population(NamedTuple):
    """Each member's state between iterations, with the members on the last axis ``[..., P]``."""

    hparams: PPOHParams  # resolved: every field an array [..., P]
    window_return: jax.Array  # summed returns of the episodes completed since the previous exploit
    window_episodes: jax.Array  # how many episodes that is

    def score(self) -> jax.Array:
        """Mean return over the window; NaN for a member that completed no episode in it (not ranked)."""
        return jnp.where(self.window_episodes > 0, self.window_return / jnp.maximum(self.window_episodes, 1), jnp.nan)

    def record(self, metrics: dict) -> Population:
        """Add one iteration's completed episodes (``metrics`` as ``train.iteration_metrics`` gives them)."""
        episodes = metrics["episodes"]
        returns = jnp.where(episodes > 0, metrics["episode_return"] * episodes, 0.0)
        return self._replace(window_return=self.window_return + returns, window_episodes=self.window_episodes + episodes)

    def metrics(self, parent: jax.Array, used: PPOHParams) -> dict:
        """The population's entries in an iteration's metrics (``METRICS``)."""
        return {PARENT: parent, WINDOW_RETURN: self.window_return, WINDOW_EPISODES: self.window_episodes,
                **{f"hp_{name}": value for name, value in used.items()}}  # fmt: skip

    @classmethod
    def from_metrics(cls, metrics: dict) -> Population:
        """The population after the last iteration of ``metrics`` (``[..., P, n]``): resume's start."""
        last = lambda name: jnp.asarray(np.asarray(metrics[name])[..., -1])
        hparams = PPOHParams(**{name: last(f"hp_{name}") for name in HPARAM_NAMES})
        return cls(hparams, last(WINDOW_RETURN), last(WINDOW_EPISODES))


def population_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The population's own random streams, from a run's base key: ``(initial draws, exploits)``."""
    return tuple(jax.random.split(jax.random.fold_in(key, _STREAM)))


def initial_population(pbt: PBTConfig, hparams: PPOHParams, action_kind: str, key: jax.Array,
                       shape: tuple[int, ...]) -> Population:  # fmt: skip
    """Members ``shape`` (``[P]``, or ``[G, P]`` for a grid): a searched hyperparameter that
    ``hparams`` sets (a value, or a grid's ``[G]`` values) starts there in every member; one it
    leaves ``None`` starts from a draw in its range; the others take ``hparams``' values or the
    action space's defaults."""
    resolved = hparams.resolve(action_kind)
    fields = {}
    for index, (name, value) in enumerate(resolved.items()):
        value = jnp.asarray(value, jnp.float32)
        value = value.reshape(value.shape + (1,) * (len(shape) - value.ndim))  # a grid's [G] -> [G, 1]
        fields[name] = jnp.broadcast_to(value, shape)
        searched = [r for r in pbt.search if r.name == name]
        if searched and getattr(hparams, name) is None:
            fields[name] = searched[0].sample(jax.random.fold_in(key, index), shape)
    zeros = jnp.zeros(shape, jnp.float32)
    return Population(PPOHParams(**fields), zeros, jnp.zeros(shape, jnp.int32))


def exploit_and_explore(pbt: PBTConfig, key: jax.Array, states: TrainState, population: Population,
                        members: int) -> tuple[TrainState, Population, jax.Array]:  # fmt: skip
    """One population on axis 0 (``P`` entries, the first ``members`` of them real; the others pad
    it for the devices and never take part): ``(states, population, parent [P])``, ``parent`` -1
    where a member kept its own learner. Every window starts again afterwards."""
    size = population.window_episodes.shape[0]
    index = jnp.arange(size)
    score = population.score()
    ranked = (index < members) & jnp.isfinite(score)
    count = jnp.minimum(pbt.truncation(members), ranked.sum() // 2)
    ascending = jnp.argsort(jnp.where(ranked, score, jnp.inf), stable=True)
    descending = jnp.argsort(jnp.where(ranked, -score, jnp.inf), stable=True)
    rank = jnp.zeros(size, jnp.int32).at[ascending].set(index.astype(jnp.int32))  # 0: the lowest score
    pick_key, explore_key = jax.random.split(key)
    candidate = descending[jax.random.randint(pick_key, (size,), 0, jnp.maximum(count, 1))]
    # a bottom member copies a top one that did better (a tie leaves both as they are)
    copies = ranked & (rank < count) & (score[candidate] > score)
    parent = jnp.where(copies, candidate, index)
    copied = {name: jax.tree.map(lambda x: x[parent], getattr(states, name)) for name in LEARNER_FIELDS}
    states = states.replace(**copied)
    hparams = explore(pbt, explore_key, jax.tree.map(lambda x: x[parent], population.hparams), copies)
    zeros = jnp.zeros_like(population.window_return), jnp.zeros_like(population.window_episodes)
    return states, Population(hparams, *zeros), jnp.where(copies, parent, -1).astype(jnp.int32)


def explore(pbt: PBTConfig, key: jax.Array, hparams: PPOHParams, members: jax.Array) -> PPOHParams:
    """Each searched hyperparameter of ``members`` (a mask ``[P]``) perturbed by a factor drawn from
    ``perturb_factors``, or redrawn from its range with ``resample_probability``; then clipped."""
    fields = {}
    factors = jnp.asarray(pbt.perturb_factors, jnp.float32)
    for index, r in enumerate(pbt.search):
        value = getattr(hparams, r.name)
        resample_key, factor_key, draw_key = jax.random.split(jax.random.fold_in(key, index), 3)
        resample = jax.random.uniform(resample_key, value.shape) < pbt.resample_probability
        factor = factors[jax.random.randint(factor_key, value.shape, 0, factors.shape[0])]
        new = jnp.where(resample, r.sample(draw_key, value.shape), r.clip(value * factor))
        fields[r.name] = jnp.where(members, new, value)
    return hparams.replace(**fields)


def population_iteration(pbt: PBTConfig, step: Callable, key: jax.Array, members: int, carry, done: jax.Array):
    """One iteration of populations ``[..., P]`` (members on the last leading axis), ``done``
    iterations done before it (a scalar the caller counts: read from the members' states, it would
    cost the devices an exchange every iteration): the exploit when due (every ``pbt.interval``
    iterations, before the next rollout), then ``step(states, hparams [..., P]) -> (states,
    metrics)``; returns ``((states, population), metrics)``."""
    states, population = carry
    lead = population.window_episodes.ndim
    due = (done > 0) & (done % pbt.interval == 0)

    def exploit(operands):
        states, population = operands
        exploit_key = jax.random.fold_in(key, done)
        one = functools.partial(exploit_and_explore, pbt, members=members)
        if lead == 1:
            return one(exploit_key, states, population)
        # one population per grid point, each with its own stream
        return jax.vmap(one)(jax.random.split(exploit_key, population.window_episodes.shape[0]), states, population)

    def keep(operands):
        states, population = operands
        return states, population, jnp.full(population.window_episodes.shape, -1, jnp.int32)

    states, population, parent = jax.lax.cond(due, exploit, keep, (states, population))
    states, metrics = step(states, population.hparams)
    population = population.record(metrics)
    return (states, population), {**metrics, **population.metrics(parent, population.hparams)}


def make_pbt_train(config: PPOConfig, pbt: PBTConfig, env=None, env_params=None, *, network=None, optimizer=None):
    """Return ``train(key, hparams) -> TrainResult``: population-based training of ``len(key)``
    members as one pure, ``jit``-able function (``make_train``'s arguments, and ``pbt``).

    ``key``: the members' keys ``[P]`` (``jax.random.split(jax.random.key(0), P)``), ``P >= 2``;
    member ``p`` starts as ``make_train``'s run from ``key[p]`` does. ``hparams``: the starting
    hyperparameters (scalars; ``None`` fields of searched ones start from a draw in their range).
    Results are ``[P, ...]``; the metrics gain ``METRICS`` (each member's hyperparameters per
    iteration, the parent it copied before an iteration or -1). With an interval beyond the run,
    it equals ``jax.vmap(make_train(config))(key, hparams)``.
    """
    if not isinstance(pbt, PBTConfig):
        raise ConfigError(f"pbt must be a jaxppo.PBTConfig, got {type(pbt).__name__}")
    pbt.validate()
    trainer = make_trainer(config, env=env, env_params=env_params, network=network, optimizer=optimizer)

    def train(key: jax.Array, hparams: PPOHParams | None = None) -> TrainResult:
        hparams = PPOHParams() if hparams is None else hparams
        hparams.validate()
        pbt.check_start(hparams)
        if key.ndim != 1:
            raise ConfigError(f"train(key, ...) takes the members' keys [P], got shape {key.shape}; pass "
                              f"jax.random.split(jax.random.key(seed), P)")  # fmt: skip
        members = key.shape[0]
        pbt.validate(members)
        draws, stream = population_keys(key[0])
        population = initial_population(pbt, hparams, trainer.spec.action_kind, draws, (members,))
        states = jax.vmap(trainer.init)(key, population.hparams)
        step = jax.vmap(trainer.step)
        body = lambda carry, done: population_iteration(pbt, step, stream, members, carry, done)
        iterations = jnp.arange(trainer.config.num_iterations)
        (states, _), metrics = jax.lax.scan(body, (states, population), iterations)
        return TrainResult(metrics=jax.tree.map(lambda x: jnp.moveaxis(x, 0, -1), metrics), state=states)

    return train


def pbt_from_settings(interval: int | None, quantile: float | None, search) -> PBTConfig:
    """The command line's ``PBTConfig`` (``None``: the defaults), validated (settings arrive coerced to
    their types, so a malformed range is the one error left to parse: ``SearchRange.parse``'s)."""
    pbt = PBTConfig(interval=DEFAULT_INTERVAL if interval is None else interval,
                    quantile=DEFAULT_QUANTILE if quantile is None else quantile, search=tuple(search or ()))  # fmt: skip
    pbt.validate()
    return pbt


# ------------------------------------------------------------ what a run reports (host side)
def exploit_columns(searched: list[str]) -> list[str]:
    """pbt.csv's header: where and whom each copy concerned, then the searched values before and after."""
    fixed = ["iteration", "env_steps", "grid_point", "member", "parent", "member_score", "parent_score"]
    return fixed + [f"{name}_{when}" for name in searched for when in ("before", "after")]


def exploit_rows(metrics: dict, searched: list[str], batch_size: int, first_seed: int = 0) -> list[dict]:
    """pbt.csv's rows from a run's metrics ``[G, S, n]``: one per copy, in the order they happened,
    with both members' window scores and the searched hyperparameters before and after."""
    parent = np.asarray(metrics[PARENT])
    window = np.asarray(metrics[WINDOW_RETURN], np.float64) / np.maximum(np.asarray(metrics[WINDOW_EPISODES]), 1)
    rows = []
    for j, g, s in sorted((j, g, s) for g, s, j in zip(*np.nonzero(parent >= 0), strict=True)):
        p = int(parent[g, s, j])
        row = {"iteration": int(j), "env_steps": int(j) * batch_size, "grid_point": int(g),
               "member": first_seed + int(s), "parent": first_seed + p,
               "member_score": float(window[g, s, j - 1]), "parent_score": float(window[g, p, j - 1])}  # fmt: skip
        for name in searched:
            values = np.asarray(metrics[f"hp_{name}"])
            row[f"{name}_before"], row[f"{name}_after"] = (str(values[g, s, j - 1]), str(values[g, s, j]))
        rows.append(row)
    return rows


def population_summary(metrics: dict, final_returns: np.ndarray, g: int, first_seed: int = 0) -> dict:
    """summary.json's ``pbt`` entry of grid point ``g``: its best member and median by final return,
    how many copies happened, and every member's final hyperparameters."""
    final = np.asarray(final_returns, np.float64)
    finite = np.isfinite(final)
    best = int(np.nanargmax(np.where(finite, final, -np.inf))) if finite.any() else None
    hparams = [{name: float(str(np.asarray(metrics[f"hp_{name}"])[g, s, -1])) for name in HPARAM_NAMES}
               for s in range(final.shape[0])]  # fmt: skip
    return {
        "members": int(final.shape[0]),
        "exploits": int((np.asarray(metrics[PARENT])[g] >= 0).sum()),
        "best_member": None if best is None else first_seed + best,
        "best_return": None if best is None else float(final[best]),
        "median_return": float(np.median(final[finite])) if finite.any() else None,
        "best_hparams": None if best is None else hparams[best],
        "final_hparams": [{"seed": first_seed + s, **h} for s, h in enumerate(hparams)],
    }
