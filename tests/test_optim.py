"""Gradient clipping of the optimiser chain and the learning-rate schedule that training reports.

``make_train`` builds ``optax.chain(optax.clip_by_global_norm(max_grad_norm),
optax.scale_by_adam(eps=1e-5))`` and applies ``-lr * update`` with ``lr`` annealed per iteration
(0-based index ``i``): ``lr0 * (1 - i / num_iterations)``, constant within an iteration.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxppo
from jaxppo.train import make_optimizer
from jaxppo.xla_cpu import apply_update, raveled

ATOL = 1e-5  # float32 library code against float64 reference values


def reference_grads(reference):
    block = reference["clip_by_global_norm"]
    grads = {name: jnp.asarray(value, jnp.float32) for name, value in block["inputs"]["grads"].items()}
    return grads, block["inputs"]["max_norm"], block["expected"]


# ----------------------------------------------------------------------- clipping
def test_global_norm_matches_reference(reference):
    grads, _, expected = reference_grads(reference)
    np.testing.assert_allclose(optax.tree.norm(grads), expected["global_norm"], atol=ATOL, rtol=0)


def test_clip_by_global_norm_matches_reference(reference):
    grads, max_norm, expected = reference_grads(reference)
    clip = optax.clip_by_global_norm(max_norm)
    clipped, _ = clip.update(grads, clip.init(grads))

    flat = np.concatenate([np.ravel(clipped["a"]), np.ravel(clipped["b"])])
    np.testing.assert_allclose(flat, expected["clipped_flat_a_then_b"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(optax.tree.norm(clipped), max_norm, atol=ATOL, rtol=0)


def test_clip_leaves_small_gradients_alone(reference):
    grads, _, _ = reference_grads(reference)
    clip = optax.clip_by_global_norm(100.0)
    clipped, _ = clip.update(grads, clip.init(grads))
    for name in grads:
        np.testing.assert_array_equal(clipped[name], grads[name])


def test_first_step_of_the_training_chain(reference):
    """The chain's first Adam step after clipping is ~sign(g) per coordinate (|m/sqrt(v)| = 1 up
    to eps): the step size is set by the learning rate alone, whatever the gradient scale."""
    grads, max_norm, _ = reference_grads(reference)
    chain = optax.chain(optax.clip_by_global_norm(max_norm), optax.scale_by_adam(eps=1e-5))
    updates, _ = chain.update(grads, chain.init(grads))
    learning_rate = 2.5e-4
    steps = jax.tree.map(lambda u: -learning_rate * u, updates)
    np.testing.assert_allclose(steps["a"], [-learning_rate] * 2, rtol=1e-3)
    np.testing.assert_allclose(steps["b"], [[-learning_rate]], rtol=1e-3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), grad_scale=st.floats(1e-3, 1e3), max_grad_norm=st.floats(0.1, 10.0))
def test_raveled_optimizer_equals_the_per_array_chain(seed, grad_scale, max_grad_norm):
    """Training runs clip + Adam + the learning rate on the raveled parameters (``xla_cpu.raveled``);
    per array, optax gives the same steps."""
    keys = iter(jax.random.split(jax.random.key(seed), 12))  # 3 leaves + 3 steps x 3 gradients
    draw = lambda shape, scale=1.0: scale * jax.random.normal(next(keys), shape)
    params = {"actor": {"kernel": draw((4, 3)), "bias": draw((3,))}, "critic": {"kernel": draw((3, 1))}}
    hp = jaxppo.PPOHParams(max_grad_norm=max_grad_norm, learning_rate=2.5e-4).resolve("discrete")
    chain, flat = make_optimizer(hp), raveled(make_optimizer(hp))
    flat_params, per_array = params, params
    flat_state, per_array_state = flat.init(params), chain.init(params)
    for _ in range(3):  # Adam's moments carry over
        grads = jax.tree.map(lambda p: draw(p.shape, grad_scale), params)
        flat_params, flat_state, grad_norm = apply_update(flat, flat_params, grads, flat_state)
        updates, per_array_state = chain.update(grads, per_array_state, per_array)
        per_array = optax.apply_updates(per_array, updates)
        np.testing.assert_allclose(grad_norm, optax.tree.norm(grads), rtol=1e-5)
        for a, b in zip(jax.tree.leaves(flat_params), jax.tree.leaves(per_array), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------- learning rate in training
LR_CONFIG = jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=4 * 512, num_envs=4, num_steps=128)


def reported_learning_rates(config: jaxppo.PPOConfig, lr0: float) -> np.ndarray:
    train = jax.jit(jaxppo.make_train(config))
    result = train(jax.random.PRNGKey(0), jaxppo.PPOHParams(learning_rate=lr0))
    return np.asarray(result.metrics["learning_rate"], np.float64)


@pytest.fixture(scope="module")
def annealed_rates(reference):
    lr0 = reference["learning_rate_linear_anneal"]["inputs"]["lr0"]
    return reported_learning_rates(LR_CONFIG, lr0)


def test_annealed_learning_rate_matches_reference(reference, annealed_rates):
    block = reference["learning_rate_linear_anneal"]
    inputs, expected = block["inputs"], block["expected"]
    # the run really has the reference's shape: 4 iterations of 4 epochs x 4 minibatches
    resolved = LR_CONFIG.resolve("discrete")
    assert resolved.num_iterations == inputs["num_iterations"]
    assert resolved.num_minibatches == inputs["num_minibatches"]
    assert resolved.update_epochs == inputs["update_epochs"]

    assert annealed_rates.shape == (inputs["num_iterations"],)
    np.testing.assert_allclose(annealed_rates, expected["per_iteration_1_to_4"], rtol=1e-6, atol=1e-12)


def test_annealed_learning_rate_is_not_driven_by_optimizer_count(reference, annealed_rates):
    """An optax schedule over the update count would still give lr0 at iteration 2."""
    wrong = reference["learning_rate_linear_anneal"]["expected"]["optax_count_0_15_16_63"]
    assert not np.isclose(annealed_rates[1], wrong[1], rtol=1e-3)


def test_constant_learning_rate_without_annealing(reference):
    lr0 = reference["learning_rate_linear_anneal"]["inputs"]["lr0"]
    rates = reported_learning_rates(LR_CONFIG.replace(anneal_lr=False), lr0)
    np.testing.assert_allclose(rates, np.full(4, lr0), rtol=1e-6, atol=1e-12)
