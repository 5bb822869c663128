"""Checks every suite adapter must pass (used by the ``test_suite_*.py`` modules).

Each takes an adapter ``env`` (a gymnax ``Environment`` from ``jaxppo.envs.make``) and runs it
jitted, the way the trainer does. Suite-specific checks against the raw env live in the suite's
own test module.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxppo
from utils import tree_equal


def scripted_steps(env, params, key, actions):
    """Reset with ``key``, then step once per action in ``actions`` ``[T, ...]``: the stacked
    ``(obs, reward, terminated, truncated, final_observation)`` of every step and the first obs."""

    def step(carry, inputs):
        obs, state = carry
        step_key, action = inputs
        next_obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
        out = dict(obs=next_obs, reward=reward, terminated=terminated, truncated=truncated,
                   final_obs=info["final_observation"])  # fmt: skip
        return (next_obs, state), out

    @jax.jit
    def run(key, actions):
        reset_key, step_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)
        keys = jax.random.split(step_key, jax.tree.leaves(actions)[0].shape[0])
        return obs, jax.lax.scan(step, (obs, state), (keys, actions))[1]

    return run(key, actions)


def assert_time_limit(env, params, limit: int, actions, key=None):
    """With ``max_steps_in_episode = limit`` and ``actions`` that end no episode early: every step
    before the limit continues, the limit's step is truncated (not terminated), its
    ``final_observation`` is the pre-reset observation, and the next episode starts afresh."""
    params = params.replace(max_steps_in_episode=limit)
    key = jax.random.key(0) if key is None else key
    first_obs, out = scripted_steps(env, params, key, actions)
    steps = jax.tree.leaves(actions)[0].shape[0]
    assert steps > limit, "give more actions than the limit, to see the episode after it"
    truncated, terminated = np.asarray(out["truncated"]), np.asarray(out["terminated"])
    assert not terminated[:limit].any(), "pick actions that end no episode before the limit"
    expected = np.zeros(steps, bool)
    expected[limit - 1 :: limit] = True
    np.testing.assert_array_equal(truncated, expected & ~terminated)
    at_limit = jax.tree.map(lambda x: x[limit - 1], out)
    # Before the limit the observation is the final observation; at the limit they differ (reset).
    before = jax.tree.map(lambda x: x[: limit - 1], out)
    assert tree_equal(before["obs"], before["final_obs"])
    assert not tree_equal(at_limit["obs"], at_limit["final_obs"]), "the reset observation equals the final one"
    return first_obs, out


def assert_starts_differ(first_obs, second_obs):
    """Two episodes' first observations differ (the suite randomises its starts)."""
    assert not tree_equal(first_obs, second_obs), "two episodes started from the same observation"


def assert_vmapped_seeds_equal_separate(config: jaxppo.PPOConfig, seeds: int = 2, atol=1e-5):
    """``jit(vmap(train))`` over seeds equals each seed trained alone."""
    train = jaxppo.make_train(config)
    keys = jax.random.split(jax.random.key(3), seeds)
    together = jax.jit(jax.vmap(train))(keys)
    alone = jax.jit(train)
    for s in range(seeds):
        one = alone(keys[s])
        for x, y in zip(jax.tree.leaves(jax.tree.map(lambda v: v[s], together.state.params)),
                        jax.tree.leaves(one.state.params), strict=True):  # fmt: skip
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=atol)
        np.testing.assert_allclose(together.metrics["policy_loss"][s], one.metrics["policy_loss"], atol=atol, rtol=atol)
    return together


def cli_training_run(tmp_path: Path, env_id: str, *flags, timeout: int = 600) -> dict:
    """A short ``python -m jaxppo.run`` on ``env_id`` in ``tmp_path``: asserts it exits 0 and every
    loss in metrics.csv is finite; returns the run's summary.json."""
    out = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxppo.run", "--env", env_id, "--out", str(out), "--no-progress", *map(str, flags)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) > 1
    for name in ("policy_loss", "value_loss", "entropy"):
        column = header.index(name)
        assert all(math.isfinite(float(row.split(",")[column])) for row in rows[1:]), name
    return json.loads((out / "summary.json").read_text())


# The short CLI run of ``cli_seeds_equal_seeds_trained_alone``: 2 iterations of 4 envs x 16 steps.
CLI_CONFIG = {"num_envs": 4, "num_steps": 16, "total_timesteps": 128, "num_minibatches": 2, "update_epochs": 1}


def cli_seeds_equal_seeds_trained_alone(tmp_path: Path, env_id: str, env_kwargs: dict | None = None) -> dict:
    """``cli_training_run`` of 2 seeds (``CLI_CONFIG``), then the seed-vmap check on it: the CLI
    trains its seeds vmapped together (``jit(vmap(train))``), and each seed's losses in metrics.csv
    equal that seed trained alone by ``jit(train)`` here. One compile in this process instead of
    two. Returns summary.json."""
    env_kwargs = env_kwargs or {}
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in CLI_CONFIG.items()]
    flags += [f"--env-kwarg={name}={json.dumps(value)}" for name, value in env_kwargs.items()]
    summary = cli_training_run(tmp_path, env_id, "--seeds", 2, "--seed", 0, *flags)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = np.array([[float(value) for value in row.split(",")] for row in rows[1:]])
    config = jaxppo.PPOConfig(env_id=env_id, env_kwargs=env_kwargs, **CLI_CONFIG)
    train = jax.jit(jaxppo.make_train(config))
    keys = jax.random.split(jax.random.key(0), 2)  # the CLI's keys of seeds 0 and 1 (--seed 0)
    for seed in range(2):
        alone = train(keys[seed]).metrics
        mine = table[table[:, header.index("seed")] == seed]
        mine = mine[np.argsort(mine[:, header.index("iteration")])]
        assert len(mine) == 2, mine
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl"):
            np.testing.assert_allclose(mine[:, header.index(name)], np.asarray(alone[name]), rtol=1e-5, atol=1e-6,
                                       err_msg=f"seed {seed}: {name}")  # fmt: skip
    return summary


def brax_like_reference(raw_reset, raw_step, key, actions, limit: int):
    """A brax-like raw env (``reset(key_data)``, ``step(state, action)`` with ``obs``, ``reward``,
    ``done``: brax and Playground) stepped by hand with jaxppo's semantics and the keys ``scripted_steps`` uses:
    ``done`` a termination, ``limit`` steps a truncation, and a reset with the step key's second
    half (gymnax's ``Environment.step``) where an episode ended. Returns the first observation and
    ``{obs, reward, terminated, truncated, final_obs}`` stacked over the steps."""
    reset_key, step_key = jax.random.split(key)
    state = raw_reset(jax.random.key_data(reset_key))
    first_obs, time, rows = state.obs, 0, []
    for key_t, action in zip(jax.random.split(step_key, len(actions)), actions, strict=True):
        state, time = raw_step(state, action), time + 1
        terminated = bool(state.done > 0)
        truncated = time >= limit and not terminated
        row = dict(reward=state.reward, terminated=terminated, truncated=truncated, final_obs=state.obs)
        if terminated or truncated:
            state, time = raw_reset(jax.random.key_data(jax.random.split(key_t)[1])), 0
        rows.append({**row, "obs": state.obs})
    return np.asarray(first_obs), {name: np.stack([np.asarray(row[name]) for row in rows]) for name in rows[0]}


def assert_matches_reference(first_obs, out, ref_first_obs, ref, atol=1e-5):
    """The adapter's scripted run equals the raw env's, step by step."""
    np.testing.assert_allclose(np.asarray(first_obs), ref_first_obs, atol=atol)
    for name in ("obs", "final_obs", "reward"):
        np.testing.assert_allclose(np.asarray(out[name]), ref[name], atol=atol, err_msg=name)
    for name in ("terminated", "truncated"):
        np.testing.assert_array_equal(np.asarray(out[name]), ref[name], err_msg=name)


def assert_goal_episodes_equal_raw(out, raw: dict, start_obs, goal_step: int):
    """A grid world's scripted run (``scripted_steps``, no time limit reached) against its raw env
    stepped by hand: ``raw`` holds per step the raw ``reward``, the raw termination ``end``, the
    raw observation before any reset (``final_obs``) and after the adapter's reset (``obs``).
    The scripted goal at ``goal_step`` terminates with a reward, the next episode starts from
    ``start_obs`` on that same step, and the next action moves its agent (none is lost)."""
    terminated, truncated, reward = (np.asarray(out[name]) for name in ("terminated", "truncated", "reward"))
    assert raw["end"][goal_step] and sum(raw["end"]) >= 3, "the scripted goal, then a few more"
    assert terminated[goal_step] and not truncated.any() and reward[goal_step] > 0
    np.testing.assert_array_equal(terminated, raw["end"])
    np.testing.assert_allclose(reward, raw["reward"])
    np.testing.assert_array_equal(np.asarray(out["final_obs"]), np.stack(raw["final_obs"]))
    obs = np.asarray(out["obs"])
    np.testing.assert_array_equal(obs, np.stack(raw["obs"]))
    np.testing.assert_array_equal(obs[goal_step], np.asarray(start_obs))
    assert not np.array_equal(obs[goal_step + 1], obs[goal_step])


def finite(tree) -> bool:
    return all(bool(jnp.isfinite(jnp.asarray(x, jnp.float32)).all()) for x in jax.tree.leaves(tree))
