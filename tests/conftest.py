"""Shared setup: programs compiled for tests (``utils.FAST_COMPILE``), and the float64 reference
numbers computed by an independent implementation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from utils import FAST_COMPILE, xla_flags

# Read when jax starts its backends, after this; inherited by the commands the tests start.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags(FAST_COMPILE)}".strip()

# A copy kept with the tests, so a fresh clone needs nothing beside it.
REFERENCE_PATH = Path(__file__).resolve().parent / "data" / "ppo_reference.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(REFERENCE_PATH.read_text())
