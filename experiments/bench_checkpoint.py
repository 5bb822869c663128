#!/usr/bin/env python
"""jaxppo's checkpoint format (``jaxppo.rundir``: one ``checkpoints/<iteration>.npz`` per process)
against orbax's (a ``CheckpointManager`` with ``StandardSave``, ``checkpoints/<iteration>/``) on the
same payload. Each round saves and restores it with both, alternating which goes first; prints
one JSON line per round and the medians. Needs ``pip install orbax-checkpoint``.

    python experiments/bench_checkpoint.py --seeds 64 --rounds 5
    python experiments/bench_checkpoint.py --env Breakout-MinAtar --seeds 64 --hidden 256,256

The payload is a run's real ``TrainState [1, S]`` and the metrics of its full budget (CleanRL's
defaults for the env), as ``--checkpoint-every`` saves them at the end of a run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def payload(env_id: str, seeds: int, hidden: tuple[int, ...]):
    import jax
    import numpy as np

    from jaxppo.config import PPOConfig
    from jaxppo.factories import run_facts
    from jaxppo.loading import abstract_states
    from jaxppo.parallel import batched_init
    from jaxppo.settings import RunSettings, run_keys

    settings = RunSettings(config=PPOConfig(env_id=env_id, hidden_sizes=hidden), hparams={}, grid={}, seeds=seeds)
    facts = run_facts(settings)
    states = jax.jit(batched_init(facts.trainer, 1))(run_keys(settings), facts.grid)
    iterations = facts.trainer.config.num_iterations
    draws = np.random.default_rng(0)  # values as incompressible as real losses and returns
    metrics = {name: draws.normal(size=(1, seeds, iterations)).astype(dtype) for name, dtype in facts.metric_dtypes.items()}
    return facts, states, metrics, abstract_states(facts)


def orbax_save_and_restore(directory: Path, iteration: int, states, metrics, abstract, names):
    """orbax's save (waiting for it to finish) and its restore into the same shapes."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import orbax.checkpoint as ocp

    from jaxppo import rundir

    manager = ocp.CheckpointManager(directory.resolve() / rundir.CHECKPOINT_DIR,
                                    options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))  # fmt: skip
    start = time.perf_counter()
    manager.save(iteration, args=ocp.args.StandardSave({"states": rundir._to_storable(states), "metrics": metrics}))
    manager.wait_until_finished()
    saved = time.perf_counter()
    leading = np.shape(jax.tree.leaves(abstract)[0])[:2]
    target = {"states": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape + (2,), jnp.uint32)
                                     if rundir._is_key(x) else x, abstract),
              "metrics": {name: jax.ShapeDtypeStruct(leading + (iteration,), dtype) for name, dtype in names.items()}}
    jax.block_until_ready(manager.restore(iteration, args=ocp.args.StandardRestore(target)))
    manager.close()
    return start, saved, time.perf_counter()


def npz_save_and_restore(directory: Path, iteration: int, states, metrics, abstract, names):
    """jaxppo's save and restore (``rundir.save_checkpoint``, ``rundir.restore_checkpoint``)."""
    import jax

    from jaxppo import rundir

    start = time.perf_counter()
    rundir.save_checkpoint(directory, iteration, states, metrics)
    saved = time.perf_counter()
    jax.block_until_ready(rundir.restore_checkpoint(directory, abstract, names).states)
    return start, saved, time.perf_counter()


def save_and_restore(kind: str, directory: Path, iteration: int, states, metrics, abstract, names) -> dict:
    from jaxppo import rundir

    run = orbax_save_and_restore if kind == "orbax" else npz_save_and_restore
    start, saved, done = run(directory, iteration, states, metrics, abstract, names)
    size = sum(p.stat().st_size for p in (directory / rundir.CHECKPOINT_DIR).rglob("*") if p.is_file())
    return {"save_s": saved - start, "restore_s": done - saved, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--hidden", default="64,64")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    facts, states, metrics, abstract = payload(args.env, args.seeds, tuple(int(h) for h in args.hidden.split(",")))
    results = {"orbax": [], "npz": []}
    for round_ in range(args.rounds):
        order = ["orbax", "npz"] if round_ % 2 == 0 else ["npz", "orbax"]
        for kind in order:
            directory = Path(tempfile.mkdtemp(prefix=f"bench_{kind}_"))
            try:
                iteration = facts.trainer.config.num_iterations  # the metrics hold every iteration
                result = save_and_restore(kind, directory, iteration, states, metrics, abstract, facts.metric_dtypes)
            finally:
                shutil.rmtree(directory)
            results[kind].append(result)
            print(json.dumps({"round": round_, "kind": kind, **{k: round(v, 4) for k, v in result.items()}}))
    summary = {kind: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for kind, rows in results.items()}
    print(json.dumps({"env": args.env, "seeds": args.seeds, "hidden": args.hidden, "median": summary,
                      "save_ratio_orbax_over_npz": summary["orbax"]["save_s"] / summary["npz"]["save_s"],
                      "restore_ratio_orbax_over_npz": summary["orbax"]["restore_s"] / summary["npz"]["restore_s"]}))


if __name__ == "__main__":
    main()
