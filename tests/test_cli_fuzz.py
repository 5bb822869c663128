"""Random command lines of ``jaxppo.run``, valid and invalid values mixed (hypothesis): each one
exits 0 or 2, never with a traceback; a refused one prints one line and writes nothing.

Commands run in the test process (``in_this_process``): most are refused before anything compiles,
and the ones that train have tiny budgets. The examples are derandomised, so CI sees the same ones
on every run; ``JAXPPO_FUZZ_EXAMPLES=N`` draws N random ones instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_harness import ERROR_PREFIX, in_this_process

pytestmark = pytest.mark.timeout(600)

# flag -> values a user might type: valid ones and mistakes
FLAGS = {
    "--env": ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "NoSuchEnv-v0", "brax/nope", "nosuite/x", ""],
    "--seeds": ["1", "2", "3", "0", "-1", "x"],
    "--seed": ["0", "7", "abc"],
    "--num-envs": ["1", "2", "4", "0", "x"],
    "--num-steps": ["8", "16", "64", "0", "1.5"],
    "--num-minibatches": ["1", "2", "3", "4", "0"],
    "--update-epochs": ["1", "2", "0", "-3"],
    "--learning-rate": ["1e-3", "2.5e-4", "-1", "nan", "inf", "fast"],
    "--gamma": ["0.99", "1.5", "-0.1"],
    "--gae-lambda": ["0.95", "2"],
    "--clip-coef": ["0.2", "-0.2"],
    "--ent-coef": ["0.0", "0.01"],
    "--max-grad-norm": ["0.5", "inf"],
    "--target-kl": ["0.01", "none", "-1", "0"],
    "--truncation": ["bootstrap", "terminate", "sometimes"],
    "--hidden-sizes": ["16", "16,16", "0", "a,b", ","],
    "--activation": ["relu", "tanh", "swish9"],
    "--recurrent": ["gru", "none", "lstm"],
    "--recurrent-size": ["8", "0"],
    "--encoder": ["auto", "mlp", "cnn", "resnet"],
    "--grid": ["learning_rate=1e-3,3e-4", "clip_coef=0.1,0.2", "bogus=1", "gamma=", "learning_rate=x", "nonsense"],
    "--checkpoint-every": ["1", "2", "0"],
    "--checkpoint-minutes": ["0", "-1"],
    "--eval-episodes": ["0", "2", "-1"],
    "--eval-every": ["1", "0"],
    "--video-every": ["2", "0"],
    "--seed-chunk": ["1", "0"],
    "--env-kwarg": ["max_steps_in_episode=50", "=bad", "noequals"],
    "--obs-clip": ["5", "0"],
    "--adv-std-ddof": ["0", "1", "2"],
    "--config": ["missing.toml", "settings.txt"],
    "--resume": ["no-such-run"],
}
SWITCHES = ["--norm-adv", "--no-norm-adv", "--clip-vloss", "--no-clip-vloss", "--anneal-lr", "--no-anneal-lr",
            "--normalize-observations", "--no-normalize-rewards", "--shared-trunk", "--overwrite",
            "--stochastic-eval", "--bogus-flag", "--num-env"]  # fmt: skip
BUDGETS = ["1024", "512", "2048", "1e3", "128", "2.5", "-5", "0"]  # valid ones first: drawn more often


@st.composite
def command_lines(draw) -> list[str]:
    args = ["--total-timesteps", draw(st.sampled_from(BUDGETS))]  # always a tiny budget
    for flag in draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=6, unique=True)):
        args += [flag, draw(st.sampled_from(FLAGS[flag]))]
    args += draw(st.lists(st.sampled_from(SWITCHES), max_size=2, unique=True))
    return args


def examples() -> dict:
    count = os.environ.get("JAXPPO_FUZZ_EXAMPLES")
    return {"max_examples": int(count)} if count else {"max_examples": 40, "derandomize": True}


@settings(**examples(), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(args=command_lines())
def test_every_command_line_exits_0_or_2_and_a_refused_one_writes_nothing(args):
    with tempfile.TemporaryDirectory() as directory:
        cwd = Path(directory)
        out = cwd / "run"
        flags = args if "--resume" in args else [*args, "--out", out]
        proc = in_this_process(*flags, "--no-progress", cwd=cwd)
        assert proc.returncode in (0, 2), f"{args}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, f"{args}\n{proc.stderr}"
        if proc.returncode == 2:
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), f"{args}\n{proc.stderr}"
            assert not out.exists() and list(cwd.iterdir()) == [], f"{args}: a refused command wrote files"
        else:
            assert (out / "summary.json").is_file(), f"{args}\n{proc.stderr}"
