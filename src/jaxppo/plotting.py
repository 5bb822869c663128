"""Learning-curve plots as PNG bytes (the ``python -m jaxppo.plot`` command, ``jaxppo.cli.plot``, writes them).

A curve is the per-iteration mean raw episode return, carried forward through iterations
that finished no episode (with ``--smooth W``, then averaged over a trailing window of W
iterations), averaged over seeds. The band is a 95 % percentile-bootstrap confidence interval
of that mean across seeds (1000 resamples, a fixed seed: the same runs give the same plot); it
stays within the returns the seeds reached, e.g. under CartPole's 500.
"""

from __future__ import annotations

import io
import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from jaxppo.config import ConfigError
from jaxppo.stats import bootstrap_mean_band


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward along the last axis (leading NaNs stay NaN)."""
    values = np.asarray(values, np.float64)
    index = np.where(np.isnan(values), 0, np.arange(values.shape[-1]))
    np.maximum.accumulate(index, axis=-1, out=index)
    filled = np.take_along_axis(values, index, axis=-1)
    return filled


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of the finite values among the last ``window`` along the last axis (NaN where none)."""
    values = np.asarray(values, np.float64)
    if window <= 1:
        return values
    finite = ~np.isnan(values)
    pad = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    # Prefix sums: the window ending at i sums prefix[i + 1] - prefix[max(i + 1 - window, 0)].
    sums = np.pad(np.cumsum(np.where(finite, values, 0.0), axis=-1), pad)
    counts = np.pad(np.cumsum(finite, axis=-1), pad)
    start = np.maximum(np.arange(1, values.shape[-1] + 1) - window, 0)
    total, count = sums[..., 1:] - sums[..., start], counts[..., 1:] - counts[..., start]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def curve_band(returns: np.ndarray, smooth: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of ``returns`` ``[S, n]`` (forward-filled, then ``smooth``ed over a trailing
    window of iterations) and its 95 % bootstrap band ``(mean, low, high)``."""
    filled = trailing_mean(forward_fill(returns), smooth)
    with warnings.catch_warnings():  # all-NaN columns (no episode finished yet) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(filled, axis=0)
    low, high = bootstrap_mean_band(filled)
    return mean, low, high


def render(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str, smooth: int = 1) -> bytes:
    """PNG bytes: one labelled line with its band per ``(label, env_steps [n], returns [S, n])``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for label, steps, returns in curves:
        mean, low, high = curve_band(returns, smooth)
        (line,) = ax.plot(steps, mean, label=f"{label} (n={returns.shape[0]})", linewidth=1.8)
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return (raw" + (f", mean of {smooth} iterations)" if smooth > 1 else ")"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    if curves:
        ax.legend(loc="best", fontsize="small", title="mean, 95 % bootstrap CI over seeds", title_fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_population(metrics: dict, searched: list[tuple[str, bool]], batch_size: int, title: str) -> bytes:
    """PNG bytes of a ``--pbt`` run: per grid point (a column), every member's return (the mean of its
    last 100 episodes) and each searched hyperparameter's schedule (``(name, log)``), against env
    steps; a copy shows as a jump of the member's line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = np.asarray(metrics["episode_return_last100"], np.float64)  # [G, S, n]
    grid_size, seeds, iterations = returns.shape
    steps = np.arange(1, iterations + 1) * batch_size
    rows = 1 + len(searched)
    fig, axes = plt.subplots(rows, grid_size, figsize=(6 * grid_size, 2.6 * rows), dpi=110, sharex=True,
                             squeeze=False)  # fmt: skip
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, seeds))
    for g in range(grid_size):
        for s in range(seeds):
            axes[0, g].plot(steps, returns[g, s], color=colors[s], linewidth=0.9)
            for r, (name, _) in enumerate(searched, start=1):
                axes[r, g].plot(steps, np.asarray(metrics[f"hp_{name}"])[g, s], color=colors[s], linewidth=0.9)
        axes[0, g].set_title(f"{title}{f', grid point {g}' if grid_size > 1 else ''}: {seeds} members")
        axes[0, g].set_ylabel("return (last 100)")
        for r, (name, log) in enumerate(searched, start=1):
            axes[r, g].set_ylabel(name)
            if log:
                axes[r, g].set_yscale("log")
        for ax in axes[:, g]:
            ax.grid(alpha=0.3)
        axes[-1, g].set_xlabel("environment steps per member")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def grid_curves(path: Path) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Per grid point of a metrics.csv: ``(hyperparameters, env_steps [n], episode_return [S, n])``."""
    from jaxppo.rundir import HPARAM_NAMES, read_csv

    rows = read_csv(path)
    if not rows:
        raise ConfigError(f"{path} has no rows; the run recorded no iteration yet")
    by_point = defaultdict(lambda: defaultdict(dict))
    values = defaultdict(lambda: defaultdict(set))  # grid point -> name -> the values its rows hold
    try:
        for row in rows:
            g = int(row["grid_point"])
            by_point[g][int(row["seed"])][int(row["iteration"])] = (int(row["env_steps"]), float(row["episode_return"]))
            for name in HPARAM_NAMES:
                values[g][name].add(float(row[f"hp_{name}"]))
        # a grid point's hyperparameters; those that vary inside it (a --pbt run's searched ones) describe no point
        hparams = {g: {name: next(iter(v)) for name, v in by_name.items() if len(v) == 1} for g, by_name in values.items()}
        curves = []
        for g, seeds in sorted(by_point.items()):
            iterations = sorted(next(iter(seeds.values())))
            steps = np.array([seeds[min(seeds)][i][0] for i in iterations])
            returns = np.array([[seeds[s][i][1] for i in iterations] for s in sorted(seeds)])
            curves.append((hparams[g], steps, returns))
    except (KeyError, ValueError, TypeError) as error:
        raise ConfigError(f"{path} is not a metrics.csv this jaxppo version wrote ({type(error).__name__}: "
                          f"{error})") from None  # fmt: skip
    return curves


def curves_from_csv(path: Path, prefix: str = "") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``render``'s curves of one run, each labelled by the hyperparameters its grid point sweeps."""
    curves = grid_curves(path)
    labels = _labels([point for point, _, _ in curves])
    return [(f"{prefix}{label}", steps, returns) for label, (_, steps, returns) in zip(labels, curves, strict=True)]


def _format(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _varying(descriptions: list[dict]) -> list[str]:
    """The keys whose values differ between ``descriptions`` (in first-seen order)."""
    keys = list(dict.fromkeys(k for d in descriptions for k in d))
    return [k for k in keys if len({_format(d.get(k)) for d in descriptions}) > 1]


def _labels(descriptions: list[dict]) -> list[str]:
    varying = _varying(descriptions)
    return [", ".join(f"{k}={_format(d.get(k))}" for k in varying) or "defaults" for d in descriptions]


def _run_description(run_dir: Path) -> dict:
    """What tells a run's curves apart from another run's: env, settings (as resolved), base seed."""
    from jaxppo.rundir import CONFIG_FILE, read_settings

    settings = read_settings(run_dir)
    stored = json.loads((run_dir / CONFIG_FILE).read_text())
    config = dict(stored.get("resolved_config") or settings.to_json()["config"])
    config.pop("env_id", None)
    return {"env": settings.config.env_id, **config, "base_seed": settings.seed}


def comparison(run_dirs) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], str, list[str]]:
    """``render``'s curves of several runs, their title and warnings: each curve is labelled by what
    differs between the curves (env, swept values, settings), the title names the env(s) and what is
    swept; a warning when the runs are of different envs."""
    from jaxppo.loading import run_directory
    from jaxppo.rundir import METRICS_FILE

    descriptions, curves, names = [], [], []
    for run_dir in map(run_directory, run_dirs):
        if not (run_dir / METRICS_FILE).is_file():
            raise ConfigError(f"{run_dir} has no {METRICS_FILE} yet; plot it once its run has written one")
        run = _run_description(run_dir)
        for hparams, steps, returns in grid_curves(run_dir / METRICS_FILE):
            descriptions.append({"env": run["env"], **hparams, **run})
            curves.append((steps, returns))
            names.append(run_dir.name)
    labels = _labels(descriptions)
    if len(set(labels)) < len(labels):  # the same settings twice: only the directories tell them apart
        labels = [f"{label} ({name})" for label, name in zip(labels, names, strict=True)]
    envs = list(dict.fromkeys(d["env"] for d in descriptions))
    swept = [k for k in _varying(descriptions) if k != "env"]
    title = " vs ".join(envs) + ", PPO" + (f", sweeping {', '.join(swept)}" if swept else "")
    notes = []
    if len(envs) > 1:
        per_run = ", ".join(f"{n}: {d['env']}" for n, d in dict(zip(names, descriptions, strict=True)).items())
        notes.append(f"these runs are of different envs ({per_run}); their returns are on different scales")
    return [(label, *curve) for label, curve in zip(labels, curves, strict=True)], title, notes
