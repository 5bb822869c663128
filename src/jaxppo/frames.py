"""Env states as RGB frames: one ``Renderer`` per env that jaxppo can draw, for ``jaxppo.video``.

``renderer(env, env_params)`` picks, in this order:

- a user's env that defines ``render_frame(state, params) -> uint8 [H, W, 3]`` (the hook for a
  gymnax ``Environment`` of one's own; it is called on the host with one state at a time, and a
  pure jax function is fine too);
- the suites' own renderers: navix's ``observations.rgb``, xminigrid's ``rgb_render``, craftax's
  pixel renderer (for symbolic runs too), jumanji's matplotlib viewers, MuJoCo's offscreen renderer
  for brax and MuJoCo Playground (``MUJOCO_GL=egl`` or ``osmesa`` on a machine without a display);
- drawings made here: gymnax's classic control (CartPole, Pendulum, Acrobot, MountainCar and its
  continuous twin) and 2048 (pgx) drawn with PIL, and the MinAtar games (gymnax's and pgx's), whose
  observation grid is the picture, one colour per channel;
- gymnax's own matplotlib ``render(state, params)`` (Catch, FourRooms, MetaMaze, PointRobot, Pong);

and raises a one-line ``ConfigError`` for any other env. A renderer takes a batch of states
(leading axis) and returns ``uint8 [B, H, W, 3]``, the same size for every state of an env.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.config import ConfigError, first_line

HOOK = "render_frame"  # a user's env: render_frame(state, params) -> uint8 [H, W, 3]
MINATAR_COLOURS = np.array(  # one distinct colour per observation channel
    [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
     (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)], np.uint8)  # fmt: skip
MINATAR_CELL = 16  # pixels per MinAtar grid cell
MUJOCO_SIZE = (240, 320)  # height, width of a brax / Playground frame


@dataclasses.dataclass(frozen=True)
class Renderer:
    """``draw(state) -> [H, W, 3]`` for one state; ``traced``: a jax function, run vmapped and jitted
    on the device, else a host function given NumPy states one at a time."""

    draw: Callable
    traced: bool = False

    def __post_init__(self):
        if self.traced:  # compiled once per renderer and batch size
            object.__setattr__(self, "_batched", jax.jit(jax.vmap(self.draw)))

    def __call__(self, states) -> np.ndarray:
        """Frames ``uint8 [B, H, W, 3]`` of a batch of states."""
        if self.traced:
            return _as_uint8(np.asarray(self._batched(states)))
        states = jax.device_get(states)
        size = jax.tree.leaves(states)[0].shape[0]
        frames = [_as_uint8(np.asarray(self.draw(index_tree(states, b)))) for b in range(size)]
        return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)


def index_tree(tree, index):
    return jax.tree.map(lambda x: x[index], tree)


def _as_uint8(frame: np.ndarray) -> np.ndarray:
    """An RGB(A) image as ``uint8 [..., H, W, 3]``: floats in [0, 1] scaled by 255, others clipped."""
    frame = frame[..., :3]
    if np.issubdtype(frame.dtype, np.floating) and frame.size and np.nanmax(frame) <= 1.0:
        frame = frame * 255.0
    return np.clip(np.nan_to_num(frame), 0, 255).astype(np.uint8)


_RENDERERS_MADE: dict = {}  # id(env) -> (env, env_params, Renderer): one per env, its programs compiled once


def renderer(env, env_params) -> Renderer:
    """The ``Renderer`` of an env (see the module's text); ``ConfigError`` naming the hook where there is none."""
    made = _RENDERERS_MADE.get(id(env))
    if made is not None and made[0] is env and made[1] is env_params:
        return made[2]
    chosen = _choose(env, env_params)
    _RENDERERS_MADE.clear()  # the latest env's only: a renderer holds its env alive
    _RENDERERS_MADE[id(env)] = (env, env_params, chosen)
    return chosen


def _choose(env, env_params) -> Renderer:
    hook = getattr(env, HOOK, None)
    if callable(hook):
        return Renderer(lambda state: hook(state, env_params))
    for applies, make in _RENDERERS:
        if applies(env):
            return make(env, env_params)
    name = getattr(env, "name", type(env).__name__)
    raise ConfigError(f"{name} has no renderer: jaxppo draws gymnax's classic control and MinAtar, navix, xminigrid, "
                      f"craftax, jumanji, pgx, brax and MuJoCo Playground envs; give the env a method "
                      f"{HOOK}(state, params) returning a uint8 [H, W, 3] image")  # fmt: skip


def _module_of(env) -> str:
    return type(env).__module__


def _is(module_prefix: str, *class_names: str):
    return lambda env: _module_of(env).startswith(module_prefix) and (
        not class_names or type(env).__name__ in class_names
    )


# ------------------------------------------------------------------ gymnax: classic control
def _canvas(width: int = 240, height: int = 160):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (255, 255, 255))
    return image, ImageDraw.Draw(image)


def cartpole_frame(state, params) -> np.ndarray:
    """CartPole from its state: the cart at ``x`` on the track (±``x_threshold``), the pole at ``theta``."""
    width, height = 240, 160
    image, draw = _canvas(width, height)
    limit = float(getattr(params, "x_threshold", 2.4))
    scale = width / (2 * limit * 1.1)
    track = 110
    cart_x = width / 2 + float(state.x) * scale
    draw.line([(0, track), (width, track)], fill=(0, 0, 0))
    draw.rectangle([cart_x - 20, track - 10, cart_x + 20, track + 10], fill=(40, 40, 40))
    pole = 2 * float(getattr(params, "length", 0.5)) * scale
    theta = float(state.theta)
    draw.line([(cart_x, track - 10), (cart_x + pole * math.sin(theta), track - 10 - pole * math.cos(theta))],
              fill=(202, 152, 101), width=6)  # fmt: skip
    return np.asarray(image)


def pendulum_frame(state, params) -> np.ndarray:
    """Pendulum: the rod at ``theta`` (0 upright)."""
    image, draw = _canvas(160, 160)
    theta, centre, length = float(state.theta), (80, 80), 60
    end = (centre[0] + length * math.sin(theta), centre[1] - length * math.cos(theta))
    draw.line([centre, end], fill=(204, 77, 77), width=10)
    draw.ellipse([centre[0] - 5, centre[1] - 5, centre[0] + 5, centre[1] + 5], fill=(0, 0, 0))
    return np.asarray(image)


def acrobot_frame(state, params) -> np.ndarray:
    """Acrobot: two links from the pivot, hanging down at angles 0; the goal line one link above it."""
    image, draw = _canvas(160, 160)
    pivot, link = np.array([80.0, 80.0]), 35.0
    a1, a2 = float(state.joint_angle1), float(state.joint_angle2)
    elbow = pivot + link * np.array([math.sin(a1), math.cos(a1)])
    tip = elbow + link * np.array([math.sin(a1 + a2), math.cos(a1 + a2)])
    draw.line([(0, pivot[1] - link), (160, pivot[1] - link)], fill=(0, 0, 0))
    draw.line([tuple(pivot), tuple(elbow)], fill=(0, 204, 204), width=6)
    draw.line([tuple(elbow), tuple(tip)], fill=(0, 204, 204), width=6)
    draw.ellipse([pivot[0] - 4, pivot[1] - 4, pivot[0] + 4, pivot[1] + 4], fill=(204, 204, 0))
    return np.asarray(image)


def mountain_car_frame(state, params) -> np.ndarray:
    """MountainCar (discrete or continuous): the hill ``sin(3x)``, the car at ``position``, the goal flag."""
    width, height = 240, 160
    image, draw = _canvas(width, height)
    low, high = float(getattr(params, "min_position", -1.2)), float(getattr(params, "max_position", 0.6))
    to_x = lambda p: (p - low) / (high - low) * width
    to_y = lambda p: height - 20 - (math.sin(3 * p) * 0.45 + 0.55) * 100
    xs = np.linspace(low, high, 100)
    draw.line([(to_x(p), to_y(p)) for p in xs], fill=(0, 0, 0), width=2)
    goal = float(getattr(params, "goal_position", 0.5))
    draw.line([(to_x(goal), to_y(goal)), (to_x(goal), to_y(goal) - 25)], fill=(0, 0, 0))
    draw.polygon([(to_x(goal), to_y(goal) - 25), (to_x(goal) + 12, to_y(goal) - 20), (to_x(goal), to_y(goal) - 15)],
                 fill=(204, 204, 0))  # fmt: skip
    p = float(state.position)
    x, y = to_x(p), to_y(p)
    draw.ellipse([x - 8, y - 16, x + 8, y], fill=(60, 60, 200))
    return np.asarray(image)


CLASSIC = {"CartPole": cartpole_frame, "Pendulum": pendulum_frame, "Acrobot": acrobot_frame,
           "MountainCar": mountain_car_frame, "ContinuousMountainCar": mountain_car_frame}  # fmt: skip


def _classic(env, params) -> Renderer:
    draw = CLASSIC[type(env).__name__]
    return Renderer(lambda state: draw(state, params))


# ------------------------------------------------------------------ MinAtar (gymnax's and pgx's)
def minatar_picture(grid: jax.Array) -> jax.Array:
    """A MinAtar observation ``[10, 10, C]`` as an RGB picture: each cell the colour of its first set
    channel (the games list the moving pieces first: Breakout's ball shows over a brick), black
    where none is, ``MINATAR_CELL`` pixels a cell."""
    grid = jnp.asarray(grid) > 0
    channels = grid.shape[-1]
    colours = jnp.asarray(np.resize(MINATAR_COLOURS, (channels, 3)))
    cells = jnp.where(grid.any(-1)[..., None], colours[jnp.argmax(grid, axis=-1)], 0).astype(jnp.uint8)
    return jnp.repeat(jnp.repeat(cells, MINATAR_CELL, axis=0), MINATAR_CELL, axis=1)


def _gymnax_minatar(env, params) -> Renderer:
    return Renderer(lambda state: minatar_picture(env.get_obs(state, params)), traced=True)


# ------------------------------------------------------------------ gymnax's matplotlib renderers
def figure_pixels(figure) -> np.ndarray:
    """A matplotlib figure as ``uint8 [H, W, 3]`` (closed afterwards)."""
    import matplotlib.pyplot as plt

    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return pixels


def _gymnax_matplotlib(env, params) -> Renderer:
    import matplotlib

    matplotlib.use("Agg")

    def draw(state):
        drawn = env.render(state, params)  # (figure, axes), or an artist (Pong's image)
        figure = drawn[0] if isinstance(drawn, tuple) else drawn.figure
        figure.set_size_inches(3, 3)
        figure.set_dpi(64)
        return figure_pixels(figure)

    return Renderer(draw)


def _has_own_render(env) -> bool:
    return _module_of(env).startswith("gymnax.") and callable(getattr(type(env), "render", None))


# ------------------------------------------------------------------ the suites
def _navix(env, params) -> Renderer:
    import navix

    return Renderer(lambda state: navix.observations.rgb(state.inner.state), traced=True)


def _xminigrid(env, params) -> Renderer:
    from xminigrid.rendering.rgb_render import render

    view_size = int(env.raw_params.view_size)
    return Renderer(lambda state: render(np.asarray(state.inner.state.grid), state.inner.state.agent, view_size))


def _craftax(env, params) -> Renderer:
    import importlib

    classic = type(env.raw_env).__module__.startswith("craftax.craftax_classic")
    package = "craftax.craftax_classic" if classic else "craftax.craftax"
    renderer_module = importlib.import_module(f"{package}.renderer")
    constants = importlib.import_module(f"{package}.constants")
    block = constants.BLOCK_PIXEL_SIZE_IMG  # 16 pixels a block: craftax's own image size
    render = renderer_module.make_craftax_pixel_renderer(block) if classic else \
        renderer_module.make_craftax_pixel_renderer(block, do_night_noise=False)  # fmt: skip
    return Renderer(lambda state: render(state.inner), traced=True)


def _jumanji(env, params) -> Renderer:
    """The env's own ``render(state)`` on a copy of the env whose matplotlib viewers return images
    (jumanji's ``render_mode="rgb_array"``): the env knows which part of its state its viewer draws."""
    import copy

    import matplotlib

    matplotlib.use("Agg")
    from jumanji.viewer import MatplotlibViewer

    raw = copy.copy(env.raw_env)  # the env's own viewers keep drawing on screen
    viewers = [name for name, value in vars(raw).items() if isinstance(value, MatplotlibViewer)]
    if not viewers:
        raise ConfigError(f"{env.name} has no renderer: its jumanji viewer does not draw with matplotlib, which is "
                          f"how jaxppo renders jumanji envs")  # fmt: skip
    for name in viewers:
        viewer = copy.copy(getattr(raw, name))
        viewer._display = viewer._display_rgb_array
        viewer._name = f"jaxppo-{viewer._name}"  # a figure of its own
        viewer.figure_size = (4.0, 4.0)
        setattr(raw, name, viewer)

    def draw(state):
        state = jax.tree.map(jnp.asarray, state.inner.state)  # jumanji's viewers index with jax (.at[...])
        frame = raw.render(state)
        if np.ndim(frame) != 3:  # an env's render that drops its viewer's image (Snake's)
            frame = getattr(raw, viewers[0]).render(state)
        return np.asarray(frame)[..., :3].copy()

    return Renderer(draw)


def game_2048_frame(observation) -> np.ndarray:
    """pgx's 2048 from its one-hot exponent planes ``[4, 4, 31]``: the tiles and their values."""
    image, draw = _canvas(160, 160)
    exponents = np.argmax(np.asarray(observation), axis=-1)
    for row, col in np.ndindex(exponents.shape):
        e = int(exponents[row, col])
        x, y = 4 + col * 39, 4 + row * 39
        shade = 238 - min(e, 11) * 14
        draw.rectangle([x, y, x + 35, y + 35], fill=(238, shade, 180 - min(e, 11) * 12) if e else (205, 193, 180))
        if e:
            text = str(2**e)
            draw.text((x + 18 - 3 * len(text), y + 12), text, fill=(0, 0, 0))
    return np.asarray(image)


def _pgx(env, params) -> Renderer:
    if env.name == "pgx/2048":
        return Renderer(lambda state: game_2048_frame(state.inner.observation))
    return Renderer(lambda state: minatar_picture(state.inner.observation), traced=True)


def mujoco_renderer(model, height: int, width: int):
    """``mujoco.Renderer`` of ``model``; ``ConfigError`` where MuJoCo cannot open an offscreen context."""
    import mujoco

    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as error:  # no GL library, no display for glfw, ...
        raise ConfigError(f"MuJoCo's offscreen renderer cannot start ({first_line(error)}); install EGL or OSMesa "
                          f"(Debian: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri, or libosmesa6) and set "
                          f"MUJOCO_GL=egl (or osmesa) before mujoco is imported") from None  # fmt: skip


def _mujoco(model, positions: Callable) -> Renderer:
    """Frames of a MuJoCo model from the joint positions ``positions(state)`` (forward kinematics on the host)."""
    import mujoco

    height, width = MUJOCO_SIZE
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    state = {}

    def draw(env_state):
        if "renderer" not in state:  # on first use: a context per renderer
            state["renderer"], state["data"] = mujoco_renderer(model, height, width), mujoco.MjData(model)
        data = state["data"]
        data.qpos[:] = np.asarray(positions(env_state), np.float64)
        mujoco.mj_forward(model, data)
        state["renderer"].update_scene(data)
        return state["renderer"].render().copy()

    return Renderer(draw)


def _brax_like(env, params) -> Renderer:
    raw = env.raw_env
    if env.name.startswith("playground/"):
        return _mujoco(raw.mj_model, lambda state: state.inner.data.qpos)
    model = getattr(getattr(raw, "sys", None), "mj_model", None)
    if model is None:
        raise ConfigError(f"{env.name} has no renderer: it has no MuJoCo model (sys.mj_model) to draw")
    pipeline = lambda state: state.inner.pipeline_state
    return _mujoco(model, lambda state: getattr(pipeline(state), "q", None)
                   if getattr(pipeline(state), "q", None) is not None else pipeline(state).qpos)  # fmt: skip


def _suite(name: str):
    return lambda env: type(env).__module__ == f"jaxppo.suites.{name}"


_RENDERERS: list[tuple[Callable[[Any], bool], Callable]] = [
    (_is("gymnax.environments.classic_control", *CLASSIC), _classic),
    (_is("gymnax.environments.minatar"), _gymnax_minatar),
    (_suite("navix"), _navix),
    (_suite("xminigrid"), _xminigrid),
    (_suite("craftax"), _craftax),
    (_suite("jumanji"), _jumanji),
    (_suite("pgx"), _pgx),
    (lambda env: type(env).__module__ == "jaxppo.suites._brax_like", _brax_like),
    (_has_own_render, _gymnax_matplotlib),
]


def headless_mujoco() -> None:
    """MuJoCo's offscreen renderer on a machine without a display: EGL unless ``MUJOCO_GL`` says
    otherwise. MuJoCo reads the variable once, when it is first imported."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
