"""What a run reports while it trains: the in-run ``Evaluator`` (eval.csv rows, final returns)
and the optional TensorBoard and Weights & Biases loggers.

Each takes the host-side metrics ``[G, S, n]`` or states ``[G, S]`` of this process's seeds
between compiled chunks; none of them changes the training numbers.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax
import numpy as np

from jaxppo import rundir
from jaxppo.evaluation import agent_keys, evaluate
from jaxppo.factories import RunFacts


class Evaluator:
    """In-jit evaluation of every agent at once: periodic rows in eval.csv, and the final one."""

    def __init__(self, facts: RunFacts, run_dir: Path, done: int, first_seed: int = 0):
        trainer, settings = facts.trainer, facts.settings
        self.settings, self.path, self.first_seed = settings, run_dir / rundir.EVAL_FILE, first_seed
        self.evaluate_all = jax.jit(
            lambda p, s, k: evaluate(
                trainer, p, s, k, settings.eval_episodes, settings.deterministic_eval, batch_dims=2
            )
        )
        self.hparam_rows = facts.hparam_rows
        # On resume, keep the evaluations made up to the checkpoint.
        self.rows = [r for r in rundir.read_csv(self.path) if int(r["iteration"]) <= done] if self.path.exists() else []

    def returns(self, states, key) -> np.ndarray:
        """``[G, S, episodes]``; agent (g, s) gets the same key whichever process evaluates it."""
        grid_size, seeds = np.shape(states.diverged_at)
        keys = agent_keys(key, (grid_size, self.settings.seeds))[:, self.first_seed : self.first_seed + seeds]
        return np.asarray(self.evaluate_all(states.params, states.obs_stats, keys))

    def record(self, states, iteration: int, env_steps: int) -> None:
        returns = self.returns(states, jax.random.fold_in(jax.random.key(self.settings.seed + 1), iteration))
        for g, s in np.ndindex(returns.shape[:2]):
            hparams = {f"hp_{k}": v for k, v in self.hparam_rows[g].items()}
            self.rows.append({"grid_point": g, **hparams, "seed": self.first_seed + s,
                              "iteration": iteration, "env_steps": env_steps,
                              "eval_return": str(returns[g, s].mean()),
                              "eval_return_std": str(returns[g, s].std())})  # fmt: skip
        rundir.atomic_write_text(self.path, rundir.rows_csv(self.rows))

    def final(self, states) -> np.ndarray:
        return self.returns(states, jax.random.key(self.settings.seed + 1))


class Videos:
    """``--video-every``: a GIF of one evaluation episode of the first agent (grid point 0, this
    process's first seed) in ``videos/iteration_<K>.gif``: the episode ``python -m jaxppo.render``
    plays from that iteration's checkpoint (``--max-steps VIDEO_MAX_STEPS``)."""

    DIRECTORY = "videos"
    MAX_STEPS = 1000  # a video during training stays a few seconds of drawing

    def __init__(self, facts: RunFacts, run_dir: Path, first_seed: int = 0):
        self.trainer, self.directory, self.first_seed = facts.trainer, run_dir / self.DIRECTORY, first_seed
        self.agents = (facts.num_points, facts.settings.seeds)  # the run's [G, S]

    def write(self, states, iteration: int) -> Path:
        from jaxppo.video import render_agent, save_video

        agent = jax.tree.map(lambda x: x[0, 0], states)
        # evaluate's key of this agent with --seed 0, as python -m jaxppo.render takes it
        key = agent_keys(jax.random.key(0), self.agents)[0, self.first_seed]
        (episode,) = render_agent(self.trainer, agent.params, agent.obs_stats, 1, key, max_steps=self.MAX_STEPS)
        self.directory.mkdir(exist_ok=True)
        return save_video(episode.frames, self.directory / f"iteration_{iteration:06d}.gif")


class TensorBoard:
    """One TensorBoard run per (grid point, seed): every metric against env steps."""

    def __init__(self, run_dir: Path, facts: RunFacts, done: int, seed_range: range):
        from tensorboardX import SummaryWriter

        self.writers = {
            (g, s): SummaryWriter(str(run_dir / "tensorboard" / f"grid{g}_seed{seed}"), purge_step=done + 1)
            for g in range(facts.num_points)
            for s, seed in enumerate(seed_range)
        }

    def write(self, metrics: dict) -> None:
        steps = metrics["env_steps"]
        for (g, s), writer in self.writers.items():
            for i in range(steps.shape[-1]):
                step = int(steps[g, s, i])
                for name, values in metrics.items():
                    if name != "env_steps" and np.isfinite(values[g, s, i]):
                        writer.add_scalar(f"train/{name}", float(values[g, s, i]), step)

    def video(self, path: Path, env_steps: int) -> None:
        """A ``--video-every`` GIF, as TensorBoard shows animated images, in the first agent's run."""
        from PIL import Image
        from tensorboardX.proto.summary_pb2 import Summary

        with Image.open(path) as image:
            width, height = image.size
        picture = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=path.read_bytes())
        writer = next(iter(self.writers.values()))
        writer.file_writer.add_summary(Summary(value=[Summary.Value(tag="video/episode", image=picture)]), env_steps)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class Wandb:
    """One Weights & Biases run per grid point (grouped by run directory): per-seed returns and
    every metric's mean over seeds, against env steps. ``WANDB_MODE=offline`` works without a login.
    """

    def __init__(self, run_dir: Path, facts: RunFacts, seed_range: range):
        import wandb

        settings, hparams = facts.settings, facts.hparam_rows
        self.runs = [
            wandb.init(
                project=os.environ.get("WANDB_PROJECT", "jaxppo"),
                group=run_dir.name,
                name=f"{run_dir.name}/grid{g}"
                + (f"/seeds{seed_range.start}-{seed_range.stop - 1}" if len(seed_range) < settings.seeds else ""),
                dir=str(run_dir),
                reinit="create_new",
                config={**settings.to_json()["config"], **hparams[g], "seeds": settings.seeds},
            )  # fmt: skip
            for g in range(facts.num_points)
        ]
        self.first_seed = seed_range.start

    def write(self, metrics: dict) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN iterations (no episode finished)
            for g, run in enumerate(self.runs):
                for i in range(metrics["env_steps"].shape[-1]):
                    row = {name: float(np.nanmean(values[g, :, i])) for name, values in metrics.items()}
                    row.update({f"episode_return/seed{self.first_seed + s}": float(v)
                                for s, v in enumerate(metrics["episode_return"][g, :, i])})  # fmt: skip
                    run.log(row, step=int(metrics["env_steps"][g, 0, i]))

    def video(self, path: Path, env_steps: int) -> None:
        """A ``--video-every`` GIF in grid point 0's run."""
        import wandb

        self.runs[0].log({"video/episode": wandb.Video(str(path), format="gif")}, step=env_steps)

    def close(self) -> None:
        for run in self.runs:
            run.finish()
