#!/usr/bin/env python
"""Recurrent PPO side by side: jaxppo's GRU policy against PureJaxRL's ``ppo_rnn.py``, on that
script's own env and config (CartPole-v1, 4 envs x 128 steps, 4 epochs x 4 minibatches, 5e5
steps, a 128-unit GRU), one JSON line per run and a ratio line per pair.

    python experiments/bench_rnn.py --purejaxrl PATH [--seeds 8] [--pairs 2] [--timesteps 5e5]

Protocol (as ``bench_throughput.py``): ``jit(vmap(train))`` lowered and compiled apart, then run
once; each side in a fresh process, alternating, so the machine's drift hits both alike.
PureJaxRL is imported from the given checkout (nothing of it is stored here), with the shared
harness's patches for gymnax 1.0 (``../shared/bench/purejaxrl_cartpole.py``) and two for flax's
API drift (``patch_flax_drift``).

The networks: PureJaxRL embeds the observation (Dense 128, relu), runs one GRU (128) shared by
actor and critic, then a 128-relu layer per head. jaxppo runs ``recurrent="gru"``,
``recurrent_size=128``, ``hidden_sizes=(128,)``, relu: with ``--shared-trunk`` (if the installed
jaxppo has it) one GRU for both heads as PureJaxRL; otherwise a GRU in the actor and another in
the critic, twice PureJaxRL's recurrent work.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "purejaxrl_cartpole.py"
CONFIG = {"LR": 2.5e-4, "NUM_ENVS": 4, "NUM_STEPS": 128, "TOTAL_TIMESTEPS": 5e5, "UPDATE_EPOCHS": 4,
          "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
          "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ENV_NAME": "CartPole-v1", "ANNEAL_LR": True, "DEBUG": False}  # fmt: skip


def timed(train, keys) -> dict:
    import jax

    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compiled_at = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    done = time.perf_counter()
    return {"compile_s": round(compiled_at - start, 2), "run_s": round(done - compiled_at, 2), "out": out}


def run_purejaxrl(path: str, seeds: int, timesteps: float, harness_path: str) -> dict:
    spec = importlib.util.spec_from_file_location("harness", harness_path)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + harness.XLA_WORKAROUND_FLAG).strip()
    harness.stub_optional_modules()
    import jax
    import numpy as np

    sys.path.insert(0, harness.resolve_module_dir(path))
    import ppo_rnn  # PureJaxRL's purejaxrl/ppo_rnn.py, from the given checkout

    ppo_rnn.gymnax = harness.make_gymnax_shim()[0]
    patch_flax_drift(ppo_rnn)
    config = {**CONFIG, "TOTAL_TIMESTEPS": timesteps}
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    result = timed(ppo_rnn.make_train(config), keys)
    metrics = result.pop("out")["metric"]
    returns, done = np.asarray(metrics["returned_episode_returns"]), np.asarray(metrics["returned_episode"])
    tail = slice(-10, None)
    result["final_return"] = round(float(returns[:, tail][done[:, tail]].mean()), 2)
    result["steps"] = int(config["NUM_UPDATES"] * config["NUM_STEPS"] * config["NUM_ENVS"])
    return result


def patch_flax_drift(module) -> None:
    """flax >= 0.8 API drift, patched in this process only: ``nn.GRUCell`` needs its
    ``features`` (ppo_rnn.py's GRU has 128), and ``initialize_carry`` became an instance method
    (ppo_rnn.py's carry is zeros ``[batch, hidden]``)."""
    import functools
    import types

    import flax.linen as nn
    import jax.numpy as jnp

    class FlaxShim(types.ModuleType):
        def __getattr__(self, name):
            return getattr(nn, name)

    shim = FlaxShim("flax.linen")
    shim.GRUCell = functools.partial(nn.GRUCell, 128)
    module.nn = shim
    module.ScannedRNN.initialize_carry = staticmethod(lambda batch, hidden: jnp.zeros((batch, hidden)))


def run_jaxppo(seeds: int, timesteps: float, shared_trunk: bool) -> dict:
    import dataclasses

    import jax
    import numpy as np

    import jaxppo

    fields = {f.name for f in dataclasses.fields(jaxppo.PPOConfig)}
    extra = {"shared_trunk": True} if shared_trunk and "shared_trunk" in fields else {}
    config = jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=int(timesteps), num_envs=4, num_steps=128,
                              num_minibatches=4, update_epochs=4, recurrent="gru", recurrent_size=128,
                              hidden_sizes=(128,), activation="relu", **extra)  # fmt: skip
    keys = jax.random.split(jax.random.key(0), seeds)
    result = timed(jaxppo.make_train(config), keys)
    metrics = result.pop("out").metrics
    result["final_return"] = round(float(np.nanmean(np.asarray(metrics["episode_return"])[:, -10:])), 2)
    result["steps"] = config.replace(total_timesteps=int(timesteps)).resolve("discrete").env_steps
    result["shared_trunk"] = bool(extra)
    return result


def child(args) -> None:
    if args.side == "purejaxrl":
        result = run_purejaxrl(args.purejaxrl, args.seeds, args.timesteps, args.harness)
    else:
        result = run_jaxppo(args.seeds, args.timesteps, args.shared_trunk)
    result.update(side=args.side, seeds=args.seeds, sps=round(args.seeds * result["steps"] / result["run_s"]),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))  # fmt: skip
    print(json.dumps(result), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--purejaxrl", required=True, help="a PureJaxRL checkout (repo root or its purejaxrl/ dir)")
    p.add_argument("--harness", default=str(HARNESS), help="the shared PureJaxRL harness (default %(default)s)")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--timesteps", type=float, default=CONFIG["TOTAL_TIMESTEPS"])
    p.add_argument("--shared-trunk", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--side", choices=["jaxppo", "purejaxrl"], help=argparse.SUPPRESS)  # a child process
    args = p.parse_args()
    if args.side:
        return child(args)
    common = ["--purejaxrl", args.purejaxrl, "--harness", args.harness, "--seeds", str(args.seeds), "--timesteps", str(args.timesteps),
              "--shared-trunk" if args.shared_trunk else "--no-shared-trunk"]  # fmt: skip
    for _ in range(args.pairs):
        pair = {}
        for side in ("jaxppo", "purejaxrl"):
            proc = subprocess.run([sys.executable, __file__, "--side", side, *common], capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
            pair[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(pair[side]), flush=True)
        ours, theirs = pair["jaxppo"], pair["purejaxrl"]
        print(json.dumps({"ratio_sps": round(ours["sps"] / theirs["sps"], 2),
                          "ratio_compile": round(theirs["compile_s"] / ours["compile_s"], 2),
                          "ratio_rss": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 2)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
