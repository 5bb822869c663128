#!/usr/bin/env python
"""The memory row: a GRU policy against a feed-forward one on ``jaxppo.probes.Memory``.

The cue (one of ``--cues``) is shown at an episode's first step only; after ``--delay`` blank
steps the answer step rewards the action that names it (1, else 0) and ends the episode. Without
memory the best policy earns ``1 / cues`` per episode; with it, 1. Both cores train with the same
config and seeds, all seeds vmapped in one compiled call each, and the row (one markdown line
per core, plus JSON) goes to ``experiments/results/memory.md``.

    python experiments/memory.py [--seeds 16] [--cues 4] [--delay 16] [--timesteps 1e6]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import jax
import numpy as np

import jaxppo
from jaxppo.probes import Memory
from jaxppo.stats import summarize

RESULTS = Path(__file__).resolve().parent / "results"


def train_core(core: str | None, args) -> dict:
    config = jaxppo.PPOConfig(
        recurrent=core, recurrent_size=args.recurrent_size, hidden_sizes=(64,), num_envs=args.num_envs,
        num_steps=args.num_steps, total_timesteps=int(args.timesteps), num_minibatches=4, update_epochs=4,
    )  # fmt: skip
    env = Memory(num_cues=args.cues, delay=args.delay)
    train = jax.jit(jax.vmap(jaxppo.make_train(config, env=env), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    hparams = jaxppo.PPOHParams(learning_rate=args.learning_rate)
    start = time.perf_counter()
    compiled = train.lower(keys, hparams).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(keys, hparams))
    run_s = time.perf_counter() - start
    final = np.asarray(result.metrics["episode_return_last100"])[:, -1]
    steps = int(np.asarray(result.metrics["env_steps"])[0, -1])
    return {"core": core or "feed-forward", "seeds": args.seeds, "env_steps_per_seed": steps,
            "final_return": summarize(final), "final_return_per_seed": final.tolist(),
            "compile_s": round(compile_s, 1), "run_s": round(run_s, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cues", type=int, default=4)
    parser.add_argument("--delay", type=int, default=16)
    parser.add_argument("--timesteps", type=float, default=1e6)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--recurrent-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=RESULTS / "memory.md")
    args = parser.parse_args()
    rows = [train_core(core, args) for core in ("gru", None)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    what = (f"Memory ({args.cues} cues, {args.delay} blank steps), {args.num_envs} envs x {args.num_steps} steps, "
            f"hidden 64, lr {args.learning_rate:g}")  # fmt: skip
    lines = []
    for row in rows:
        print(json.dumps(row))
        r = row["final_return"]
        core = f"GRU {args.recurrent_size}" if row["core"] == "gru" else "feed-forward"
        lines.append(
            f"| {what}, {core} | {row['seeds']} | {row['env_steps_per_seed']:,} | {r['mean']:.3f} ± {r['std']:.3f} "
            f"(min {r['min']:.3f}) | chance {1 / args.cues:.3f}, memory 1.0 | {row['compile_s']} + {row['run_s']} s "
            f"(commit {commit}, {platform.machine()}) |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
