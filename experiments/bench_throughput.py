#!/usr/bin/env python
"""Throughput of jaxppo's compiled core on CartPole-v1 (CleanRL defaults), one JSON line per run.

Protocol (the same as ``../shared/bench/purejaxrl_cartpole.py``): ``jit(vmap(make_train(config)))``
lowered and compiled apart, then run ``--repeats`` times (median reported), in a fresh process
per configuration so peak RSS is that configuration's own.

    python experiments/bench_throughput.py --seeds 1 8 64
    python experiments/bench_throughput.py --seeds 8 --mode sharded          # train_many over host devices
    python experiments/bench_throughput.py --seeds 8 --purejaxrl PATH        # + PureJaxRL side by side
    python experiments/bench_throughput.py --seeds 8 --mode cli --purejaxrl PATH   # the CLI, wall clock
    python experiments/bench_throughput.py --seeds 8 --unroll-threefry --purejaxrl PATH   # both, the CLI's lowering

``mode``: ``core`` = one device; ``sharded`` = ``train_many`` over one XLA:CPU device per core;
``cli`` = what a user runs, ``python -m jaxppo.run --env CartPole-v1 --seeds N --no-progress``,
timed as a whole process (start-up, compile, run, every output file), twice: with an empty
compilation cache (``cold_s``) and again with the cache it left (``warm_s``). Its ratio line
compares each with PureJaxRL's compile + run.
With ``--purejaxrl``, jaxppo and PureJaxRL alternate, configuration by configuration, and a
ratio line follows each pair. ``--unroll-threefry`` calls ``jaxppo.xla_cpu.unroll_threefry_on_cpu()``
(which the CLI calls) first in both processes, jaxppo's and PureJaxRL's (``core``/``sharded``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "purejaxrl_cartpole.py"


def measure(seeds: int, timesteps: int, repeats: int, mode: str, unroll_threefry: bool = False) -> dict:
    if unroll_threefry:
        from jaxppo.xla_cpu import unroll_threefry_on_cpu

        unroll_threefry_on_cpu()
    if mode == "sharded":
        import jaxppo

        jaxppo.xla_cpu.use_host_devices()
    import jax
    import numpy as np

    import jaxppo
    from jaxppo.parallel import seed_layout

    config = jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=timesteps)
    hparams = jaxppo.PPOHParams()
    keys = jax.random.split(jax.random.key(0), seeds)
    train = jaxppo.make_train(config)
    if mode == "sharded":
        layout = seed_layout(seeds)
        fn = layout.shard(layout.over_seeds(train), (0, None), 0)
        keys = layout.put(keys, 0)
    else:
        fn = jax.vmap(train, in_axes=(0, None))
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(keys, hparams)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(keys, hparams))
        times.append(time.perf_counter() - start)
    run_s = statistics.median(times)
    steps = jaxppo.make_trainer(config).config.env_steps
    final = np.asarray(result.metrics["episode_return_last100"])[:seeds, -1]
    return {
        "impl": "jaxppo",
        "mode": mode,
        "devices": len(jax.devices()),
        "seeds": seeds,
        "timesteps": timesteps,
        "unroll_threefry": unroll_threefry,
        "lower_s": round(t1 - t0, 3),
        "compile_s": round(t2 - t1, 3),
        "run_s": round(run_s, 3),
        "run_s_all": [round(t, 3) for t in times],
        "sps": round(seeds * steps / run_s),
        "final_return_mean": round(float(final.mean()), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "jax": jax.__version__,
    }


def time_cli(seeds: int, timesteps: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env["JAXPPO_CACHE_DIR"] = str(Path(tmp) / "cache")  # empty: the first run compiles
        walls, summary = [], {}
        for attempt in ("cold", "warm"):
            out = Path(tmp) / attempt
            cmd = [sys.executable, "-m", "jaxppo.run", "--env", "CartPole-v1", "--seeds", str(seeds),
                   "--total-timesteps", str(timesteps), "--no-progress", "--out", str(out)]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            walls.append(time.perf_counter() - start)
            summary = json.loads((out / "summary.json").read_text())
    point = summary["grid_points"][0]
    return {
        "impl": "jaxppo", "mode": "cli", "seeds": seeds, "timesteps": timesteps,
        "cold_s": round(walls[0], 2), "warm_s": round(walls[1], 2),
        "warm_compile_s": round(summary["compile_seconds"], 2), "warm_run_s": round(summary["run_seconds"], 2),
        "sps_in_run": round(summary["env_steps_per_second"]), "final_return_mean": round(point["final_return"]["mean"], 2),
    }  # fmt: skip


def child(args, seeds: int, mode: str, purejaxrl: str | None = None) -> dict:
    if mode == "cli" and not purejaxrl:
        return time_cli(seeds, args.timesteps)
    if purejaxrl:  # the shared harness, run in-process by a wrapper that adds its peak RSS
        argv = [str(HARNESS), "--purejaxrl", purejaxrl, "--seeds", str(seeds),
                "--timesteps", str(args.timesteps), "--repeats", str(args.repeats)]  # fmt: skip
        wrapper = ("import json, resource, runpy, sys; sys.argv = json.loads(sys.argv[1]); "
                   + ("from jaxppo.xla_cpu import unroll_threefry_on_cpu; unroll_threefry_on_cpu(); "
                      if args.unroll_threefry else "") +
                   "runpy.run_path(sys.argv[0], run_name='__main__'); "
                   "print(json.dumps({'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))")  # fmt: skip
        cmd = [sys.executable, "-c", wrapper, json.dumps(argv)]
    else:
        cmd = [sys.executable, __file__, "--child", "--seeds", str(seeds), "--mode", mode,
               "--timesteps", str(args.timesteps), "--repeats", str(args.repeats)]  # fmt: skip
        cmd += ["--unroll-threefry"] if args.unroll_threefry else []
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    lines = [json.loads(x) for x in out.strip().splitlines() if x.startswith("{")]
    if purejaxrl:
        return {"impl": "purejaxrl", "unroll_threefry": args.unroll_threefry, **lines[-2], **lines[-1]}
    return lines[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--timesteps", type=int, default=500_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", choices=["core", "sharded", "cli"], default="core")
    p.add_argument("--purejaxrl", default=None, help="PureJaxRL checkout: time it side by side")
    p.add_argument("--unroll-threefry", action="store_true",
                   help="core/sharded: call jaxppo.xla_cpu.unroll_threefry_on_cpu() first, in both processes")  # fmt: skip
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(
            json.dumps(measure(args.seeds[0], args.timesteps, args.repeats, args.mode, args.unroll_threefry)),
            flush=True,
        )
        return
    for seeds in args.seeds:
        ours = child(args, seeds, args.mode)
        print(json.dumps(ours), flush=True)
        if args.purejaxrl:
            theirs = child(args, seeds, args.mode, args.purejaxrl)
            print(json.dumps(theirs), flush=True)
            if args.mode == "cli":
                baseline = theirs["compile_total_s"] + theirs["run_s"]
                print(json.dumps({
                    "ratio": "jaxppo cli wall / purejaxrl (lower + compile + run)", "seeds": seeds,
                    "purejaxrl_s": round(baseline, 2),
                    "cold_ratio": round(ours["cold_s"] / baseline, 3), "warm_ratio": round(ours["warm_s"] / baseline, 3),
                }), flush=True)  # fmt: skip
                continue
            print(json.dumps({
                "ratio": f"jaxppo {args.mode} / purejaxrl", "seeds": seeds,
                "sps_ratio": round(ours["sps"] / theirs["sps_actual"], 3),
                "compile_ratio": round(ours["compile_s"] / theirs["compile_s"], 3),
                "rss_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
