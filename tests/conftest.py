"""Shared fixtures: the float64 reference numbers computed by an independent implementation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# ../shared beside the checkout (as in CI); JAXPPO_SHARED points elsewhere for other layouts.
SHARED = Path(os.environ.get("JAXPPO_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REFERENCE_PATH = SHARED / "reference" / "ppo_reference.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    if not REFERENCE_PATH.is_file():
        pytest.fail(f"reference numbers not found at {REFERENCE_PATH}; check out beside ../shared or set JAXPPO_SHARED")
    return json.loads(REFERENCE_PATH.read_text())
