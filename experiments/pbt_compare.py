#!/usr/bin/env python
"""Population-based training against the defaults and against the best point of a grid, at equal
env steps in total: per env, three command-line runs of P agents each.

- ``defaults``: P seeds of the env's settings;
- ``grid``: a grid of P points over the searched hyperparameters, one seed each; its best point
  (by final return) is reported, as a user who picked the grid's winner would;
- ``pbt``: ``--pbt`` over P seeds, searching the same ranges (unset hyperparameters start from
  draws in their ranges).

    python experiments/pbt_compare.py                         # every env, 8 agents, 1M steps each
    python experiments/pbt_compare.py --envs pendulum --steps 100000   # a quick look
    python experiments/pbt_compare.py --docs-only             # docs/pbt.md from the JSON

Writes each run under ``experiments/runs/pbt/<env>/<arm>/``, the results as JSON
(``experiments/results/pbt_compare.json``) and the table in ``docs/pbt.md`` from it. The wall time
of a run is its ``run_seconds`` (training, compilation excluded) from its summary.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "pbt_compare.json"
DOCS = ROOT / "docs" / "pbt.md"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- generated: pbt -->", "<!-- /generated -->"
RUNS = ROOT / "experiments" / "runs" / "pbt"

# name -> (base flags, the defaults' own values, search ranges, grid: searched values crossed into P points).
# The defaults' values are flags of the defaults arm only: PBT draws what they set, the grid sweeps it.
BLINES_MOUNTAINCAR = ["--env", "MountainCar-v0", "--num-envs", "16", "--num-steps", "32", "--update-epochs", "64",
                      "--num-minibatches", "4"]  # experiments/configs/mountaincar_blines.toml  # fmt: skip
MINATAR_CNN = ["--env", "Breakout-MinAtar", "--num-envs", "64", "--num-steps", "128", "--num-minibatches", "8",
               "--no-anneal-lr", "--hidden-sizes", "128", "--activation", "relu"]  # configs/minatar_cnn.toml  # fmt: skip
ENVS = {
    "pendulum": (
        ["--env", "Pendulum-v1"], [],
        ["learning_rate=1e-4:3e-3:log", "gamma=0.9:0.999", "gae_lambda=0.8:0.99"],
        {"learning_rate": [3e-4, 1e-3], "gamma": [0.95, 0.99], "gae_lambda": [0.9, 0.95]},
    ),
    "mountaincar": (
        BLINES_MOUNTAINCAR, ["--learning-rate", "5e-3", "--ent-coef", "0.003"],
        ["learning_rate=1e-3:2e-2:log", "ent_coef=1e-4:3e-2:log", "gamma=0.95:0.999"],
        {"learning_rate": [2.5e-3, 5e-3], "ent_coef": [0.003, 0.01], "gamma": [0.99, 0.995]},
    ),
    "mountaincarcontinuous": (
        ["--env", "MountainCarContinuous-v0"], [],
        ["learning_rate=1e-4:3e-3:log", "ent_coef=0:0.01", "gamma=0.95:0.999"],
        {"learning_rate": [3e-4, 1e-3], "ent_coef": [0.0, 0.005], "gamma": [0.99, 0.999]},
    ),
    "acrobot": (
        ["--env", "Acrobot-v1"], [],
        ["learning_rate=1e-4:3e-3:log", "ent_coef=1e-4:5e-2:log", "gamma=0.95:0.999"],
        {"learning_rate": [2.5e-4, 1e-3], "ent_coef": [0.001, 0.01], "gamma": [0.99, 0.995]},
    ),
    "breakout": (
        MINATAR_CNN, ["--learning-rate", "5e-4", "--ent-coef", "0.01", "--gamma", "0.999"],
        ["learning_rate=1e-4:3e-3:log", "ent_coef=1e-3:5e-2:log", "gamma=0.95:0.999"],
        {"learning_rate": [2.5e-4, 1e-3], "ent_coef": [0.01, 0.03], "gamma": [0.99, 0.999]},
    ),
}
PUBLISHED = {"pendulum": ("blines -130", -140.0), "mountaincar": ("blines -118", -120.0),
             "mountaincarcontinuous": ("blines 92", 90.0), "acrobot": ("", None), "breakout": ("", None)}  # fmt: skip


def arm_flags(name: str, arm: str, agents: int, steps: int) -> list[str]:
    base, defaults, search, grid = ENVS[name]
    flags = [*base, "--total-timesteps", str(steps), "--no-progress", "--overwrite"]
    if arm == "defaults":
        return [*flags, *defaults, "--seeds", str(agents)]
    if arm == "grid":
        values = [f"--grid={k}={','.join(map(str, v))}" for k, v in grid.items()]
        points = 1
        for v in grid.values():
            points *= len(v)
        assert points == agents, f"{name}'s grid has {points} points, not {agents}"
        return [*flags, "--seeds", "1", *values]
    population = [*flags, "--seeds", str(agents), "--pbt", *(f"--pbt-search={s}" for s in search)]
    if arm == "pbt_from_defaults":  # every member starts at the defaults' values, then explores
        return [*population, *defaults, *default_values(name, defaults, search)]
    return population


def default_values(name: str, defaults: list[str], search: list[str]) -> list[str]:
    """Flags setting each searched hyperparameter the defaults arm leaves unset to the env's default."""
    import jaxppo
    from jaxppo.settings import settings_from_args

    base = ENVS[name][0]
    args = {k.lstrip("-").replace("-", "_"): v for k, v in zip(base[::2], base[1::2], strict=True)}
    args["env_id"] = args.pop("env")
    config = settings_from_args(args).config
    kind = jaxppo.make_trainer(config).spec.action_kind
    values = jaxppo.default_hparams(kind)
    flags = []
    for text in search:
        field = text.partition("=")[0]
        flag = "--" + field.replace("_", "-")
        if flag not in defaults:
            flags += [flag, f"{float(getattr(values, field)):g}"]
    return flags


def run_arm(name: str, arm: str, agents: int, steps: int, tag: str = "") -> dict:
    out = RUNS / name / f"{tag}{arm}"
    command = [sys.executable, "-m", "jaxppo.run", *arm_flags(name, arm, agents, steps), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name}/{arm} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    points = summary["grid_points"]
    finals = [v for p in points for v in p["final_return_per_seed"] if v is not None]
    entry = {"command": "python -m jaxppo.run " + " ".join(command[3:]), "agents": agents, "steps": steps,
             "wall_seconds": wall,
             "run_seconds": summary["run_seconds"], "compile_seconds": summary["compile_seconds"]}  # fmt: skip
    if arm == "grid":
        best = max(points, key=lambda p: p["final_return"]["mean"])
        entry.update(best=best["final_return"]["mean"], best_point=best["swept"], median=float(_median(finals)))
    else:
        entry.update(best=max(finals), median=float(_median(finals)), mean=sum(finals) / len(finals))
    if arm.startswith("pbt"):
        population = points[0]["pbt"]
        entry.update(exploits=population["exploits"], best_hparams=population["best_hparams"])
    return entry


def overhead(name: str, agents: int, steps: int, rounds: int) -> dict:
    """PBT's run time against the defaults' at the same agents and steps: the two arms alternate,
    round by round, in fresh processes; the median of the per-round ratios."""
    ratios, pairs = [], []
    for r in range(rounds):
        times = {}
        for arm in (("defaults", "pbt") if r % 2 == 0 else ("pbt", "defaults")):
            times[arm] = run_arm(name, arm, agents, steps, tag="overhead_")["run_seconds"]
        ratios.append(times["pbt"] / times["defaults"])
        pairs.append(times)
        print(f"{name} overhead round {r}: defaults {times['defaults']:.1f} s, pbt {times['pbt']:.1f} s", flush=True)
    return {"agents": agents, "steps": steps, "rounds": pairs, "median_ratio": _median(ratios)}


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def readme_table(results: dict) -> str:
    """The README's table: per env, each arm's best and median final return (docs/pbt.md has the rest)."""
    lines = ["| env (agents x steps each) | defaults: best / median | grid's best point | PBT: best / median | "
             "PBT from the defaults | published |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, arms in results["envs"].items():
        d, g, p, f = (arms.get(arm) for arm in ("defaults", "grid", "pbt", "pbt_from_defaults"))
        if not (d and g and p):
            continue
        from_defaults = f"{f['best']:.2f} / {f['median']:.2f}" if f else "not run"
        lines.append(f"| {name} ({p['agents']} x {p['steps']:,}) | {d['best']:.2f} / {d['median']:.2f} | {g['best']:.2f} "
                     f"| {p['best']:.2f} / {p['median']:.2f} | {from_defaults} | {PUBLISHED[name][0] or '—'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_readme(results: dict) -> None:
    text = README.read_text()
    begin, end = text.index(README_BEGIN) + len(README_BEGIN) + 1, text.index(README_END, text.index(README_BEGIN))
    README.write_text(text[:begin] + readme_table(results) + text[end:])


def write_docs(results: dict) -> None:
    meta = results["meta"]
    lines = [
        "# Population-based training against a grid and the defaults",
        "",
        f"Generated by `python experiments/pbt_compare.py` from `experiments/results/pbt_compare.json`: "
        f"per env, the same number of agents in each arm, the same env steps per agent (equal steps in total), on "
        f"{meta['machine']}, jaxppo commit {meta['commit']}, {meta['date']}.",
        "",
        "- **defaults**: the env's settings, one seed per agent; **grid**: a grid of as many points as agents "
        "over the searched hyperparameters, one seed each, and its best point; **PBT**: "
        "`--pbt` with the ranges below (the interval, quantile and exploration at their defaults), each member "
        "starting from draws in the ranges; **PBT from the defaults**: the same, every member starting at the "
        "defaults' values.",
        "- Final return: per agent, the mean raw return of its last 100 episodes. Best: the best agent "
        "(for the grid, the best point); median: over the agents. The runs' times are in the JSON; they ran while "
        "other work shared the machine, so PBT's overhead is measured apart, below.",
        "",
        "| env | agents x steps | searched | defaults best / median | grid best (point) | PBT best / median | "
        "PBT from the defaults best / median | published |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, arms in results["envs"].items():
        d, g, p = arms.get("defaults"), arms.get("grid"), arms.get("pbt")
        if not (d and g and p):
            continue
        point = ", ".join(f"{k}={v:g}" for k, v in g["best_point"].items())
        f = arms.get("pbt_from_defaults")
        from_defaults = f"{f['best']:.2f} / {f['median']:.2f}" if f else "not run"
        published, goal = PUBLISHED[name]
        best_pbt = max(p["best"], f["best"]) if f else p["best"]
        verdict = "" if goal is None else (" (PBT meets it)" if best_pbt >= goal else " (PBT misses it)")
        lines.append(
            f"| {name} | {p['agents']} x {p['steps']:,} | {'; '.join(ENVS[name][2])} | {d['best']:.2f} / {d['median']:.2f} | {g['best']:.2f} ({point}) "
            f"| {p['best']:.2f} / {p['median']:.2f} | {from_defaults} | {published}{verdict if published else ''} |"
        )
    for name, o in results.get("overhead", {}).items():
        lines.append("")
        lines.append(f"PBT's overhead on {name} ({o['agents']} agents x {o['steps']:,} steps, {len(o['rounds'])} "
                     f"alternating pairs of runs, median of the ratios): {100 * (o['median_ratio'] - 1):+.1f} % "
                     f"run time against the defaults' (`--overhead-rounds`).")  # fmt: skip
    lines += ["", "Each command is in the JSON (`command`). Each PBT run's members, their returns above their "
              "schedules (the run's `pbt.png`):", ""]
    for name, arms in results["envs"].items():
        plot = RUNS / name / "pbt" / "pbt.png"
        if "pbt" in arms and plot.is_file():
            shutil.copyfile(plot, DOCS.parent / f"pbt_{name}.png")
        if (DOCS.parent / f"pbt_{name}.png").is_file():
            lines.append(f"![{name}](pbt_{name}.png)")
    DOCS.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated: " + ", ".join(ENVS))
    parser.add_argument("--arms", default="defaults,grid,pbt", help="also: pbt_from_defaults")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--docs-only", action="store_true")
    parser.add_argument("--overhead-rounds", type=int, default=0,
                        help="measure PBT's run-time overhead instead (alternating runs of --steps)")  # fmt: skip
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"envs": {}}
    if args.overhead_rounds:
        for name in args.envs.split(","):
            results.setdefault("overhead", {})[name] = overhead(name, args.agents, args.steps, args.overhead_rounds)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    elif not args.docs_only:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        results["meta"] = {"agents": args.agents, "steps": args.steps, "commit": commit.stdout.strip(),
                           "machine": f"{platform.machine()} CPU, {len(__import__('os').sched_getaffinity(0))} cores",
                           "date": datetime.date.today().isoformat()}  # fmt: skip
        for name in args.envs.split(","):
            for arm in args.arms.split(","):
                entry = run_arm(name, arm, args.agents, args.steps)
                results["envs"].setdefault(name, {})[arm] = entry
                print(f"{name}/{arm}: best {entry['best']:.2f}, median {entry['median']:.2f}, "
                      f"run {entry['run_seconds']:.1f} s", flush=True)  # fmt: skip
                RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_docs(results)
    write_readme(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
