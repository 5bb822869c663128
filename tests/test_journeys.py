"""A user's whole journey with the default sizes (no --num-envs, --num-steps, --num-minibatches or
--update-epochs): train, Ctrl-C, --resume, --resume of the finished run, --resume with a larger
--total-timesteps, evaluate, plot, a two-process run merged, load_policy(...).predict.

One journey each for a discrete env, a continuous env, a recurrent policy and an env suite. Only
the budget is small; the sizes are the action space's defaults, as the README's commands leave them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_harness import (
    assert_ok,
    assert_png,
    checkpoint_steps,
    cli,
    describe,
    interrupt_after_first_checkpoint,
    popen,
    read_rows,
    snapshot,
)
from test_multiprocess import finish, start_processes

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
]

# name -> (flags, default env steps per iteration, iterations of the first budget)
JOURNEYS = {
    "discrete": (["--env", "CartPole-v1"], 4 * 128, 40),
    "continuous": (["--env", "Pendulum-v1"], 1 * 2048, 12),
    "recurrent": (["--env", "CartPole-v1", "--recurrent", "gru"], 4 * 128, 24),
    "suite": (["--env", "navix/Navix-Empty-5x5-v0"], 4 * 128, 24),
}
SEEDS = 3  # two host devices: one pads its block


def iterations_in(run_dir: Path) -> int:
    return max(int(row["iteration"]) for row in read_rows(run_dir / "metrics.csv"))


@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_a_default_sized_run_survives_every_step_of_a_users_journey(journey, tmp_path):
    flags, batch, iterations = JOURNEYS[journey]
    run = tmp_path / "run"
    common = [*flags, "--seeds", SEEDS, "--no-anneal-lr", "--no-progress"]
    budget = iterations * batch

    # 1. train, stopped by Ctrl-C after its first checkpoint; a two-process run of the same
    # command beside it (the merge step below).
    merged = tmp_path / "merged"
    proc = popen(*common, "--total-timesteps", budget, "--checkpoint-every", 2, "--out", run, cwd=tmp_path)
    try:
        stopped = interrupt_after_first_checkpoint(proc, run)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert stopped.returncode == 130, "the run was not interrupted (make it longer?)\n" + describe(stopped)
    assert "Traceback" not in stopped.stderr and f"--resume {run}" in stopped.stderr, describe(stopped)
    saved = checkpoint_steps(run)[-1]
    assert 0 < saved < iterations

    # 2. --resume finishes it
    resumed = cli("--resume", run, "--no-progress", cwd=tmp_path)
    assert_ok(resumed)
    assert iterations_in(run) == iterations
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["num_envs"] is None  # left to the defaults, as the user did
    assert config["resolved_config"]["num_envs"] * config["resolved_config"]["num_steps"] == batch

    # 3. --resume of the finished run changes nothing
    before = snapshot(run)
    again = cli("--resume", run, "--no-progress", cwd=tmp_path)
    assert_ok(again)
    assert "is finished" in again.stderr, describe(again)
    assert snapshot(run) == before

    # 4. --resume with a larger budget trains it longer
    longer = cli("--resume", run, "--total-timesteps", 2 * budget, "--no-progress", cwd=tmp_path)
    assert_ok(longer)
    assert iterations_in(run) == 2 * iterations
    extension = json.loads((run / "config.json").read_text())["extensions"][-1]
    assert extension["total_timesteps_before"] == budget and extension["from_iteration"] == iterations

    # 5. evaluate, 6. plot
    evaluated = cli(run, "--episodes", 2, module="jaxppo.evaluate", cwd=tmp_path)
    assert_ok(evaluated)
    assert sum(line.strip().startswith("seed ") for line in evaluated.stdout.splitlines()) == SEEDS, evaluated.stdout
    plotted = cli(run, "--out", tmp_path / "curves.png", module="jaxppo.plot", cwd=tmp_path)
    assert_ok(plotted)
    assert_png(tmp_path / "curves.png")

    # 7. the same command on two processes, then merged again by the merge command
    parts = finish(start_processes([*common, "--total-timesteps", 2 * batch, "--out", merged], tmp_path))
    for part in parts:
        assert_ok(part)
    (merged / "metrics.csv").unlink()
    remerged = cli(merged, module="jaxppo.merge", cwd=tmp_path)
    assert_ok(remerged)
    assert {int(row["seed"]) for row in read_rows(merged / "metrics.csv")} == set(range(SEEDS))

    # 8. load_policy(...).predict on the env's own observation
    import jax

    from jaxppo import load_policy, make_trainer
    from jaxppo.settings import RunSettings

    settings = RunSettings.from_json(json.loads((run / "config.json").read_text()))
    trainer = make_trainer(settings.config)
    obs, _ = trainer.env.reset(jax.random.key(0))
    one = jax.tree.map(lambda x: np.asarray(x[0]), obs)
    policy = load_policy(run, seed=SEEDS - 1)
    if policy.recurrent:
        action, carry = policy.predict(one)
        action, _ = policy.predict(one, carry=carry)
    else:
        action = policy.predict(one)
    assert np.all(np.isfinite(np.asarray(action, np.float64)))


def test_config_json_names_the_architecture_each_journey_builds(tmp_path):
    from jaxppo import PPOConfig, make_trainer

    built = {}
    for name, (flags, _, _) in JOURNEYS.items():
        env_id = flags[1]
        trainer = make_trainer(PPOConfig(env_id=env_id, recurrent="gru" if "gru" in flags else None))
        built[name] = trainer.architecture()
    assert built["discrete"]["encoders"] == {"observation": {"shape": [4], "encoder": "flatten"}}
    assert built["recurrent"]["recurrent_core"] == "gru(128)" and built["discrete"]["recurrent_core"] is None
    assert built["continuous"]["distribution"].startswith("diagonal Gaussian over 1 dims")
    assert built["suite"]["encoders"]["observation"]["encoder"] == "cnn"  # navix's 5x5x3 grid: "auto" convolves it
    assert built["recurrent"]["parameters"] > built["discrete"]["parameters"] > 0
