"""Shared fixtures: the float64 reference numbers computed by an independent implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# A copy kept with the tests, so a fresh clone needs nothing beside it.
REFERENCE_PATH = Path(__file__).resolve().parent / "data" / "ppo_reference.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(REFERENCE_PATH.read_text())
