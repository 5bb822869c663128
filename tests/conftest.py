"""Shared setup: programs compiled for tests (``utils.FAST_COMPILE``), and the float64 reference
numbers computed by an independent implementation."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from utils import FAST_COMPILE, xla_flags


def _compile_fast_into_this_runs_cache() -> None:
    """Every program the tests compile, in this process and in the commands they start, compiles
    with ``FAST_COMPILE`` (XLA reads ``XLA_FLAGS`` once, when jax starts its backends), and the
    commands share one persistent compilation cache that lives as long as the test run: a run
    neither reads nor fills the user's cache, so it takes as long on a fresh machine as on one that
    has run the tests before. The first process to load this file (xdist's controller, or the only
    one) makes the directory, and the workers it starts inherit both variables."""
    global _RUN_CACHE
    if _CACHE_VARIABLE not in os.environ:
        _RUN_CACHE = Path(tempfile.mkdtemp(prefix="jaxppo-tests-xla-"))
        os.environ[_CACHE_VARIABLE] = str(_RUN_CACHE)
        os.environ["JAXPPO_CACHE_DIR"] = str(_RUN_CACHE)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags(FAST_COMPILE)}".strip()
    import jax

    jax.devices()


def _headless_mujoco() -> None:
    """MuJoCo's offscreen renderer (``test_render_suites``) without a display: ``MUJOCO_GL`` is read
    when mujoco is first imported, which a suite module's ``importorskip`` does at collection."""
    from jaxppo.frames import headless_mujoco

    headless_mujoco()


_CACHE_VARIABLE = "JAXPPO_TESTS_RUN_CACHE"
_RUN_CACHE: Path | None = None  # set in the process that made the directory, which removes it
_compile_fast_into_this_runs_cache()
_headless_mujoco()


def pytest_unconfigure(config):
    if _RUN_CACHE is not None:
        shutil.rmtree(_RUN_CACHE, ignore_errors=True)


# Test modules from the longest to the shortest, as measured on two workers of a 2-core CPU; the
# others follow in collection order. xdist hands a whole module (``--dist loadfile``) to whichever
# worker is free, so the longest first keeps both workers busy to the end of the run.
LONGEST_FIRST = [
    "test_journeys", "test_cli", "test_learning", "test_recurrent", "test_suite_craftax", "test_faults", "test_resume",
    "test_multiprocess", "test_pbt", "test_custom_networks", "test_encoders", "test_train", "test_suite_sweep", "test_cli_fuzz",
    "test_suite_xminigrid", "test_render_suites", "test_render", "test_suite_playground", "test_suite_pgx",
    "test_suite_jumanji", "test_suite_brax", "test_envs", "test_suite_navix", "test_parallel",
    "test_action_spaces", "test_entry_points", "test_seams", "test_compilation", "test_golden", "test_policy_api",
]  # fmt: skip


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # xdist's order (most tests first) would replace LONGEST_FIRST


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the order within is kept


# A copy kept with the tests, so a fresh clone needs nothing beside it.
REFERENCE_PATH = Path(__file__).resolve().parent / "data" / "ppo_reference.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(REFERENCE_PATH.read_text())
