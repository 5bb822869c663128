"""Adapters that turn other JAX simulators into gymnax 1.0 ``Environment`` instances.

An env id ``suite/name`` (``brax/ant``, ``jumanji/Snake-v1``) names an env of one of these suites;
a bare id stays a gymnax id. Each suite is an optional extra (``pip install "jaxppo[brax]"``, or
``"jaxppo[envs]"`` for all of them) and its adapter module is imported only when one of its envs
is made. Every adapter is built on ``base.SuiteEnv``: the suite's raw env stepped without its own
auto-reset, termination and truncation told apart, the pre-reset observation kept in
``info["final_observation"]``, and a freshly drawn reset on the same step.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util

from jaxppo.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Suite:
    module: str  # the jaxppo adapter module, with make(name, **env_kwargs) -> (env, env_params)
    extra: str  # the pip extra that installs the suite
    imports: tuple[str, ...]  # top-level packages the adapter needs
    example: str  # a quick env of the suite: the one every suite's contract test steps
    time_limit_kwargs: tuple[str, ...] = ()  # the suite's own names for max_steps_in_episode


SUITES = {
    "playground": Suite("jaxppo.suites.playground", "playground", ("mujoco_playground", "brax"), "CartpoleBalance"),
    "brax": Suite("jaxppo.suites.brax", "brax", ("brax",), "fast"),
    "jumanji": Suite("jaxppo.suites.jumanji", "jumanji", ("jumanji",), "Game2048-v1"),
    "craftax": Suite("jaxppo.suites.craftax", "craftax", ("craftax",), "Craftax-Classic-Symbolic-v1", ("max_timesteps",)),
    "navix": Suite("jaxppo.suites.navix", "navix", ("navix",), "Navix-Empty-5x5-v0"),
    "xminigrid": Suite("jaxppo.suites.xminigrid", "xminigrid", ("xminigrid",), "MiniGrid-Empty-5x5"),
    "pgx": Suite("jaxppo.suites.pgx", "pgx", ("pgx",), "2048"),
}


def time_limit_kwargs(env_id: str) -> tuple[str, ...]:
    """The env kwargs that a suite takes as its own name for the time limit (craftax's
    ``max_timesteps``); empty for gymnax ids and unknown suites."""
    suite = SUITES.get(split_env_id(env_id)[0] or "")
    return suite.time_limit_kwargs if suite else ()


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """``"brax/ant"`` -> ``("brax", "ant")``; a bare gymnax id -> ``(None, id)``."""
    suite, slash, name = env_id.partition("/")
    return (suite, name) if slash else (None, env_id)


def make(env_id: str, **env_kwargs):
    """The env and default params of a ``suite/name`` id; a ``ConfigError`` names what is wrong
    (an unknown suite, a suite that is not installed and the extra that installs it)."""
    suite_name, name = split_env_id(env_id)
    suite = SUITES.get(suite_name)
    if suite is None:
        raise ConfigError(f"unknown env suite {suite_name!r} in {env_id!r}; suites: {', '.join(SUITES)} (or a bare gymnax id)")
    if not name:
        raise ConfigError(f"env id {env_id!r} names no env; write {suite_name}/<name>")
    missing = [package for package in suite.imports if importlib.util.find_spec(package) is None]
    if missing:
        raise ConfigError(
            f"env {env_id!r} needs the {suite_name} suite, which is not installed: "
            f"pip install \"jaxppo[{suite.extra}]\""
        )
    return importlib.import_module(suite.module).make(name, **env_kwargs)
