"""Categorical and DiagGaussian: reference log-probs and entropies, sampling statistics, modes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo.distributions import Categorical, DiagGaussian, uniform_from_bits

ATOL = 1e-5  # float32 library code against float64 reference values
NUM_SAMPLES = 50_000


# ----------------------------------------------------------------------- Categorical
def test_categorical_matches_reference(reference):
    block = reference["categorical"]
    dist = Categorical(jnp.asarray(block["inputs"]["logits"], jnp.float32))
    actions = jnp.asarray(block["inputs"]["actions"])

    np.testing.assert_allclose(dist.log_prob(actions), block["expected"]["log_prob"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(dist.entropy(), block["expected"]["entropy"], atol=ATOL, rtol=0)


def test_categorical_log_prob_accepts_float_actions(reference):
    """Actions stored in a float buffer still index the right class."""
    block = reference["categorical"]
    dist = Categorical(jnp.asarray(block["inputs"]["logits"], jnp.float32))
    actions = jnp.asarray(block["inputs"]["actions"], jnp.float32)
    np.testing.assert_allclose(dist.log_prob(actions), block["expected"]["log_prob"], atol=ATOL, rtol=0)


def test_categorical_probabilities_sum_to_one():
    logits = jnp.array([[1.0, 2.0, 0.5], [-3.0, 0.0, 4.0]])
    dist = Categorical(logits)
    log_probs = jnp.stack([dist.log_prob(jnp.full(2, a)) for a in range(3)], axis=-1)
    np.testing.assert_allclose(jnp.exp(log_probs).sum(-1), 1.0, atol=1e-6)


def test_categorical_mode(reference):
    dist = Categorical(jnp.asarray(reference["categorical"]["inputs"]["logits"], jnp.float32))
    # second row ties: argmax takes the first index
    np.testing.assert_array_equal(dist.mode(), [1, 0])


def test_categorical_sample_frequencies_match_softmax():
    logits = jnp.array([1.0, 2.0, 0.5, -1.0])
    dist = Categorical(jnp.broadcast_to(logits, (NUM_SAMPLES, 4)))
    samples = np.asarray(dist.sample(jax.random.PRNGKey(0)))

    assert samples.shape == (NUM_SAMPLES,)
    frequencies = np.bincount(samples, minlength=4) / NUM_SAMPLES
    # binomial std <= 0.5 / sqrt(50_000) ~ 0.0022
    np.testing.assert_allclose(frequencies, jax.nn.softmax(logits), atol=0.01)
    # Monte-Carlo entropy: -E[log p(a)]
    np.testing.assert_allclose(-dist.log_prob(jnp.asarray(samples)).mean(), dist.entropy()[0], atol=0.02)


# ----------------------------------------------------------------------- DiagGaussian
def test_diag_gaussian_matches_reference(reference):
    block = reference["diag_gaussian"]
    inputs = block["inputs"]
    dist = DiagGaussian(jnp.asarray(inputs["mean"], jnp.float32), jnp.asarray(inputs["log_std"], jnp.float32))
    action = jnp.asarray(inputs["action"], jnp.float32)

    log_prob, entropy = dist.log_prob(action), dist.entropy()
    assert log_prob.shape == entropy.shape == (1,)  # summed over action dims
    np.testing.assert_allclose(log_prob, block["expected"]["log_prob"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(entropy, block["expected"]["entropy"], atol=ATOL, rtol=0)


def test_diag_gaussian_log_prob_is_sum_of_univariate_normals():
    mean = jnp.array([[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]])
    log_std = jnp.array([0.2, -1.0, 0.7])
    actions = jnp.array([[1.0, -1.2, 0.0], [0.1, 0.4, 3.0]])
    std = np.exp(np.asarray(log_std, np.float64))
    z = (np.asarray(actions, np.float64) - np.asarray(mean, np.float64)) / std
    expected = np.sum(-0.5 * z**2 - np.log(std * math.sqrt(2 * math.pi)), axis=-1)
    np.testing.assert_allclose(DiagGaussian(mean, log_std).log_prob(actions), expected, atol=ATOL, rtol=0)


def test_diag_gaussian_mode_is_mean():
    mean = jnp.array([[0.1, -0.3], [2.0, 5.0]])
    np.testing.assert_array_equal(DiagGaussian(mean, jnp.zeros(2)).mode(), mean)


def test_diag_gaussian_sample_statistics():
    mean = jnp.array([0.1, -0.3])
    log_std = jnp.array([0.0, -0.5])
    dist = DiagGaussian(jnp.broadcast_to(mean, (NUM_SAMPLES, 2)), log_std)
    samples = np.asarray(dist.sample(jax.random.PRNGKey(1)))

    assert samples.shape == (NUM_SAMPLES, 2) and samples.dtype == np.float32
    # standard error of the mean <= 1 / sqrt(50_000) ~ 0.0045
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(samples.std(0), np.exp(log_std), rtol=0.02)
    assert abs(np.corrcoef(samples.T)[0, 1]) < 0.02  # independent dims
    # Monte-Carlo entropy: -E[log p(a)]
    np.testing.assert_allclose(-dist.log_prob(jnp.asarray(samples)).mean(), dist.entropy()[0], atol=0.02)


def test_samples_depend_on_key_only():
    dist = DiagGaussian(jnp.zeros((4, 2)), jnp.zeros(2))
    key = jax.random.PRNGKey(7)
    np.testing.assert_array_equal(dist.sample(key), dist.sample(key))
    assert not np.array_equal(dist.sample(key), dist.sample(jax.random.PRNGKey(8)))


# ------------------------------------------------------------ sampling from uniform noise
def test_uniform_from_bits_is_jax_uniform():
    key = jax.random.key(11)
    bits = jax.random.bits(key, (4096,), jnp.uint32)
    np.testing.assert_array_equal(uniform_from_bits(bits), jax.random.uniform(key, (4096,)))
    extremes = uniform_from_bits(jnp.array([0, 0xFFFFFFFF], jnp.uint32))
    assert extremes[0] == 0.0 and extremes[1] == np.float32(1 - 2**-23)


def test_samples_from_uniform_noise_equal_jax_samplers():
    """``sample(key)`` goes through ``sample_from_uniform``: it draws exactly what jax's own
    categorical and normal samplers draw for the key (the same Gumbel and inverse-erf maps)."""
    for seed in range(5):
        key = jax.random.key(seed)
        logits = jax.random.normal(jax.random.key(100 + seed), (64, 5)) * 3
        np.testing.assert_array_equal(Categorical(logits).sample(key), jax.random.categorical(key, logits))
        mean, log_std = jnp.linspace(-1, 1, 64 * 3).reshape(64, 3), jnp.array([0.0, -0.5, 0.7])
        np.testing.assert_array_equal(
            DiagGaussian(mean, log_std).sample(key), mean + jnp.exp(log_std) * jax.random.normal(key, (64, 3))
        )


def test_sample_from_uniform_edges_are_finite():
    """u = 0 and the largest u below 1 still give finite Gumbel and Gaussian noise."""
    edges = jnp.array([[0.0, 1 - 2**-23]], jnp.float32)
    assert Categorical(jnp.zeros((1, 2))).sample_from_uniform(edges).shape == (1,)
    # u = 0 everywhere: finite (equal) noise lets the logits decide; log(0) would make every score -inf
    assert Categorical(jnp.array([[0.0, 5.0]])).sample_from_uniform(jnp.zeros((1, 2)))[0] == 1
    gaussian = DiagGaussian(jnp.zeros((1, 2)), jnp.zeros(2)).sample_from_uniform(edges)
    assert np.isfinite(np.asarray(gaussian)).all()
    assert gaussian[0, 0] < -5 and gaussian[0, 1] > 5  # the tails of a standard normal
