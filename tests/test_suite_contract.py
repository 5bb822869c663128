"""The adapter contract, for every suite in ``jaxppo.suites.SUITES`` (a new suite is checked as
soon as it is registered): its ``example`` env, stepped jitted with random actions under a short
time limit, truncates exactly at the limit and never with a termination, keeps the pre-reset
observation in ``info["final_observation"]`` (the observation itself on every other step), and
gives finite rewards and observations. Each suite's own module checks its envs against the raw
simulator."""

from __future__ import annotations

import importlib.util

import jax
import numpy as np
import pytest

import jaxppo
from jaxppo import suites
from suite_contract import scripted_steps
from utils import tree_equal

LIMIT, STEPS = 5, 16  # three time limits and a bit, whatever terminations random actions cause


def _installed(suite: suites.Suite) -> bool:
    return all(importlib.util.find_spec(package) is not None for package in suite.imports)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(suites.SUITES))
def test_every_registered_suite_keeps_the_adapter_contract(name):
    suite = suites.SUITES[name]
    if not _installed(suite):
        pytest.skip(f'{name} is not installed (pip install "jaxppo[{suite.extra}]")')
    env, params = jaxppo.envs.make(f"{name}/{suite.example}", max_steps_in_episode=LIMIT)
    assert params.max_steps_in_episode == LIMIT
    actions = jax.vmap(env.action_space(params).sample)(jax.random.split(jax.random.key(1), STEPS))
    first_obs, out = scripted_steps(env, params, jax.random.key(0), actions)
    terminated, truncated = np.asarray(out["terminated"]), np.asarray(out["truncated"])
    assert terminated.dtype == truncated.dtype == np.bool_ and terminated.shape == truncated.shape == (STEPS,)
    assert not (terminated & truncated).any(), "a step both terminated and truncated"
    assert (terminated | truncated).any(), f"no episode ended in {STEPS} steps under a limit of {LIMIT}"
    length = 0
    for t in range(STEPS):  # the episode's length after step t decides whether t truncates
        length += 1
        assert truncated[t] == (length == LIMIT and not terminated[t]), (t, length, terminated, truncated)
        length = 0 if terminated[t] or truncated[t] else length
    continuing = ~(terminated | truncated)
    same = jax.tree.map(lambda obs, final: obs[continuing], out["obs"], out["final_obs"])
    final = jax.tree.map(lambda final: final[continuing], out["final_obs"])
    assert tree_equal(same, final), "final_observation differs from the observation on a step that ended nothing"
    reward = np.asarray(out["reward"])
    assert reward.shape == (STEPS,) and np.isfinite(reward).all()
    for leaf in jax.tree.leaves((first_obs, out["obs"], out["final_obs"])):
        leaf = np.asarray(leaf)
        assert not np.issubdtype(leaf.dtype, np.floating) or np.isfinite(leaf).all()
