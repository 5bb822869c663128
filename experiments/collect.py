#!/usr/bin/env python
"""Collect the suite's run directories into experiments/RESULTS.md and PNGs under docs/.

    python experiments/collect.py [--runs experiments/runs] [--docs docs]

Each row that has a run directory under ``--runs`` gets its fragment written anew to
``experiments/results/<row>.md`` (committed, with the commit and machine it ran on); RESULTS.md is
then assembled from all fragments, so rows run at different times keep their numbers. Rows
without a fragment are listed as not run; nothing is invented.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from jaxppo.plot import curves_from_csv, render
from jaxppo.rundir import atomic_write_bytes, atomic_write_text

# row -> (what, published anchor, target as (kind, value) or None)
ROWS = {
    "cartpole": ("CartPole-v1, CleanRL `ppo.py` defaults, 500k steps", "CleanRL 490.04 ± 6.12", (">=", 490)),
    "acrobot": ("Acrobot-v1, same", "CleanRL -86.36 ± 1.32", (">=", -90)),
    "mountaincar": ("MountainCar-v0, gymnax-blines config", "blines -118; CleanRL defaults -200", (">=", -140)),
    "pendulum_bootstrap": ("Pendulum-v1, continuous defaults, bootstrap", "blines -130", (">=", -200)),
    "pendulum_terminate": ("Pendulum-v1, continuous defaults, terminate", "CleanRL-style about -900", None),
    "mountaincarcontinuous": ("MountainCarContinuous-v0, continuous defaults", "blines 92", ("frac>", 90)),
    "breakout": ("Breakout-MinAtar, blines config and networks (2 x 256 relu), 10M steps", "blines 28", (">=", 28)),
    "asterix": (
        "Asterix-MinAtar, blines config and networks (its ppo.yaml equals Breakout's), 10M steps",
        "blines: a learning curve only, no number",
        None,
    ),
    "navix_empty5x5": ("navix/Navix-Empty-5x5-v0, 16 envs x 128 steps, lr 1e-3, 200k steps", "optimum 1.0 in 5 steps", (">=", 0.95)),
    "xminigrid_empty6x6": ("xminigrid/MiniGrid-Empty-6x6, same config", "optimum 0.956 in 7 steps", (">=", 0.9)),
    "jumanji_game2048": ("jumanji/Game2048-v1 with masks, 64 envs x 128 steps, 128-128 relu, normalised, 1.5M steps",
                         "masked random policy about 1,070", None),
    "craftax_classic_short": ("craftax/Craftax-Classic-Symbolic-v1, craftax's PPO hyperparameters, 128 envs x 64 steps, "
                              "2 x 256 relu, 131k steps", "the first iteration (untrained policy): 0.39 (see the achievements below)", None),
    "brax_inverted_pendulum": ("brax/inverted_pendulum (positional), 16 envs x 128 steps, 32 minibatches x 10 epochs, 500k steps",
                               "optimum 1000 (the pole kept up for the whole episode)", (">=", 950)),
    "pgx_breakout_cnn": ("pgx/minatar-breakout as gymnax's (no sticky actions, time limit 1000), the breakout_cnn row's config, 1M steps",
                         "gymnax Breakout-MinAtar, same config: row breakout_cnn", None),
    "pgx_breakout": ("pgx/minatar-breakout (sticky actions 0.1), blines config and networks, 10M steps",
                     "gymnax Breakout-MinAtar, same config: 46.32", None),
    "breakout_default_networks": (
        "Breakout-MinAtar, the table's blines-like config, default 64-64 tanh networks, 10M steps",
        "blines 28",
        (">=", 28),
    ),
}


# MinAtar with the default encoder (a CNN), and the same config with the image flattened
MINATAR_GAMES = {"breakout": "Breakout", "asterix": "Asterix", "freeway": "Freeway", "spaceinvaders": "SpaceInvaders",
                 "seaquest": "Seaquest"}
for _row, _game in MINATAR_GAMES.items():
    ROWS[f"{_row}_cnn"] = (f"{_game}-MinAtar, default encoder (CNN 16 x 3 x 3) + 128 relu, blines hyperparameters, 1M steps",
                           f"row {_row}_cnn_mlp (the flattened image, same budget)", None)  # fmt: skip
    ROWS[f"{_row}_cnn_mlp"] = (f"{_game}-MinAtar, same config with the image flattened (encoder mlp), 1M steps", "—", None)


def verdict(target, mean: float, per_seed: list) -> str:
    if target is None:
        return "—"
    kind, value = target
    if kind == "frac>":
        finite = [v for v in per_seed if v is not None]
        return f"{sum(v > value for v in finite)}/{len(finite)} seeds > {value}"
    return ("meets" if mean >= value else "misses") + f" ≥ {value}"


def heatmap(summary: dict, title: str) -> bytes | None:
    points = summary["grid_points"]
    names = list(points[0]["swept"])
    if len(names) != 2:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted({p["swept"][names[0]] for p in points})
    ys = sorted({p["swept"][names[1]] for p in points})
    grid = np.full((len(ys), len(xs)), np.nan)
    for p in points:
        grid[ys.index(p["swept"][names[1]]), xs.index(p["swept"][names[0]])] = p["final_return"]["mean"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="w" if value < np.nanmean(grid) else "k")
    fig.colorbar(image, label="final return (mean over seeds)")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def provenance(run: Path) -> str:
    """The commit and machine a run directory was trained with (from its config.json)."""
    env = json.loads((run / "config.json").read_text()).get("environment", {})
    cores, machine = env.get("cpu_count") or os.cpu_count(), env.get("machine") or platform.machine()
    return f"commit {env.get('commit') or '?'}, {cores}-core {machine} {env.get('platform', 'cpu').upper()}"


def row_fragment(name: str, run: Path, summary: dict) -> str:
    what, anchor, target = ROWS[name]
    point = summary["grid_points"][0]
    r = point["final_return"]
    ev = point.get("eval_return", {}).get("mean")
    wall = summary["compile_seconds"] + summary["run_seconds"]
    return (
        f"| {what} | {summary['seeds']} | {summary['env_steps_per_seed']:,} | {r['mean']:.2f} ± {r['std']:.2f} | "
        f"{r['iqm']:.2f} | [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] | {'' if ev is None else f'{ev:.2f}'} | "
        f"{wall:.0f} ({provenance(run)}) | {anchor} | {verdict(target, r['mean'], point['final_return_per_seed'])} |\n"
    )


def episode_fragment(name: str, summary: dict) -> str:
    """A row's per-episode statistics (Craftax's achievements: % of episodes), highest first."""
    stats = summary["grid_points"][0]["episode_metrics"]
    lines = [f"### {name}: {summary['env_id']}, {summary['seeds']} seeds", "",
             summary.get("episode_metrics_definition", ""), "", "| statistic | mean ± std over seeds |",
             "| --- | --- |"]  # fmt: skip
    for stat, value in sorted(stats.items(), key=lambda kv: -np.nan_to_num(kv[1]["mean"], nan=-np.inf)):
        lines.append(f"| {stat} | {value['mean']:.2f} ± {value['std']:.2f} |")
    return "\n".join(lines) + "\n"


def sensitivity_fragment(run: Path, summary: dict, docs: Path) -> str:
    lines = [f"### {run.name} ({summary['env_id']}, {summary['seeds']} seeds per grid point)", "",
             f"Run at {provenance(run)}, one compiled call, {summary['compile_seconds'] + summary['run_seconds']:.0f} s.",
             "", "| grid point | final return | IQM | 95 % CI |", "| --- | --- | --- | --- |"]  # fmt: skip
    for point in summary["grid_points"]:
        r = point["final_return"]
        label = ", ".join(f"{k}={v:g}" for k, v in point["swept"].items())
        lines.append(f"| {label} | {r['mean']:.2f} ± {r['std']:.2f} | {r['iqm']:.2f} | "
                     f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] |")  # fmt: skip
    image = heatmap(summary, f"{summary['env_id']}: final return")
    if image is not None:
        atomic_write_bytes(docs / f"{run.name}_heatmap.png", image)
        lines += ["", f"![heatmap](../docs/{run.name}_heatmap.png)"]
    atomic_write_bytes(docs / f"{run.name}.png", render(curves_from_csv(run / "metrics.csv"), run.name))
    lines += [f"![curves](../docs/{run.name}.png)", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("experiments/runs"))
    p.add_argument("--docs", type=Path, default=Path("docs"))
    p.add_argument("--results", type=Path, default=Path("experiments/results"))
    args = p.parse_args()
    args.docs.mkdir(exist_ok=True)
    args.results.mkdir(exist_ok=True)
    for name in ROWS:
        path = args.runs / name / "summary.json"
        if path.is_file():
            summary = json.loads(path.read_text())
            atomic_write_text(args.results / f"{name}.md", row_fragment(name, args.runs / name, summary))
            if summary["grid_points"][0].get("episode_metrics"):
                atomic_write_text(args.results / f"{name}.episode.md", episode_fragment(name, summary))
            what = ROWS[name][0]
            atomic_write_bytes(
                args.docs / f"{name}.png", render(curves_from_csv(args.runs / name / "metrics.csv"), what)
            )
    for run in sorted(args.runs.glob("sens_*")):
        if (run / "summary.json").is_file():
            summary = json.loads((run / "summary.json").read_text())
            atomic_write_text(args.results / f"{run.name}.md", sensitivity_fragment(run, summary, args.docs))

    lines = ["# Results", "", "Final return: per seed, the mean raw return of its last 100 completed episodes; "
             "across seeds mean ± std, IQM and a 95 % bootstrap CI. Written by `experiments/collect.py` from "
             "`experiments/results/` (one fragment per row, with the commit and machine it ran on).", "",
             "| row | seeds | env steps / seed | final return | IQM | 95 % CI | eval | wall s (where) | published | target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, (what, anchor, _) in ROWS.items():
        fragment = args.results / f"{name}.md"
        lines.append(
            fragment.read_text().rstrip("\n")
            if fragment.is_file()
            else f"| {what} | | | not run yet | | | | | {anchor} | |"
        )
    memory = args.results / "memory.md"  # written by experiments/memory.py
    if memory.is_file():
        lines += ["", "## Memory: a GRU policy against a feed-forward one (`python experiments/memory.py`)", "",
                  "| task, config, core | seeds | env steps / seed | final return: mean ± std (min) | anchors | "
                  "compile + run (where) |", "| --- | --- | --- | --- | --- | --- |",
                  memory.read_text().rstrip("\n")]  # fmt: skip
    episode_fragments = sorted(args.results.glob("*.episode.md"))
    if episode_fragments:
        lines += ["", "## Per-episode statistics of the suites", ""]
        lines += [fragment.read_text() for fragment in episode_fragments]
    lines += ["", "## Hyperparameter sensitivity", ""]
    for fragment in sorted(args.results.glob("sens_*.md")):
        lines.append(fragment.read_text())
    atomic_write_text(Path("experiments/RESULTS.md"), "\n".join(lines).rstrip("\n") + "\n")
    print("wrote experiments/RESULTS.md")


if __name__ == "__main__":
    main()
