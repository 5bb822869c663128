"""Short runs reproduce the pinned metrics and parameters of ``tests/data/golden.json``.

Bit for bit on the machine kind and jax build that wrote the file (float32 rounding depends on
both); elsewhere to float32 precision. See ``golden.py`` for the runs.
"""

import json

import numpy as np
import pytest

from golden import GOLDEN_PATH, RUNS, machine, run

GOLDEN = json.loads(GOLDEN_PATH.read_text())
SAME_MACHINE = GOLDEN["machine"] == machine()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_reproduces_the_golden_numbers(name):
    expected, got = GOLDEN["runs"][name], run(name)
    assert sorted(got["metrics"]) == sorted(expected["metrics"]), "metric names changed"
    for metric, values in expected["metrics"].items():
        np.testing.assert_allclose(got["metrics"][metric], values, rtol=2e-5, atol=1e-6, err_msg=metric)
    np.testing.assert_allclose(got["params_abs_sum"], expected["params_abs_sum"], rtol=1e-5)
    if SAME_MACHINE:
        assert got["metrics"] == expected["metrics"], "not bit-identical to the golden run"
        assert got["params_sha256"] == expected["params_sha256"], "final parameters not bit-identical"
