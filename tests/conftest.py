"""Shared setup: programs compiled for tests (``utils.FAST_COMPILE``), and the float64 reference
numbers computed by an independent implementation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from utils import FAST_COMPILE, xla_flags


def _start_jax_compiling_fast() -> None:
    """XLA reads ``XLA_FLAGS`` once, when jax starts its backends: start them with ``FAST_COMPILE``,
    then restore the variable, so the commands the tests start compile as a user's do (and their
    persistent compilation cache serves them)."""
    import jax

    before = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{before or ''} {xla_flags(FAST_COMPILE)}".strip()
    try:
        jax.devices()
    finally:
        if before is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = before


_start_jax_compiling_fast()


def pytest_collection_modifyitems(items):
    """Modules with learning runs (``slow``) first: on two workers (``--dist loadfile``) the longest
    modules start together instead of one of them ending the run alone."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within is kept

# A copy kept with the tests, so a fresh clone needs nothing beside it.
REFERENCE_PATH = Path(__file__).resolve().parent / "data" / "ppo_reference.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(REFERENCE_PATH.read_text())
