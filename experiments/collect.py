#!/usr/bin/env python
"""Collect the suite's run directories into experiments/RESULTS.md and PNGs under docs/.

    python experiments/collect.py [--runs experiments/runs] [--docs docs]

Each row that has a run directory under ``--runs`` gets its fragment written anew to
``experiments/results/<row>.md`` (committed, with the commit and machine it ran on); RESULTS.md is
then assembled from all fragments, so rows run at different times keep their numbers. Rows
without a fragment are listed as not run; nothing is invented. The same fragments give the README's
results table and docs/results.md's (between ``<!-- generated: results -->`` markers), formatted here:
with no run directories at all, ``python experiments/collect.py`` rewrites the three from the fragments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from pathlib import Path

import numpy as np

from jaxppo.plotting import curves_from_csv, render
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
        f"{wall:.0f} ({provenance(run)}) | {anchor} | {verdict(target, r['mean'], point['final_return_per_seed'])} |"
        + (f" [{r['iqm_ci95'][0]:.2f}, {r['iqm_ci95'][1]:.2f}] |" if "iqm_ci95" in r else "")
        + "\n"
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
             ""]  # fmt: skip
    iqm_ci = all("iqm_ci95" in point["final_return"] for point in summary["grid_points"])
    lines += ["| grid point | final return | IQM | 95 % bootstrap CI of the mean |"
              + (" 95 % bootstrap CI of the IQM |" if iqm_ci else ""), "| --- | --- | --- | --- |"
              + (" --- |" if iqm_ci else "")]  # fmt: skip
    for point in summary["grid_points"]:
        r = point["final_return"]
        label = ", ".join(f"{k}={v:g}" for k, v in point["swept"].items())
        lines.append(f"| {label} | {r['mean']:.2f} ± {r['std']:.2f} | {r['iqm']:.2f} | "
                     f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] |"
                     + (f" [{r['iqm_ci95'][0]:.2f}, {r['iqm_ci95'][1]:.2f}] |" if iqm_ci else ""))  # fmt: skip
    image = heatmap(summary, f"{summary['env_id']}: final return")
    if image is not None:
        atomic_write_bytes(docs / f"{run.name}_heatmap.png", image)
        lines += ["", f"![heatmap](../docs/{run.name}_heatmap.png)"]
    atomic_write_bytes(docs / f"{run.name}.png", render(curves_from_csv(run / "metrics.csv"), run.name))
    lines += [f"![curves](../docs/{run.name}.png)", ""]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ RESULTS.md, and the tables of README.md and docs/results.md
RESULTS_BEGIN, GENERATED_END = "<!-- generated: results -->", "<!-- /generated -->"
COLUMNS = ("what", "seeds", "steps", "final", "iqm", "ci", "eval", "wall", "anchor", "verdict", "iqm_ci")
NOT_RECORDED = "not recorded"

# The README's table: (row, label); the published anchor is the row's own.
README_ROWS = [
    ("cartpole", "CartPole-v1, defaults"),
    ("acrobot", "Acrobot-v1, defaults"),
    ("pendulum_bootstrap", "Pendulum-v1, continuous defaults, bootstrap"),
    ("pendulum_terminate", "Pendulum-v1, continuous defaults, terminate"),
    ("mountaincar", "MountainCar-v0, blines config¹"),
    ("mountaincarcontinuous", "MountainCarContinuous-v0, continuous defaults"),
    ("breakout", "Breakout-MinAtar, blines config and networks²"),
    ("breakout_default_networks", "Breakout-MinAtar, same config, default 64-64 tanh"),
    ("navix_empty5x5", "navix/Navix-Empty-5x5-v0, 16 envs × 128 steps, lr 1e-3"),
    ("xminigrid_empty6x6", "xminigrid/MiniGrid-Empty-6x6, same config"),
    ("asterix", "Asterix-MinAtar, blines config and networks²"),
]
# docs/results.md's table of architectures and suites: (row, label, the row compared with or None for its anchor)
SUITE_ROWS = [
    *[(f"{row}_cnn", f"{game}-MinAtar, default CNN, 1M steps", f"{row}_cnn_mlp") for row, game in
      [("breakout", "Breakout"), ("spaceinvaders", "SpaceInvaders"), ("asterix", "Asterix"), ("freeway", "Freeway"),
       ("seaquest", "Seaquest")]],
    ("pgx_breakout_cnn", "pgx/minatar-breakout as gymnax's (`sticky_action_prob=0`, limit 1000), Breakout's CNN row "
                         "config", None),
    ("jumanji_game2048", "jumanji/Game2048-v1 with masks, 64 envs × 128 steps, 128-128 relu, normalised, 1.5M steps",
     None),
    ("brax_inverted_pendulum", "brax/inverted_pendulum (positional), 16 envs × 128 steps, 32 minibatches × 10 epochs, "
                               "500k steps", None),
    ("craftax_classic_short", "craftax/Craftax-Classic-Symbolic-v1, craftax's PPO hyperparameters, 128 envs × 64 "
                              "steps, 2 × 256 relu, 131k steps", None),
]  # fmt: skip


def parse_row(line: str) -> dict:
    """A row fragment's cells by name (``iqm_ci`` is ``NOT_RECORDED`` in rows run before summary.json had it)."""
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    if len(cells) == len(COLUMNS) - 1:
        cells.append(NOT_RECORDED)
    if len(cells) != len(COLUMNS):
        raise ValueError(f"a row fragment has {len(COLUMNS) - 1} or {len(COLUMNS)} cells, not {len(cells)}: {line!r}")
    return dict(zip(COLUMNS, cells, strict=True))


def _numbers(text: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)]


def fmt(value: float, decimals: int = 2) -> str:
    """A number as the README prints it: a space between thousands, a minus sign."""
    return f"{value:,.{decimals}f}".replace(",", " ").replace("-", "−")


def _signs(text: str) -> str:
    return re.sub(r"(?<![\w-])-(?=\d)", "−", text)


def _cells(row: dict) -> dict:
    """The numbers of a parsed row, formatted by ``fmt``."""
    mean, std = _numbers(row["final"])[:2]
    low, high = _numbers(row["ci"])
    return {"seeds": row["seeds"], "steps": fmt(_numbers(row["steps"])[0], 0), "final": f"{fmt(mean)} ± {fmt(std)}",
            "iqm": fmt(_numbers(row["iqm"])[0]), "ci": f"[{fmt(low)}, {fmt(high)}]",
            "eval": fmt(_numbers(row["eval"])[0]) if row["eval"] else "", "wall": f"{_numbers(row['wall'])[0]:.0f} s",
            "anchor": _signs(row["anchor"])}  # fmt: skip


def _fragment(results: Path, row: str) -> dict | None:
    path = results / f"{row}.md"
    return parse_row(path.read_text()) if path.is_file() else None


HEADER = ("| {first} | seeds | env steps / seed | final return: mean ± std | IQM | 95 % bootstrap CI of the mean | "
          "det. eval | wall | {last} |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip


def _table_row(label: str, cells: dict | None, last: str | None = None) -> str:
    if cells is None:
        return f"| {label} | | | not run yet | | | | | |"
    return (f"| {label} | {cells['seeds']} | {cells['steps']} | {cells['final']} | {cells['iqm']} | {cells['ci']} | "
            f"{cells['eval']} | {cells['wall']} | {cells['anchor'] if last is None else last} |")  # fmt: skip


def readme_table(results: Path) -> str:
    """The README's results table, from the fragments under ``results``."""
    lines = [HEADER.format(first="env, config", last="published")]
    for row, label in README_ROWS:
        fragment = _fragment(results, row)
        lines.append(_table_row(label, None if fragment is None else _cells(fragment)))
    return "\n".join(lines) + "\n"


def suites_table(results: Path) -> str:
    """docs/results.md's table of architectures and env suites, from the fragments under ``results``."""
    lines = [HEADER.format(first="env, config", last="compare")]
    for row, label, other in SUITE_ROWS:
        fragment = _fragment(results, row)
        cells = None if fragment is None else _cells(fragment)
        last = None
        if other is not None:
            flat = _fragment(results, other)
            last = "the image flattened: not run yet"
            if flat is not None:
                c = _cells(flat)
                last = f"the image flattened: {c['final']}, eval {c['eval']}, {c['wall']}"
        lines.append(_table_row(label, cells, last))
    return "\n".join(lines) + "\n"


def episode_summary(results: Path, row: str, limit: int = 11) -> str:
    """A row's per-episode statistics in one line, highest first (Craftax's achievements: % of episodes)."""
    path = results / f"{row}.episode.md"
    if not path.is_file():
        return "not run yet"
    stats = re.findall(r"^\| (?:Achievements/)?(\w+) \| (-?[\d.]+) ±", path.read_text(), re.M)
    shown = [(name, float(value)) for name, value in stats if float(value) > 0][:limit]
    return ", ".join(f"{name} {value:.2g}" if value < 10 else f"{name} {value:.0f}" for name, value in shown)


def memory_table(results: Path) -> str:
    """experiments/memory.py's rows: the GRU against a feed-forward policy."""
    path = results / "memory.md"
    lines = ["| core | seeds | env steps / seed | final return: mean ± std (min) | chance |", "| --- | --- | --- | --- | --- |"]
    if not path.is_file():
        return "\n".join(lines + ["| | | not run yet | | |"]) + "\n"
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        core = cells[0].rsplit(", ", 1)[-1]
        mean, std, low = _numbers(cells[3])
        chance = _numbers(cells[4])[0]
        lines.append(f"| {core} | {cells[1]} | {fmt(_numbers(cells[2])[0], 0)} | {fmt(mean, 3)} ± {fmt(std, 3)} "
                     f"({fmt(low, 3)}) | {fmt(chance, 2)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def generated_results(name: str, results: Path) -> str:
    """The generated block of README.md (``name``) or of docs/results.md."""
    if name == "README.md":
        return readme_table(results)
    return (suites_table(results) + "\nThe Craftax run's achievements, as the percentage of each seed's episodes (over "
            f"its last 10 iterations) that unlocked them: {episode_summary(results, 'craftax_classic_short')}.\n\n"
            "Memory (`python experiments/memory.py`: 4 cues, 8 blank steps, 16 envs × 128 steps, 64 units):\n\n"
            + memory_table(results))  # fmt: skip


def write_block(path: Path, begin: str, end: str, content: str) -> None:
    """Replace what lies between the markers ``begin`` and ``end`` in ``path`` with ``content``."""
    text = path.read_text()
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise ValueError(f"{path} has no {begin} ... {end} block")
    atomic_write_text(path, f"{head}{begin}\n{content}{end}{tail}")


def results_md(results: Path) -> str:
    """experiments/RESULTS.md, assembled from the fragments under ``results``."""
    lines = ["# Results", "", "Final return: per seed, the mean raw return of its last 100 completed episodes; "
             "across seeds mean ± std, the IQM, the 95 % percentile-bootstrap CI of the mean and (for rows run since "
             "`summary.json` records it) of the IQM. Written by `experiments/collect.py` from "
             "`experiments/results/` (one fragment per row, with the commit and machine it ran on).", "",
             "| row | seeds | env steps / seed | final return | IQM | 95 % bootstrap CI of the mean | "
             "95 % bootstrap CI of the IQM | eval | wall s (where) | published | target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, (what, anchor, _) in ROWS.items():
        row = _fragment(results, name)
        if row is None:
            lines.append(f"| {what} | | | not run yet | | | | | | {anchor} | |")
            continue
        order = ("what", "seeds", "steps", "final", "iqm", "ci", "iqm_ci", "eval", "wall", "anchor", "verdict")
        lines.append("| " + " | ".join(row[key] for key in order) + " |")
    memory = results / "memory.md"  # written by experiments/memory.py
    if memory.is_file():
        lines += ["", "## Memory: a GRU policy against a feed-forward one (`python experiments/memory.py`)", "",
                  "| task, config, core | seeds | env steps / seed | final return: mean ± std (min) | anchors | "
                  "compile + run (where) |", "| --- | --- | --- | --- | --- | --- |",
                  memory.read_text().rstrip("\n")]  # fmt: skip
    episode_fragments = sorted(results.glob("*.episode.md"))
    if episode_fragments:
        lines += ["", "## Per-episode statistics of the suites", ""]
        lines += [fragment.read_text() for fragment in episode_fragments]
    lines += ["", "## Hyperparameter sensitivity", ""]
    for fragment in sorted(results.glob("sens_*.md")):
        lines.append(fragment.read_text())
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("experiments/runs"))
    p.add_argument("--docs", type=Path, default=Path("docs"))
    p.add_argument("--results", type=Path, default=Path("experiments/results"))
    p.add_argument("--readme", type=Path, default=Path("README.md"))
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

    atomic_write_text(Path("experiments/RESULTS.md"), results_md(args.results))
    print("wrote experiments/RESULTS.md")
    for path in (args.readme, args.docs / "results.md"):
        write_block(path, RESULTS_BEGIN, GENERATED_END, generated_results(path.name, args.results))
        print(f"wrote the results block of {path}")

if __name__ == "__main__":
    main()
