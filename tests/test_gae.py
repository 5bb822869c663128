"""compute_gae: the float64 reference rollout and properties against a plain-Python loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxppo.gae import compute_gae

ATOL = 1e-5  # float32 library code against float64 reference values
PROPERTY_TOL = dict(rtol=1e-4, atol=1e-4)

CONTINUE, TERMINATED, TRUNCATED = 0, 1, 2


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda):
    """Plain float64 backward loop of the documented recursion."""
    rewards, values, next_values = (np.asarray(x, np.float64) for x in (rewards, values, next_values))
    terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
    gamma, gae_lambda = float(gamma), float(gae_lambda)
    advantages = np.zeros_like(values)
    next_advantage = np.zeros_like(values[0])
    for t in reversed(range(values.shape[0])):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        continues = 1.0 - (terminated[t] | truncated[t])
        next_advantage = delta + gamma * gae_lambda * continues * next_advantage
        advantages[t] = next_advantage
    return advantages, advantages + values


# Jitted with gamma and lambda traced: one compile per shape, not one per example.
_compute_gae = jax.jit(compute_gae)


def run_gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda):
    advantages, returns = _compute_gae(
        jnp.asarray(rewards, jnp.float32),
        jnp.asarray(values, jnp.float32),
        jnp.asarray(next_values, jnp.float32),
        jnp.asarray(terminated, bool),
        jnp.asarray(truncated, bool),
        jnp.float32(gamma),
        jnp.float32(gae_lambda),
    )
    return np.asarray(advantages), np.asarray(returns)


# ----------------------------------------------------------------------- reference numbers
def test_matches_reference(reference):
    block = reference["gae"]
    inputs, expected = block["inputs"], block["expected"]
    values = np.asarray(inputs["values"], np.float32)
    next_values = np.concatenate([values[1:], np.asarray(inputs["next_value"], np.float32)[None]])
    terminated = np.asarray(inputs["done_transition_layout"], np.float32)

    advantages, returns = run_gae(
        inputs["rewards"],
        values,
        next_values,
        terminated,
        np.zeros_like(terminated),
        inputs["gamma"],
        inputs["gae_lambda"],
    )

    assert advantages.dtype == np.float32 and advantages.shape == values.shape
    np.testing.assert_allclose(advantages, expected["advantages"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(returns, expected["returns"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(advantages.reshape(-1), expected["flat_advantages_t_major"], atol=ATOL, rtol=0)


# ----------------------------------------------------------------------- properties
@st.composite
def rollouts(draw):
    """A random time-major rollout with terminations and truncations (never both at once)."""
    num_steps = draw(st.integers(1, 20))
    num_envs = draw(st.integers(1, 4))
    shape = (num_steps, num_envs)
    floats = st.floats(-10.0, 10.0, width=32)
    rewards = draw(hnp.arrays(np.float32, shape, elements=floats))
    values = draw(hnp.arrays(np.float32, shape, elements=floats))
    next_values = draw(hnp.arrays(np.float32, shape, elements=floats))
    ends = draw(hnp.arrays(np.int8, shape, elements=st.sampled_from([CONTINUE, CONTINUE, TERMINATED, TRUNCATED])))
    gamma = draw(st.floats(0.0, 1.0, width=32))
    gae_lambda = draw(st.floats(0.0, 1.0, width=32))
    return dict(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=ends == TERMINATED,
        truncated=ends == TRUNCATED,
        gamma=gamma,
        gae_lambda=gae_lambda,
    )


@settings(deadline=None, max_examples=30, derandomize=True)
@given(rollouts())
def test_matches_python_loop(rollout):
    advantages, returns = run_gae(**rollout)
    expected_advantages, expected_returns = reference_gae(**rollout)
    np.testing.assert_allclose(advantages, expected_advantages, **PROPERTY_TOL)
    np.testing.assert_allclose(returns, expected_returns, **PROPERTY_TOL)


@settings(deadline=None, max_examples=30, derandomize=True)
@given(rollouts())
def test_terminate_mode_drops_bootstrap_only_at_truncations(rollout):
    """Passing ``terminated | truncated`` as ``terminated`` ("terminate" mode) removes exactly
    ``gamma * next_values_t`` at each truncation t, discounted back through its episode."""
    bootstrap, _ = run_gae(**rollout)
    done = rollout["terminated"] | rollout["truncated"]
    terminate, _ = run_gae(**{**rollout, "terminated": done})

    gamma, gae_lambda = float(rollout["gamma"]), float(rollout["gae_lambda"])
    next_values = rollout["next_values"].astype(np.float64)
    truncated = rollout["truncated"]
    expected = np.zeros_like(next_values)
    carried = np.zeros_like(next_values[0])
    for t in reversed(range(next_values.shape[0])):
        carried = gamma * truncated[t] * next_values[t] + gamma * gae_lambda * (1.0 - done[t]) * carried
        expected[t] = carried

    difference = bootstrap.astype(np.float64) - terminate
    np.testing.assert_allclose(difference, expected, **PROPERTY_TOL)
    np.testing.assert_allclose(difference[truncated], gamma * next_values[truncated], **PROPERTY_TOL)


def test_terminate_mode_example():
    """One truncation at t=1 of a 3-step rollout, worked by hand."""
    gamma, gae_lambda = 0.5, 0.5
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.zeros((3, 1))
    next_values = np.array([[4.0], [8.0], [0.0]])
    terminated = np.zeros((3, 1), bool)
    truncated = np.array([[False], [True], [False]])

    bootstrap, _ = run_gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda)
    terminate, _ = run_gae(rewards, values, next_values, truncated, truncated, gamma, gae_lambda)

    # t=2: 3; t=1 bootstraps V(final obs) = 8 and stops: 2 + 0.5 * 8 = 6 (terminate: 2);
    # t=0: 1 + 0.5 * 4 + 0.25 * A_1.
    np.testing.assert_allclose(bootstrap[:, 0], [3.0 + 0.25 * 6.0, 6.0, 3.0], atol=ATOL)
    np.testing.assert_allclose(terminate[:, 0], [3.0 + 0.25 * 2.0, 2.0, 3.0], atol=ATOL)


@settings(deadline=None, max_examples=30, derandomize=True)
@given(rollouts(), st.data())
def test_episode_end_cuts_recursion(rollout, data):
    """With an episode end at step t, A_0..A_t do not depend on rewards or values after t."""
    num_steps = rollout["values"].shape[0]
    if num_steps < 2:
        return
    t = data.draw(st.integers(0, num_steps - 2), label="t")
    kind = data.draw(st.sampled_from(["terminated", "truncated"]), label="kind")
    terminated, truncated = rollout["terminated"].copy(), rollout["truncated"].copy()
    terminated[t], truncated[t] = kind == "terminated", kind == "truncated"
    rollout = {**rollout, "terminated": terminated, "truncated": truncated}

    later = np.arange(num_steps) > t
    changed = {
        **rollout,
        "rewards": np.where(later[:, None], rollout["rewards"] + 5.0, rollout["rewards"]),
        "values": np.where(later[:, None], rollout["values"] - 3.0, rollout["values"]),
    }
    advantages, _ = run_gae(**rollout)
    changed_advantages, _ = run_gae(**changed)
    np.testing.assert_array_equal(changed_advantages[: t + 1], advantages[: t + 1])


def test_truncation_cuts_recursion_but_continuation_does_not():
    """Control for the property above: without the truncation flag, later rewards do reach A_t."""
    rewards = np.array([[1.0], [0.0], [0.0]])
    values = np.zeros((3, 1))
    next_values = np.array([[0.0], [2.0], [0.0]])
    truncated = np.array([[False], [True], [False]])
    gamma, gae_lambda = 0.9, 0.8

    def advantage_at_1(truncated, reward_at_2):
        r = rewards.copy()
        r[2] = reward_at_2
        advantages, _ = run_gae(r, values, next_values, np.zeros_like(truncated), truncated, gamma, gae_lambda)
        return advantages[1, 0]

    assert advantage_at_1(truncated, 0.0) == advantage_at_1(truncated, 7.0)
    assert advantage_at_1(truncated, 0.0) == np.float32(gamma * 2.0)
    continuing = np.zeros_like(truncated)
    assert abs(advantage_at_1(continuing, 7.0) - advantage_at_1(continuing, 0.0) - gamma * gae_lambda * 7.0) < ATOL
