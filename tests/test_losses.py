"""ppo_loss, normalize_advantages and explained_variance against the float64 reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxppo.losses import explained_variance, normalize_advantages, ppo_loss

ATOL = 1e-5  # float32 library code against float64 reference values

# reference metric name -> name in ppo_loss's metrics ("loss" is the first return value)
METRIC_NAMES = {
    "pg_loss": "policy_loss",
    "v_loss": "value_loss",
    "entropy_loss": "entropy",
    "old_approx_kl": "old_approx_kl",
    "approx_kl": "approx_kl",
    "clipfrac": "clipfrac",
}

# reference variant -> (ppo_loss keyword arguments, inputs replaced)
VARIANTS = {
    "std_ddof0": ({}, {}),
    "std_ddof1": ({"adv_std_ddof": 1}, {}),
    "no_adv_norm": ({"norm_adv": False}, {}),
    "std_ddof0_no_value_clip": ({"clip_vloss": False}, {}),
    # First minibatch of an update: the parameters have not moved yet, so the new
    # log-probabilities and values are the rollout's own.
    "first_minibatch_ratio_is_1_ddof0": ({}, {"logp_new": "logp_old", "values_new": "values_old"}),
}


def loss_inputs(reference, replaced=None):
    raw = reference["ppo_loss"]["inputs"]
    arrays = {
        name: jnp.asarray(raw[name], jnp.float32)
        for name in ("logp_new", "logp_old", "advantages", "values_new", "values_old", "returns")
    }
    arrays["entropy"] = jnp.asarray(raw["entropy_per_sample"], jnp.float32)
    for name, source in (replaced or {}).items():
        arrays[name] = arrays[source]
    coefs = {name: raw[name] for name in ("clip_coef", "vf_coef", "ent_coef")}
    return arrays, coefs


# ----------------------------------------------------------------------- ppo_loss
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ppo_loss_matches_reference(reference, variant):
    kwargs, replaced = VARIANTS[variant]
    arrays, coefs = loss_inputs(reference, replaced)
    expected = reference["ppo_loss"]["expected"][variant]

    loss, metrics = ppo_loss(**arrays, **coefs, **kwargs)

    np.testing.assert_allclose(loss, expected["loss"], atol=ATOL, rtol=0)
    for ref_name, name in METRIC_NAMES.items():
        np.testing.assert_allclose(metrics[name], expected[ref_name], atol=ATOL, rtol=0, err_msg=name)
    np.testing.assert_allclose(-coefs["ent_coef"] * metrics["entropy"], expected["entropy_term"], atol=ATOL)


def test_ppo_loss_is_jittable_and_differentiable(reference):
    arrays, coefs = loss_inputs(reference)
    expected = reference["ppo_loss"]["expected"]["std_ddof0"]

    loss, metrics = jax.jit(lambda a: ppo_loss(**a, **coefs))(arrays)
    np.testing.assert_allclose(loss, expected["loss"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(metrics["policy_loss"], expected["pg_loss"], atol=ATOL, rtol=0)

    grads = jax.grad(lambda a: ppo_loss(**a, **coefs)[0])(arrays)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # Only the new policy and value enter the gradient path in training; the entropy term
    # contributes -ent_coef / B to each sample.
    np.testing.assert_allclose(grads["entropy"], -coefs["ent_coef"] / 8, atol=1e-7)


def test_ratio_matches_reference(reference):
    """Read the ratio back through ppo_loss: with no clipping and no normalisation,
    advantages = -B * one_hot(i) make the policy loss equal ratio_i."""
    arrays, coefs = loss_inputs(reference)
    batch = arrays["advantages"].shape[0]

    def policy_loss(advantages):
        _, metrics = ppo_loss(**{**arrays, "advantages": advantages}, **{**coefs, "clip_coef": 1e6}, norm_adv=False)
        return metrics["policy_loss"]

    ratios = jax.vmap(policy_loss)(-batch * jnp.eye(batch))
    np.testing.assert_allclose(ratios, reference["ppo_loss"]["expected"]["ratio"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("ddof", [0, 1])
def test_normalize_advantages_matches_reference(reference, ddof):
    advantages = jnp.asarray(reference["ppo_loss"]["inputs"]["advantages"], jnp.float32)
    expected = reference["ppo_loss"]["expected"][f"adv_normalized_ddof{ddof}"]
    normalized = normalize_advantages(advantages, ddof=ddof)
    np.testing.assert_allclose(normalized, expected, atol=ATOL, rtol=0)


def test_normalize_advantages_default_is_ddof0(reference):
    advantages = jnp.asarray(reference["ppo_loss"]["inputs"]["advantages"], jnp.float32)
    expected = reference["ppo_loss"]["expected"]["adv_normalized_ddof0"]
    np.testing.assert_allclose(normalize_advantages(advantages), expected, atol=ATOL, rtol=0)


def test_normalize_constant_advantages_is_zero_not_nan():
    normalized = normalize_advantages(jnp.full((4,), 3.0))
    np.testing.assert_array_equal(normalized, np.zeros(4, np.float32))


def test_clipfrac_counts_strictly_outside_the_clip_range():
    """clipfrac = mean(|ratio - 1| > clip_coef): a ratio on the boundary is not counted."""
    logp_old = jnp.zeros(4)
    logp_new = jnp.log(jnp.array([1.0, 1.0, 2.0, 0.25]))
    zeros = jnp.zeros(4)

    def clipfrac(clip_coef):
        _, metrics = ppo_loss(
            logp_new, logp_old, jnp.ones(4), zeros, zeros, zeros, zeros, clip_coef=clip_coef, vf_coef=0.5, ent_coef=0.0
        )
        return float(metrics["clipfrac"])

    assert clipfrac(0.0) == 0.5  # the two ratios of exactly 1 are not clipped
    assert clipfrac(0.5) == 0.5  # |2 - 1| and |0.25 - 1| exceed 0.5
    assert clipfrac(0.8) == 0.25


# ----------------------------------------------------------------------- gradient clipping
def test_policy_gradient_vanishes_where_clipped_branch_is_active():
    """The min of the clipped and unclipped surrogates has zero gradient wrt logp_new where the
    clipped (constant) term is the pessimistic one, and the usual -A * ratio / B elsewhere."""
    ratio = jnp.array([2.0, 3.0, 0.3, 1.05, 0.3, 2.0])
    advantages = jnp.array([1.0, 2.0, -1.0, 1.0, 1.0, -1.0])
    logp_old = jnp.zeros(6)
    logp_new = jnp.log(ratio)
    zeros = jnp.zeros(6)

    def policy_loss(logp_new):
        _, metrics = ppo_loss(
            logp_new,
            logp_old,
            advantages,
            zeros,
            zeros,
            zeros,
            zeros,
            clip_coef=0.2,
            vf_coef=0.5,
            ent_coef=0.0,
            norm_adv=False,
        )
        return metrics["policy_loss"]

    grad = jax.grad(policy_loss)(logp_new)
    # 0, 1: A > 0 and ratio > 1 + c; 2: A < 0 and ratio < 1 - c  -> clipped, no gradient.
    # 3: inside the clip range; 4: A > 0 with ratio < 1 - c and 5: A < 0 with ratio > 1 + c
    #    keep the unclipped (pessimistic) term, so the gradient flows.
    expected = np.where([True, True, True, False, False, False], 0.0, -np.asarray(advantages * ratio) / 6)
    np.testing.assert_allclose(grad, expected, atol=1e-6, rtol=1e-5)
    assert np.all(np.asarray(grad)[3:] != 0.0)


def test_value_clipping_takes_the_larger_error():
    """v_new moved past the clip range away from the return: the clipped error is smaller, so
    the unclipped one is used; moved towards the return: the clipped (larger) error wins."""
    zeros = jnp.zeros(1)

    def value_loss(values_new, values_old, returns, clip_vloss=True):
        _, metrics = ppo_loss(
            zeros,
            zeros,
            jnp.ones(1),
            jnp.array([values_new]),
            jnp.array([values_old]),
            jnp.array([returns]),
            zeros,
            clip_coef=0.2,
            vf_coef=0.5,
            ent_coef=0.0,
            norm_adv=False,
            clip_vloss=clip_vloss,
        )
        return float(metrics["value_loss"])

    # away from the return: unclipped error 1.0^2, clipped 0.2^2
    assert math.isclose(value_loss(1.0, 0.0, 0.0), 0.5 * 1.0, rel_tol=1e-6)
    # towards the return: unclipped error 0.0, clipped (0.2 - 1)^2
    assert math.isclose(value_loss(1.0, 0.0, 1.0), 0.5 * 0.8**2, rel_tol=1e-6)
    assert value_loss(1.0, 0.0, 1.0, clip_vloss=False) == 0.0


# ----------------------------------------------------------------------- explained variance
def test_explained_variance_exact():
    targets = jnp.array([1.0, 2.0, 3.0, 5.0])
    predictions = jnp.array([1.0, 2.0, 3.0, 4.0])
    # Var[y] = 2.1875, Var[y - y_hat] = Var[0, 0, 0, 1] = 0.1875 -> 1 - 3/35 = 32/35
    np.testing.assert_allclose(explained_variance(predictions, targets), 32 / 35, atol=1e-6, rtol=0)
    np.testing.assert_allclose(explained_variance(targets, targets), 1.0, atol=1e-6, rtol=0)
    np.testing.assert_allclose(explained_variance(jnp.full(4, 2.75), targets), 0.0, atol=1e-6, rtol=0)
    # a constant offset is not penalised; anti-correlated predictions are worse than none
    np.testing.assert_allclose(explained_variance(targets + 10.0, targets), 1.0, atol=1e-5, rtol=0)
    assert float(explained_variance(-targets, targets)) < 0.0


def test_explained_variance_is_nan_for_constant_targets():
    targets = jnp.full((5,), 1.5)
    assert np.isnan(explained_variance(jnp.arange(5.0), targets))
    assert np.isnan(explained_variance(targets, targets))
