"""``python -m jaxppo.render RUN_DIR --out episode.gif``: a video of a run's trained agent.

Plays ``--episodes`` episodes of one agent (``--seed``, ``--grid-point``) from the run's latest
checkpoint in the run's env, one after another in one GIF or MP4, each frame with the step and
the return so far; prints each episode's return and length. The episodes are the ones
``python -m jaxppo.evaluate RUN_DIR --episodes N --seed E`` plays for that agent (``--eval-seed
E``, default 0), so the returns agree with its report (``jaxppo.video``).
"""

from __future__ import annotations

import sys

from jaxppo.cli.parsing import Parser, integer, run_main
from jaxppo.config import ConfigError

PROG = "python -m jaxppo.render"


def _fps(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames per second, got {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected frames per second in (0, 100], got {text}")
    return value


def build_parser() -> Parser:
    from jaxppo.video import DEFAULT_FPS

    parser = Parser(prog=PROG, description="Write a GIF or MP4 of a run's trained agent playing its env, from "
                    "the latest checkpoint; prints each episode's return and length.")  # fmt: skip
    parser.add_argument("run_dir", help="a directory written by python -m jaxppo.run")
    parser.add_argument("--out", required=True, help="the video to write, ending in .gif or .mp4")
    parser.add_argument("--seed", type=integer(0, what="a seed index (0, 1, ...)"), default=0,
                        help="which of the run's seeds (default: %(default)s)")  # fmt: skip
    parser.add_argument("--grid-point", type=integer(0, what="a grid point index (0, 1, ...)"), default=0,
                        help="which of the run's grid points (default: %(default)s)")  # fmt: skip
    parser.add_argument("--episodes", type=integer(1, what="a positive integer"), default=1,
                        help="episodes, one after another in the video (default: %(default)s)")  # fmt: skip
    parser.add_argument("--max-steps", type=integer(1, what="a positive integer"), default=None, metavar="M",
                        help="cut every episode after M steps (default: the env's time limit)")  # fmt: skip
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--fps", type=_fps, default=DEFAULT_FPS, metavar="F",
                        help="frames per second (default: %(default)s)")  # fmt: skip
    parser.add_argument("--eval-seed", type=integer(-(2**63), 2**63 - 1, "an integer in -2**63..2**63-1"), default=0,
                        metavar="E", help="random seed of the episodes, as python -m jaxppo.evaluate's --seed "
                                          "(default: %(default)s)")  # fmt: skip
    return parser


def main(argv=None) -> int:
    return run_main(PROG, _main, argv)


def _main(argv) -> int:
    from pathlib import Path

    from jaxppo.frames import headless_mujoco

    headless_mujoco()  # before anything imports mujoco
    args = build_parser().parse_args(argv)
    from jaxppo.video import check_video_path, episode_summary, play_run, save_video

    out = check_video_path(args.out, "--out")
    try:
        episodes = play_run(args.run_dir, args.seed, args.grid_point, args.episodes, eval_seed=args.eval_seed,
                            deterministic=not args.stochastic, max_steps=args.max_steps)  # fmt: skip
    except ConfigError as error:  # the library's argument names as this command's flags
        raise ConfigError(str(error).replace("seed=", "--seed ").replace("grid_point=", "--grid-point ")) from None
    save_video([e.frames for e in episodes], out, fps=args.fps)
    mode = "stochastic" if args.stochastic else "deterministic"
    frames = sum(e.length for e in episodes)
    print(f"{Path(args.run_dir)}: seed {args.seed}, grid point {args.grid_point}, {len(episodes)} {mode} "
          f"episode(s), eval seed {args.eval_seed}")  # fmt: skip
    print(episode_summary(episodes))
    print(f"wrote {out} ({frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
