"""Shared fixtures: the float64 reference numbers computed by an independent implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ppo_reference.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    if not REFERENCE_PATH.is_file():
        pytest.fail(f"reference numbers not found at {REFERENCE_PATH}")
    return json.loads(REFERENCE_PATH.read_text())
