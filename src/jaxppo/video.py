"""Episode videos of a trained agent: ``render_episodes`` (a run directory's agent), ``render_agent``
(a trainer's parameters) and ``save_video`` (GIF or MP4); ``python -m jaxppo.render`` is the command.

The episodes are ``jaxppo.evaluate``'s: the same loop (``evaluation.episode_loop``) with the same
key, so their returns are the ones ``evaluate`` reports for that agent, key and number of episodes.
The loop runs compiled, a chunk of steps at a time, and hands back the env state before every
step; the states of the steps each episode was still running are drawn on the host
(``jaxppo.frames``), one frame a step, with the step and the return so far written above it.
"""

from __future__ import annotations

import io
import math
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxppo.config import ConfigError
from jaxppo.rundir import atomic_write_bytes, writable_file

VIDEO_SUFFIXES = (".gif", ".mp4")
DEFAULT_FPS = 30
CHUNK_STEPS = 64  # steps per compiled call: the states of a chunk wait on the device to be drawn
LABEL_HEIGHT = 14  # pixels of the strip above a frame that says the step and the return
MIN_SIDE, MAX_SIDE = 160, 400  # frames are scaled by whole factors into this range (their longer side)


class Episode(NamedTuple):
    frames: np.ndarray  # uint8 [T, H, W, 3]: the state before each of its T steps
    episode_return: float
    length: int


def check_video_path(out, flag: str = "out") -> Path:
    """``out`` if a video can be written there (a ``.gif`` or ``.mp4`` name in a writable
    directory), else ``ConfigError`` naming ``flag``."""
    out = writable_file(out, flag, VIDEO_SUFFIXES, "episode.gif")
    if out.suffix.lower() == ".mp4":
        _mp4_writer()
    return out


def _mp4_writer():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 with)
    except ImportError:
        raise ConfigError("an .mp4 video needs imageio and imageio-ffmpeg: pip install 'jaxppo[video]', "
                          "or write a .gif") from None  # fmt: skip
    return imageio


def save_video(frames, path, fps: int = DEFAULT_FPS) -> Path:
    """Write ``frames`` (``uint8 [T, H, W, 3]``, or a list of such arrays, played one after another)
    as a GIF or an MP4, by ``path``'s suffix; the file appears whole or not at all."""
    path = check_video_path(path, "path")
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer, float)) or not 0 < fps <= 100:
        raise ConfigError(f"fps must be a number in (0, 100], got {fps!r}")
    parts = [np.asarray(f) for f in frames] if isinstance(frames, (list, tuple)) else [np.asarray(frames)]
    frames = np.concatenate([p for p in parts if p.size], axis=0) if any(p.size for p in parts) else None
    if frames is None or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError("frames must be uint8 [T, H, W, 3] arrays with at least one frame")
    data = gif_bytes(frames, fps) if path.suffix.lower() == ".gif" else mp4_bytes(frames, fps)
    atomic_write_bytes(path, data)
    return path


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """An animated GIF of ``frames``, looping; one shared palette (the first frame's, with the others'
    colours quantised to it): fast, and small for the flat colours of these drawings."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    palette = images[0].quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    quantised = [palette] + [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images[1:]]
    buffer = io.BytesIO()
    quantised[0].save(buffer, format="GIF", save_all=True, append_images=quantised[1:],
                      duration=max(20, round(1000 / fps)), loop=0, optimize=False)  # fmt: skip
    return buffer.getvalue()


def mp4_bytes(frames: np.ndarray, fps: float) -> bytes:
    """An H.264 MP4 of ``frames`` (ffmpeg writes it to a scratch file first)."""
    imageio = _mp4_writer()
    # H.264 wants even sides: pad by a row or a column of black where odd
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
    with tempfile.TemporaryDirectory(prefix="jaxppo-video-") as scratch, warnings.catch_warnings():
        # imageio starts ffmpeg with subprocess, whose fork Python warns about in a threaded (jax) process;
        # the child execs ffmpeg at once and touches none of jax's threads
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        path = Path(scratch) / "video.mp4"
        with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=7,
                                macro_block_size=1, ffmpeg_log_level="error") as writer:  # fmt: skip
            for frame in frames:
                writer.append_data(frame)
        return path.read_bytes()


# ------------------------------------------------------------------ playing and drawing
def render_agent(trainer, params, obs_stats, num_episodes: int = 1, key=None, deterministic: bool = True,
                 max_steps: int | None = None) -> list[Episode]:  # fmt: skip
    """``num_episodes`` episodes of one agent (``params``, ``obs_stats`` without batch axes) in the
    trainer's env, as ``evaluate(trainer, params, obs_stats, key, num_episodes, deterministic)``
    plays them (``key`` default ``jax.random.key(0)``), each cut at ``max_steps`` if given:
    an ``Episode`` each, its frames drawn by ``jaxppo.frames`` (``ConfigError`` for an env
    without a renderer, before anything is played)."""
    from jaxppo import frames as frame_module
    from jaxppo.evaluation import episode_step_limit
    from jaxppo.frames import index_tree

    if isinstance(num_episodes, bool) or not isinstance(num_episodes, (int, np.integer)) or num_episodes < 1:
        raise ConfigError(f"num_episodes must be a positive integer, got {num_episodes!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 1):  # fmt: skip
        raise ConfigError(f"max_steps must be a positive integer, got {max_steps!r}")
    draw = frame_module.renderer(trainer.spec.env, trainer.spec.env_params)
    key = jax.random.key(0) if key is None else key
    limit = episode_step_limit(trainer) if max_steps is None else min(int(max_steps), episode_step_limit(trainer))
    chunk = _chunk_program(trainer, int(num_episodes), bool(deterministic))
    carry = chunk.init(params, obs_stats, key)
    pieces = [[] for _ in range(num_episodes)]
    returns = np.zeros(num_episodes, np.float32)
    lengths = np.zeros(num_episodes, np.int64)
    t = 0
    while t < limit:
        carry, (states, running, returns_after) = chunk.run(params, obs_stats, carry)
        running, returns_after = np.asarray(running), np.asarray(returns_after)
        steps = min(CHUNK_STEPS, limit - t)
        running = running[:steps]
        if draw.traced:  # the whole chunk on the device at once, then the frames that count
            chunk_frames = draw(jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), states))
            chunk_frames = chunk_frames.reshape((CHUNK_STEPS, num_episodes, *chunk_frames.shape[1:]))
        for i in range(num_episodes):
            live = np.flatnonzero(running[:, i])
            if not live.size:
                continue
            if draw.traced:
                drawn = chunk_frames[live, i]
            else:
                drawn = draw(index_tree(states, (live, i)))
            pieces[i].append(labelled(drawn, t + live + 1, returns_after[live, i]))
            lengths[i] += live.size
            returns[i] = returns_after[live[-1], i]
        t += steps
        if not np.asarray(carry.running).any():  # every episode ended
            break
    return [Episode(np.concatenate(p) if p else np.zeros((0, 1, 1, 3), np.uint8), float(r), int(n))
            for p, r, n in zip(pieces, returns, lengths, strict=True)]  # fmt: skip


class _Chunk(NamedTuple):
    init: object  # jitted (params, obs_stats, key) -> EpisodeCarry
    run: object  # jitted (params, obs_stats, carry) -> (carry, (states [K, N], running [K, N], returns_after [K, N]))


_CHUNKS: dict = {}


def _chunk_program(trainer, num_episodes: int, deterministic: bool) -> _Chunk:
    """The compiled first carry and chunk of ``CHUNK_STEPS`` steps of ``evaluation.episode_loop``."""
    from jaxppo.evaluation import episode_loop

    cache_key = (id(trainer), num_episodes, deterministic)
    if cache_key in _CHUNKS and _CHUNKS[cache_key][0] is trainer:
        return _CHUNKS[cache_key][1]

    def init(params, obs_stats, key):
        return episode_loop(trainer, params, obs_stats, key, num_episodes, deterministic)[0]

    def run(params, obs_stats, carry):
        # the body needs only params and obs_stats from the loop; the carry holds the rest
        body = episode_loop(trainer, params, obs_stats, carry.key, num_episodes, deterministic)[1]

        def step(carry, _):
            after = body(carry)
            return after, (carry.env_state, carry.running, after.returns)

        return jax.lax.scan(step, carry, None, length=CHUNK_STEPS)

    program = _Chunk(jax.jit(init), jax.jit(run))
    _CHUNKS.clear()  # one trainer at a time: a program holds its trainer's env alive
    _CHUNKS[cache_key] = (trainer, program)
    return program


def render_episodes(run_dir, seed: int = 0, grid_point: int = 0, num_episodes: int = 1, *, eval_seed: int = 0,
                    deterministic: bool = True, max_steps: int | None = None) -> list[np.ndarray]:  # fmt: skip
    """The frames of ``num_episodes`` episodes of a run's agent (``seed``, ``grid_point``) from its
    latest checkpoint, in the run's env: a ``uint8 [T, H, W, 3]`` array per episode, ``T`` its
    length (cut at ``max_steps`` if given). They are the episodes ``jaxppo.evaluate`` plays for that
    agent with ``jax.random.key(eval_seed)`` (``python -m jaxppo.evaluate RUN_DIR --seed eval_seed
    --episodes num_episodes``), a recurrent policy carrying its state from step to step."""
    return [episode.frames for episode in play_run(run_dir, seed, grid_point, num_episodes, eval_seed=eval_seed,
                                                   deterministic=deterministic, max_steps=max_steps)]  # fmt: skip


def play_run(run_dir, seed: int = 0, grid_point: int = 0, num_episodes: int = 1, *, eval_seed: int = 0,
             deterministic: bool = True, max_steps: int | None = None) -> list[Episode]:  # fmt: skip
    """``render_episodes`` with each episode's return and length (``Episode``)."""
    from jaxppo import frames as frame_module
    from jaxppo.envs import make_env
    from jaxppo.evaluation import agent_keys
    from jaxppo.loading import check_agent, load_agent

    frame_module.headless_mujoco()  # before brax or Playground imports mujoco
    run_dir, settings, seed, grid_point = check_agent(run_dir, seed, grid_point)
    config = settings.config
    spec = make_env(config.env_id, config.env_kwargs)
    frame_module.renderer(spec.env, spec.env_params)  # an env without a renderer: refused before loading
    run, agent = load_agent(run_dir, seed, grid_point)
    # evaluate's key of agent (grid_point, seed): one key per agent of the run's [G, S]
    key = agent_keys(jax.random.key(eval_seed), (run.num_grid_points, run.num_seeds))[grid_point, seed]
    return render_agent(run.trainer, agent.params, agent.obs_stats, num_episodes, key, deterministic, max_steps)


# ------------------------------------------------------------------ labels
def fitted(frames: np.ndarray) -> np.ndarray:
    """``frames`` scaled by a whole factor so that their longer side lies in ``MIN_SIDE..MAX_SIDE``."""
    side = max(frames.shape[1:3])
    if side < MIN_SIDE:
        factor = math.ceil(MIN_SIDE / side)
        return np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)
    if side > MAX_SIDE:
        factor = math.ceil(side / MAX_SIDE)
        return frames[:, ::factor, ::factor]
    return frames


def labelled(frames: np.ndarray, steps, returns) -> np.ndarray:
    """``frames`` (fitted) under a strip that says each one's step and return so far."""
    from PIL import Image, ImageDraw, ImageFont

    frames = fitted(np.asarray(frames, np.uint8))
    count, height, width = frames.shape[:3]
    out = np.zeros((count, height + LABEL_HEIGHT, width, 3), np.uint8)
    out[:, LABEL_HEIGHT:] = frames
    font = ImageFont.load_default(size=LABEL_HEIGHT - 3)
    for k in range(count):
        strip = Image.new("RGB", (width, LABEL_HEIGHT))
        ImageDraw.Draw(strip).text((3, 1), f"step {int(steps[k])}   return {float(returns[k]):.6g}", fill=(255, 255, 255),
                                   font=font)
        out[k, :LABEL_HEIGHT] = np.asarray(strip)
    return out


def episode_summary(episodes: list[Episode]) -> str:
    """One line per episode: its return and length."""
    return "\n".join(f"episode {i}: return {e.episode_return:.6g}, length {e.length}" for i, e in enumerate(episodes))


