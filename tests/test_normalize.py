"""RunningMeanStd, observation normalisation and reward scaling against the float64 reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxppo.normalize import (
    RunningMeanStd,
    normalize_observations,
    scale_rewards,
    update_discounted_return,
)

ATOL = 1e-5  # float32 library code against float64 reference values
RTOL = 1e-5  # for large statistics (the obs variance reaches ~2e3)
PRIOR_COUNT = 1e-4


def test_create_starts_at_prior():
    stats = RunningMeanStd.create((3,))
    np.testing.assert_array_equal(stats.mean, np.zeros(3))
    np.testing.assert_array_equal(stats.var, np.ones(3))
    np.testing.assert_allclose(stats.count, PRIOR_COUNT, rtol=1e-6)
    assert stats.mean.dtype == stats.var.dtype == stats.count.dtype == jnp.float32


# ----------------------------------------------------------------------- reference numbers
def test_observation_normalization_matches_reference(reference):
    block = reference["obs_normalization"]
    observations = np.asarray(block["inputs"]["observations"], np.float32)
    clip = block["inputs"]["clip"]
    expected = block["expected"]

    stats = RunningMeanStd.create(observations.shape[1:])
    normalized = []
    for obs in observations:  # update with the observation, then normalise it
        stats = stats.update(jnp.asarray(obs)[None])
        normalized.append(normalize_observations(stats, jnp.asarray(obs), clip))

    np.testing.assert_allclose(np.stack(normalized), expected["normalized"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(stats.mean, expected["mean"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(stats.var, expected["var"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(stats.count, expected["count"], atol=ATOL, rtol=RTOL)


def test_reward_scaling_matches_reference(reference):
    block = reference["reward_scaling"]
    inputs, expected = block["inputs"], block["expected"]

    stats = RunningMeanStd.create(())
    discounted_return = jnp.zeros((), jnp.float32)
    scaled = []
    for reward, terminated in zip(inputs["rewards"], inputs["terminated"], strict=True):
        reward, terminated = jnp.float32(reward), jnp.float32(terminated)
        discounted_return = update_discounted_return(discounted_return, reward, terminated, inputs["gamma"])
        stats = stats.update(discounted_return[None])
        scaled.append(scale_rewards(stats, reward, inputs["clip"]))

    np.testing.assert_allclose(scaled, expected["scaled"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(stats.var, expected["var"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(stats.mean, expected["mean"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(stats.count, expected["count"], atol=ATOL, rtol=RTOL)


# ----------------------------------------------------------------------- the pieces by hand
def test_normalize_observations_clips():
    stats = RunningMeanStd(mean=jnp.array([0.0, 1.0]), var=jnp.array([1.0, 4.0]), count=jnp.float32(10.0))
    obs = jnp.array([[50.0, 5.0], [-50.0, -1.0]])
    np.testing.assert_allclose(normalize_observations(stats, obs, 10.0), [[10.0, 2.0], [-10.0, -1.0]], atol=1e-6)


def test_scale_rewards_divides_by_std_without_centering():
    stats = RunningMeanStd(mean=jnp.float32(100.0), var=jnp.float32(4.0), count=jnp.float32(10.0))
    rewards = jnp.array([1.0, -3.0, 40.0])
    np.testing.assert_allclose(scale_rewards(stats, rewards, 10.0), [0.5, -1.5, 10.0], atol=1e-6)


def test_discounted_return_resets_after_termination():
    g = jnp.array([2.0, 2.0])
    out = update_discounted_return(g, jnp.array([1.0, 1.0]), jnp.array([False, True]), 0.5)
    np.testing.assert_allclose(out, [2.0, 1.0])


def test_update_is_jittable_pytree():
    stats = RunningMeanStd.create((2,))
    batch = jnp.array([[1.0, 2.0], [3.0, 6.0]])
    jitted = jax.jit(lambda s, b: s.update(b))(stats, batch)
    eager = stats.update(batch)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# ----------------------------------------------------------------------- properties
def prior_merged_moments(data: np.ndarray):
    """Mean/var of the data merged with the prior pseudo-sample (mean 0, var 1, count 1e-4)."""
    data = data.astype(np.float64)
    n = data.shape[0]
    total = n + PRIOR_COUNT
    mean = n * data.mean(0) / total
    m2 = PRIOR_COUNT * 1.0 + n * data.var(0) + data.mean(0) ** 2 * PRIOR_COUNT * n / total
    return mean, m2 / total, total


@st.composite
def chunked_datasets(draw):
    num_samples = draw(st.integers(1, 40))
    dim = draw(st.integers(1, 3))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    data = draw(hnp.arrays(np.float32, (num_samples, dim), elements=st.floats(-1.0, 1.0, width=32)))
    cuts = draw(st.lists(st.integers(1, max(num_samples - 1, 1)), max_size=6, unique=True))
    cuts = sorted(c for c in cuts if c < num_samples)
    return data * np.float32(scale), cuts


@settings(deadline=None, max_examples=30, derandomize=True)
@given(chunked_datasets())
def test_chunked_updates_match_whole_dataset(dataset):
    data, cuts = dataset
    stats = RunningMeanStd.create(data.shape[1:])
    for chunk in np.split(data, cuts):
        stats = stats.update(jnp.asarray(chunk))

    mean, var, count = prior_merged_moments(data)
    scale = max(float(np.abs(data).max()), 1.0)
    np.testing.assert_allclose(stats.count, count, rtol=1e-6)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(stats.var, var, rtol=1e-4, atol=1e-5 * scale**2)
    # the prior is negligible next to the data: plain numpy moments within 1e-3 of the data scale
    np.testing.assert_allclose(stats.mean, data.mean(0), atol=1e-3 * scale)
    np.testing.assert_allclose(stats.var, data.var(0), atol=1e-3 * scale**2)
