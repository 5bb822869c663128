"""Where ``python -m jaxppo.render`` spends its time: ``python experiments/bench_render.py RUN_DIR``.

Times, in one process, the phases of rendering one deterministic episode of a run's agent (seed 0,
grid point 0) into a GIF: importing jaxppo, loading the checkpoint, playing the episode (compiling
the chunked episode loop included), playing it again (compiled: stepping and drawing alone), and
encoding the GIF. ``--repeats`` repeats the compiled play and the encoding.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    t0 = time.perf_counter()
    import jax

    from jaxppo.loading import load_agent
    from jaxppo.video import render_agent, save_video

    t1 = time.perf_counter()
    run, agent = load_agent(args.run_dir)
    t2 = time.perf_counter()

    def play():
        return render_agent(run.trainer, agent.params, agent.obs_stats, 1, jax.random.key(0), max_steps=args.max_steps)

    (episode,) = play()
    t3 = time.perf_counter()
    plays, encodes = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeats):
            start = time.perf_counter()
            (episode,) = play()
            middle = time.perf_counter()
            save_video(episode.frames, Path(scratch) / "episode.gif")
            plays.append(middle - start)
            encodes.append(time.perf_counter() - middle)
    print(f"{run.settings.config.env_id}: an episode of {episode.length} steps, frames {episode.frames.shape[1:]}")
    print(f"import {t1 - t0:.2f} s, load checkpoint {t2 - t1:.2f} s, first play (compiling) {t3 - t2:.2f} s")
    print(f"compiled play and draw {min(plays):.2f}-{max(plays):.2f} s, GIF {min(encodes):.2f}-{max(encodes):.2f} s "
          f"({args.repeats} repeats)")  # fmt: skip


if __name__ == "__main__":
    main()
