"""``python -m jaxppo.evaluate RUN_DIR``: evaluation returns per grid point and seed of a run."""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

from jaxppo.config import ConfigError
from jaxppo.evaluation import evaluate
from jaxppo.loading import load_run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxppo.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise ConfigError(f"--episodes must be positive, got {args.episodes}")
        run = load_run(args.run_dir)
        evaluate_all = jax.jit(
            lambda p, s, k: evaluate(run.trainer, p, s, k, args.episodes, not args.stochastic, batch_dims=2)
        )
        seeds = run.num_seeds
        returns = np.asarray(evaluate_all(run.states.params, run.states.obs_stats, jax.random.key(args.seed)))
    except ConfigError as error:
        print(f"jaxppo.evaluate: error: {error}", file=sys.stderr)
        return 2
    mode = "stochastic" if args.stochastic else "deterministic"
    print(f"{run.run_dir}: {args.episodes} {mode} episodes per seed, iteration {run.iteration}")
    for g, point in enumerate(run.grid_points):
        label = ", ".join(f"{k}={v:g}" for k, v in point.items()) or "defaults"
        print(f"grid point {g} ({label}): mean {returns[g].mean():.2f}")
        for s in range(seeds):
            print(f"  seed {s}: {returns[g, s].mean():.2f} ± {returns[g, s].std():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
