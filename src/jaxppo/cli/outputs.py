"""A finished run's outputs: metrics.csv, summary.json, the learning-curve plot and the console
table, made from a ``Part`` (the final results of a block of seeds).

A single process writes them from its own part; with several processes, each saves its part
and ``merge_parts`` puts the parts back together into the run's outputs (also
``python -m jaxppo.merge``).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from jaxppo import pbt, rundir
from jaxppo.config import ConfigError
from jaxppo.factories import RunFacts, run_facts
from jaxppo.plotting import curves_from_csv, render, render_population
from jaxppo.stats import summarize


@dataclasses.dataclass(frozen=True)
class Part:
    """A block of seeds' final results (all seeds, for a single process): what the run's
    summary, metrics.csv and plot are made from."""

    metrics: dict  # name -> [G, S, iterations]
    eval_returns: np.ndarray | None  # [G, S, episodes]
    diverged_at: np.ndarray  # [G, S]
    # Each leg that trained the run (a new run, then every --resume): {"iterations": [first,
    # last], "compile_seconds", "run_seconds", "chunk"}; seconds are None where they were not recorded.
    parts: tuple[dict, ...]

    FILE = "part.npz"

    @property
    def compile_seconds(self) -> float:
        return sum(p["compile_seconds"] or 0.0 for p in self.parts)

    @property
    def run_seconds(self) -> float:
        return sum(p["run_seconds"] or 0.0 for p in self.parts)

    def env_steps_per_second(self, agents: int, batch_size: int) -> float | None:
        """Over the parts whose run time is known: all of them, unless a run was resumed from a
        checkpoint saved without timings."""
        timed = [p for p in self.parts if p["run_seconds"]]
        seconds = sum(p["run_seconds"] for p in timed)
        iterations = sum(p["iterations"][1] - p["iterations"][0] for p in timed)
        return agents * iterations * batch_size / seconds if seconds > 0 else None

    def save(self, directory: Path) -> None:
        arrays = {f"metric/{k}": np.asarray(v) for k, v in self.metrics.items()}
        if self.eval_returns is not None:
            arrays["eval_returns"] = np.asarray(self.eval_returns)
        buffer = io.BytesIO()
        np.savez(buffer, diverged_at=self.diverged_at, parts=np.array(json.dumps(list(self.parts))),
                 **arrays)  # fmt: skip
        rundir.atomic_write_bytes(directory / self.FILE, buffer.getvalue())

    @classmethod
    def load(cls, directory: Path) -> Part:
        with np.load(directory / cls.FILE) as data:
            metrics = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("metric/")}
            eval_returns = data["eval_returns"] if "eval_returns" in data.files else None
            if "parts" in data.files:
                parts = tuple(json.loads(str(data["parts"])))
            else:  # saved before legs were recorded: one leg of the part's iterations
                compile_seconds, run_seconds = (float(x) for x in data["seconds"])
                iterations = int(np.shape(metrics["env_steps"])[-1])
                parts = ({"iterations": [0, iterations], "compile_seconds": compile_seconds,
                          "run_seconds": run_seconds},)  # fmt: skip
            return cls(metrics, eval_returns, data["diverged_at"], parts)

    @classmethod
    def concatenate(cls, parts: list[Part]) -> Part:
        """Seeds of consecutive parts side by side; timings of the slowest process in each leg."""
        return cls(
            metrics={k: np.concatenate([p.metrics[k] for p in parts], axis=1) for k in parts[0].metrics},
            eval_returns=None if parts[0].eval_returns is None
            else np.concatenate([p.eval_returns for p in parts], axis=1),
            diverged_at=np.concatenate([p.diverged_at for p in parts], axis=1),
            parts=tuple(_slowest(legs) for legs in zip(*(p.parts for p in parts), strict=True)),
        )  # fmt: skip


def _slowest(legs: tuple[dict, ...]) -> dict:
    """One leg's timings over the processes that trained it together."""

    def most(name):
        known = [s[name] for s in legs if s[name] is not None]
        return max(known) if known else None

    return {**legs[0], "compile_seconds": most("compile_seconds"), "run_seconds": most("run_seconds")}


def merge_parts(run_dir: Path) -> int:
    """Merge the ``process<K>/`` parts of a multi-process run into its metrics.csv, eval.csv,
    summary.json and plot (also ``python -m jaxppo.merge RUN`` after copying the parts in)."""
    run_dir = Path(run_dir)
    settings = rundir.read_settings(run_dir)
    count = rundir.stored_process_count(run_dir)
    directories = [rundir.process_dir(run_dir, k) for k in range(count)]
    missing = [str(d) for d in directories if not (d / Part.FILE).is_file()]
    if missing:
        raise ConfigError(f"{run_dir} lacks the finished part(s) {', '.join(missing)}; copy every process's "
                          f"process<K>/ directory into {run_dir} (or finish those processes), "
                          f"then merge again")  # fmt: skip
    facts = run_facts(settings)
    eval_rows = [
        row for d in directories if (d / rundir.EVAL_FILE).is_file() for row in rundir.read_csv(d / rundir.EVAL_FILE)
    ]
    if eval_rows:
        rundir.atomic_write_text(run_dir / rundir.EVAL_FILE, rundir.rows_csv(eval_rows))
    write_outputs(run_dir, facts, Part.concatenate([Part.load(d) for d in directories]))
    return 0


def write_outputs(run_dir: Path, facts: RunFacts, part: Part, metrics_written: bool = False) -> None:
    """The run's metrics.csv (unless ``metrics_written``), summary.json and learning-curve plot,
    and the console table."""
    settings = facts.settings
    if not metrics_written:
        write_metrics(run_dir, facts, part.metrics)
    summary = _summary(facts, part)
    rundir.atomic_write_text(run_dir / rundir.SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    curves = curves_from_csv(run_dir / rundir.METRICS_FILE)
    rundir.atomic_write_bytes(run_dir / rundir.PLOT_FILE, render(curves, f"{settings.config.env_id}, PPO"))
    if settings.pbt:
        write_population(run_dir, facts, part.metrics)
    print(_table(summary, run_dir))


def write_metrics(run_dir: Path, facts: RunFacts, metrics: dict, first_seed: int = 0) -> None:
    """metrics.csv of ``metrics`` ``[G, S, n]``, whose seed ``s`` is the run's ``first_seed + s``."""
    rundir.atomic_write_text(run_dir / rundir.METRICS_FILE, rundir.metrics_csv(metrics, facts.hparam_rows, first_seed))


def write_population(run_dir: Path, facts: RunFacts, metrics: dict) -> None:
    """A ``--pbt`` run's pbt.csv (every copy) and pbt.png (the members' returns and schedules)."""
    trainer, settings = facts.trainer, facts.settings
    searched = settings.pbt_config().search
    names = [r.name for r in searched]
    rows = pbt.exploit_rows(metrics, names, trainer.config.batch_size)
    rundir.atomic_write_text(run_dir / rundir.PBT_FILE, rundir.rows_csv(rows, pbt.exploit_columns(names)))
    png = render_population(metrics, [(r.name, r.log) for r in searched], trainer.config.batch_size,
                            f"{settings.config.env_id}, PBT")  # fmt: skip
    rundir.atomic_write_bytes(run_dir / rundir.PBT_PLOT_FILE, png)


RECENT_ITERATIONS = 10  # the window of the summary's per-episode statistics


def _recent_mean(values: np.ndarray) -> np.ndarray:
    """``[G, S, n]`` per-iteration means (NaN where no episode ended) -> ``[G, S]``: the mean of
    each seed's last ``RECENT_ITERATIONS`` finite values (NaN if it has none)."""
    finite = ~np.isnan(values)
    rank = np.cumsum(finite[..., ::-1], axis=-1)[..., ::-1]  # how many finite values from here on
    window = finite & (rank <= RECENT_ITERATIONS)
    count = window.sum(-1)
    total = np.where(window, values, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


NONFINITE_NAMES = {1: "observation", 2: "reward"}  # train.NONFINITE_* bits


def first_nonfinite_env_outputs(env_nonfinite: np.ndarray, first_iteration: int = 1) -> dict:
    """``{(g, s): (iteration, [what, ...])}``: for every agent whose env returned a NaN or inf,
    the first iteration it did (``env_nonfinite`` [G, S, n] holds iterations ``first_iteration``
    onwards) and which outputs were non-finite in that iteration."""
    env_nonfinite = np.asarray(env_nonfinite)
    found = {}
    for g, s in zip(*np.nonzero(env_nonfinite.any(axis=-1)), strict=True):
        i = int(np.argmax(env_nonfinite[g, s] != 0))
        bits = int(env_nonfinite[g, s, i])
        found[int(g), int(s)] = (first_iteration + i, [name for bit, name in NONFINITE_NAMES.items() if bits & bit])
    return found


def nonfinite_env_message(env_id: str, seed: int, grid_point: int, iteration: int, what: list[str]) -> str:
    """One line for an agent whose env returned a NaN or inf."""
    return (f"jaxppo: warning: {env_id} returned a non-finite (NaN or inf) {' and '.join(what)} to seed {seed} "
            f"(grid point {grid_point}) in iteration {iteration}; that agent is frozen from the first update "
            f"this makes non-finite (the other agents train on): check the env's step")


def _summary(facts: RunFacts, part: Part) -> dict:
    trainer, settings, points, rows = facts.trainer, facts.settings, facts.points, facts.hparam_rows
    metrics, eval_returns, diverged_at = part.metrics, part.eval_returns, part.diverged_at
    compile_seconds, run_seconds = part.compile_seconds, part.run_seconds
    final = np.asarray(metrics["episode_return_last100"])[:, :, -1]  # [G, S]
    steps = int(np.asarray(metrics["env_steps"])[0, 0, -1])
    agents = len(points) * settings.seeds
    out = {"env_id": settings.config.env_id, "seeds": settings.seeds, "env_steps_per_seed": steps,
           "compile_seconds": compile_seconds, "run_seconds": run_seconds,
           "env_steps_per_second": part.env_steps_per_second(agents, trainer.config.batch_size),
           # Timings add up over the legs that trained the run (a new run, then each --resume).
           "parts": list(part.parts),
           "final_return_definition": "per seed: mean raw return of its last 100 completed episodes",
           "grid_points": []}  # fmt: skip
    episode_metrics = {name[len("episode/"):]: _recent_mean(np.asarray(v, np.float64))
                       for name, v in metrics.items() if name.startswith("episode/")}  # fmt: skip
    if episode_metrics:
        out["episode_metrics_definition"] = (
            f"per seed: mean over its last {RECENT_ITERATIONS} iterations that completed an episode "
            "of each iteration's mean over its completed episodes")
    nonfinite = first_nonfinite_env_outputs(metrics["env_nonfinite"]) if "env_nonfinite" in metrics else {}
    for g, point in enumerate(points):
        entry = {
            "grid_point": g,
            "swept": point,
            "hparams": rows[g],
            "final_return": summarize(final[g]),
            "final_return_per_seed": [None if np.isnan(v) else float(v) for v in final[g]],
            # All grid points train in the same compiled call: they share its timings.
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
            "env_steps_per_second": out["env_steps_per_second"],
            # Non-finite loss or parameters: updates rejected from that iteration on (frozen).
            "diverged": [{"seed": s, "iteration": int(i)} for s, i in enumerate(diverged_at[g]) if i >= 0],
            # The env's own NaN or inf: the first iteration of each seed that received one, and what.
            "env_nonfinite": [{"seed": s, "iteration": it, "outputs": what}
                              for (gp, s), (it, what) in sorted(nonfinite.items()) if gp == g],
        }
        if episode_metrics:
            entry["episode_metrics"] = {name: summarize(v[g]) for name, v in episode_metrics.items()}
        if settings.pbt:
            entry["pbt"] = pbt.population_summary(metrics, final[g], g)
        if eval_returns is not None:
            entry["eval_return"] = summarize(eval_returns[g].mean(axis=-1))
            entry["eval_return_per_seed"] = eval_returns[g].mean(axis=-1).tolist()
        out["grid_points"].append(entry)
    means = [p["final_return"]["mean"] for p in out["grid_points"]]
    out["best_grid_point"] = int(np.nanargmax(means)) if np.isfinite(means).any() else None
    return out


def _table(summary: dict, run_dir: Path) -> str:
    lines = [f"\n{summary['env_id']}: final return (mean of last 100 episodes) over {summary['seeds']} seed(s), "
             f"{summary['env_steps_per_seed']} env steps per seed"]  # fmt: skip
    header = f"  {'':2}{'grid point':<40} {'mean ± std':>20} {'95% CI':>22}"
    has_eval = "eval_return" in summary["grid_points"][0]
    lines.append(header + (f" {'eval':>10}" if has_eval else ""))
    for point in summary["grid_points"]:
        label = ", ".join(f"{k}={v:g}" for k, v in point["swept"].items()) or "defaults"
        r = point["final_return"]
        mark = "* " if point["grid_point"] == summary["best_grid_point"] and len(summary["grid_points"]) > 1 else "  "
        row = f"  {mark}{label:<40} {r['mean']:>10.2f} ± {r['std']:<7.2f} [{r['ci95'][0]:>9.2f}, {r['ci95'][1]:>9.2f}]"
        if has_eval:
            row += f" {point['eval_return']['mean']:>10.2f}"
        if point["diverged"]:
            first = min(d["iteration"] for d in point["diverged"])
            row += f"  DIVERGED: {len(point['diverged'])} seed(s), first at iteration {first} (frozen)"
        if point.get("env_nonfinite"):
            first = min(d["iteration"] for d in point["env_nonfinite"])
            row += f"  ENV NaN/inf: {len(point['env_nonfinite'])} seed(s), first in iteration {first}"
        lines.append(row)
        if "pbt" in point:
            population = point["pbt"]
            best = "" if population["best_member"] is None else (
                f"; best member: seed {population['best_member']} ({population['best_return']:.2f}), "
                f"median {population['median_return']:.2f}")
            lines.append(f"    PBT: {population['exploits']} copies among {population['members']} members{best}")
    lines.append(f"compile {summary['compile_seconds']:.1f} s, run {summary['run_seconds']:.1f} s, "
                 f"{summary['env_steps_per_second'] or 0:,.0f} env steps/s")  # fmt: skip
    names = (rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.EVAL_FILE, rundir.SUMMARY_FILE, rundir.PLOT_FILE,
             rundir.PBT_FILE, rundir.PBT_PLOT_FILE, rundir.CHECKPOINT_DIR, "tensorboard", "videos")  # fmt: skip
    lines.append("wrote: " + ", ".join(str(run_dir / n) for n in names if (run_dir / n).exists()))
    return "\n".join(lines)
