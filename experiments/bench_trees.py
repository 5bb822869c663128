#!/usr/bin/env python
"""Two source trees of jaxppo side by side on the same workloads: fresh processes, alternating
tree by tree, round by round, so the machine's drift hits both alike; one JSON line per run, then
the median run-time ratio per workload.

    python experiments/bench_trees.py --trees /tmp/old/src src --rounds 3
    python experiments/bench_trees.py --trees src src --workloads cartpole --optimizer unraveled

Each run is ``jit(vmap(make_train(config)))`` lowered and compiled apart, then run once (timed,
``block_until_ready``). ``--optimizer unraveled`` passes CleanRL's chain without
``xla_cpu.raveled`` (the second tree's runs only), to measure what raveling saves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    # name: (PPOConfig keywords, seeds)
    "cartpole": ({"env_id": "CartPole-v1", "total_timesteps": 200_000}, 8),
    "breakout_cnn": ({"env_id": "Breakout-MinAtar", "total_timesteps": 40_960, "num_envs": 64, "num_steps": 128,
                      "num_minibatches": 8, "hidden_sizes": (128,), "activation": "relu"}, 2),  # fmt: skip
    "gru_memory": ({"env_id": "CartPole-v1", "total_timesteps": 100_000, "recurrent": "gru", "recurrent_size": 64}, 4),
}


def child(workload: str, optimizer: str) -> None:
    import jax
    import numpy as np

    import jaxppo

    kwargs, seeds = WORKLOADS[workload]
    config = jaxppo.PPOConfig(**kwargs)
    extra = {}
    if optimizer == "unraveled":
        from jaxppo.train import make_optimizer

        extra["optimizer"] = make_optimizer
    train = jax.vmap(jaxppo.make_train(config, **extra), in_axes=(0, None))
    keys = jax.random.split(jax.random.key(0), seeds)
    hp = jaxppo.PPOHParams()
    t0 = time.perf_counter()
    compiled = jax.jit(train).lower(keys, hp).compile()
    t1 = time.perf_counter()
    result = jax.block_until_ready(compiled(keys, hp))
    t2 = time.perf_counter()
    final = float(np.nanmean(np.asarray(result.metrics["episode_return_last100"])[:, -1]))
    print(json.dumps({"compile_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 3), "final_return": round(final, 2)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs=2, required=True, metavar=("A_SRC", "B_SRC"))
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--optimizer", choices=["default", "unraveled"], default="default")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    ratios = {}
    for workload in args.workloads:
        runs = {0: [], 1: []}
        for r in range(args.rounds):
            for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                tree = os.path.abspath(args.trees[side])
                optimizer = args.optimizer if side == 1 else "default"
                env = {**os.environ, "PYTHONPATH": tree}
                out = subprocess.run([sys.executable, __file__, "--trees", *args.trees, "--child", workload, optimizer],
                                     env=env, capture_output=True, text=True, check=True)  # fmt: skip
                line = json.loads(out.stdout.strip().splitlines()[-1])
                runs[side].append(line["run_s"])
                print(json.dumps({"workload": workload, "tree": args.trees[side], "optimizer": optimizer, "round": r,
                                  **line}), flush=True)  # fmt: skip
        ratios[workload] = statistics.median(b / a for a, b in zip(runs[0], runs[1], strict=True))
        print(json.dumps({"workload": workload, "run_s_ratio_b_over_a": round(ratios[workload], 3),
                          "median_run_s": [statistics.median(runs[0]), statistics.median(runs[1])]}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
