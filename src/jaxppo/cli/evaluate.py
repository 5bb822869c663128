"""``python -m jaxppo.evaluate RUN_DIR``: evaluation returns per grid point and seed of a run."""

from __future__ import annotations

import jax
import numpy as np

from jaxppo.cli.parsing import Parser, integer, run_main
from jaxppo.evaluation import evaluate
from jaxppo.loading import load_run

PROG = "python -m jaxppo.evaluate"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Evaluate every agent (grid point x seed) of a run from its latest "
                    "checkpoint: mean episode returns per grid point and seed.")  # fmt: skip
    parser.add_argument("run_dir", help="a directory written by python -m jaxppo.run")
    parser.add_argument("--episodes", type=integer(1, what="a positive integer"), default=10,
                        help="episodes per agent (default: %(default)s)")  # fmt: skip
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--seed", type=integer(-(2**63), 2**63 - 1, "an integer in -2**63..2**63-1"), default=0,
                        help="random seed of the evaluation episodes (default: %(default)s)")  # fmt: skip
    return parser


def main(argv=None) -> int:
    return run_main(PROG, _main, argv)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    run = load_run(args.run_dir)
    evaluate_all = jax.jit(
        lambda p, s, k: evaluate(run.trainer, p, s, k, args.episodes, not args.stochastic, batch_dims=2)
    )
    returns = np.asarray(evaluate_all(run.states.params, run.states.obs_stats, jax.random.key(args.seed)))
    mode = "stochastic" if args.stochastic else "deterministic"
    print(f"{run.run_dir}: {args.episodes} {mode} episodes per seed, iteration {run.iteration}")
    for g, point in enumerate(run.grid_points):
        label = ", ".join(f"{k}={v:g}" for k, v in point.items()) or "defaults"
        print(f"grid point {g} ({label}): mean {returns[g].mean():.2f}")
        for s in range(run.num_seeds):
            print(f"  seed {s}: {returns[g, s].mean():.2f} ± {returns[g, s].std():.2f}")
    return 0
