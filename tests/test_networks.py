"""Networks: vmap-safe orthogonal initialisation and CleanRL's head scales."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxppo.networks import Actor, Critic
from jaxppo.xla_cpu import orthogonal, polar_factor


@pytest.mark.parametrize("shape", [(5, 3), (64, 64), (400, 64), (7, 1)])
def test_polar_factor_matches_the_svd_polar_factor(shape):
    a = jax.random.normal(jax.random.key(0), shape)
    u, _, vt = np.linalg.svd(np.asarray(a, np.float64), full_matrices=False)
    np.testing.assert_allclose(polar_factor(a), u @ vt, atol=2e-5)


def test_polar_factor_of_an_ill_conditioned_matrix_is_orthonormal():
    a = jax.random.normal(jax.random.key(1), (64, 64)) @ jnp.diag(jnp.logspace(-4, 0, 64))
    q = polar_factor(a)
    np.testing.assert_allclose(q.T @ q, np.eye(64), atol=1e-4)


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (64, 1)])
def test_orthogonal_init_is_orthogonal_and_scaled(shape):
    w = orthogonal(np.sqrt(2))(jax.random.key(1), shape)
    assert w.shape == shape
    small = min(shape)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 2.0 * np.eye(small), atol=1e-4)


def test_vmapped_init_uses_no_lapack_and_does_not_hang():
    # The batched LAPACK QR custom call deadlocks jax 0.10 CPU for >= 8 vmapped seeds.
    def init(key):
        return Actor("discrete", 2).init(key, jnp.zeros((1, 4)))

    keys = jax.random.split(jax.random.key(0), 16)
    hlo = jax.jit(jax.vmap(init)).lower(keys).compile().as_text().lower()
    assert "geqrf" not in hlo and 'custom_call_target="lapack' not in hlo
    params = jax.jit(jax.vmap(init))(keys)
    kernels = params["params"]["MLP_0"]["Dense_0"]["kernel"]
    assert kernels.shape == (16, 4, 64)
    assert not np.allclose(kernels[0], kernels[1])


def test_heads_follow_cleanrl_scales():
    obs = jnp.zeros((1, 4))
    actor = Actor("discrete", 2).init(jax.random.key(0), obs)["params"]["MLP_0"]
    critic = Critic().init(jax.random.key(0), obs)["params"]["MLP_0"]
    head = actor["Dense_2"]["kernel"]
    np.testing.assert_allclose(head.T @ head, 0.01**2 * np.eye(2), atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(critic["Dense_2"]["kernel"]), 1.0, atol=1e-5)
    for layer in ("Dense_0", "Dense_1", "Dense_2"):
        assert not np.any(actor[layer]["bias"]) and not np.any(critic[layer]["bias"])


def test_gaussian_actor_log_std_starts_at_zero():
    params = Actor("continuous", 3).init(jax.random.key(0), jnp.zeros((1, 5)))
    np.testing.assert_array_equal(params["params"]["log_std"], np.zeros(3))
    dist = Actor("continuous", 3).apply(params, jnp.zeros((7, 5)))
    assert dist.mean.shape == (7, 3)


def test_init_draws_noise_once_and_orthogonalises_in_one_loop_whatever_the_depth():
    # One jax.random draw and one loop per layer made init about 2.5 s slower to compile (XLA:CPU).
    def loops(hidden_sizes):
        init = lambda key: Actor("discrete", 2, hidden_sizes).init(key, jnp.zeros((1, 4)))
        return jax.jit(init).lower(jax.random.key(0)).as_text().count("stablehlo.while")

    assert loops((64,)) == loops((64, 64, 64, 64))


def test_network_kernels_are_orthogonal_with_cleanrl_scales_at_every_depth():
    params = Critic((32, 16, 8)).init(jax.random.key(2), jnp.zeros((1, 5)))["params"]["MLP_0"]
    for layer, scale in [("Dense_0", 2.0), ("Dense_1", 2.0), ("Dense_2", 2.0), ("Dense_3", 1.0)]:
        w = np.asarray(params[layer]["kernel"], np.float64)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, scale * np.eye(min(w.shape)), atol=1e-4)
