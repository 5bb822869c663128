"""Action masks and MultiDiscrete actions: the distributions alone, then probes that train."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from envs_for_tests import MaskedDials, TemptingBandit, TwoDials, UnmaskedTemptingBandit
from jaxppo.distributions import Categorical, MultiCategorical, mask_logits
from jaxppo.envs import flat_action_mask, make_env
from jaxppo.spaces import MultiDiscrete

LOGITS = jnp.asarray([[2.0, 0.5, 3.0, -1.0]])
MASK = jnp.asarray([[True, True, False, True]])


# ----------------------------------------------------------------- masked categorical
def test_a_masked_action_is_never_sampled_and_has_no_probability():
    dist = Categorical(mask_logits(LOGITS, MASK))
    uniform = jax.random.uniform(jax.random.key(0), (20_000, 4))
    samples = np.asarray(jax.vmap(lambda u: dist.sample_from_uniform(u[None])[0])(uniform))
    assert 2 not in samples and set(np.unique(samples)) == {0, 1, 3}
    allowed = np.asarray(LOGITS[0])[[0, 1, 3]]
    expected = np.exp(allowed) / np.exp(allowed).sum()  # the renormalised distribution
    np.testing.assert_allclose(np.exp(dist.log_prob(jnp.asarray([0, 1, 3])))[..., :], expected, rtol=1e-5)
    np.testing.assert_allclose(dist.entropy(), -(expected * np.log(expected)).sum(), rtol=1e-5)
    assert int(dist.mode()[0]) == 0  # the best allowed action, not the masked 3.0
    frequencies = np.bincount(samples, minlength=4)[[0, 1, 3]] / samples.size
    np.testing.assert_allclose(frequencies, expected, atol=0.015)


def test_masked_gradients_stay_finite():
    def entropy(logits):
        return Categorical(mask_logits(logits, MASK)).entropy().sum()

    grad = jax.grad(entropy)(LOGITS)
    assert np.all(np.isfinite(grad)) and float(grad[0, 2]) == 0.0


# ------------------------------------------------------------------ multi-categorical
def test_multi_categorical_sums_its_sub_actions():
    logits = jax.random.normal(jax.random.key(1), (5, 3 + 2))
    dist = MultiCategorical(logits, (3, 2))
    first, second = Categorical(logits[:, :3]), Categorical(logits[:, 3:])
    uniform = jax.random.uniform(jax.random.key(2), (5, 5))
    actions = dist.sample_from_uniform(uniform)
    assert actions.shape == (5, 2) and actions.dtype == jnp.int32
    np.testing.assert_array_equal(actions[:, 0], first.sample_from_uniform(uniform[:, :3]))
    np.testing.assert_array_equal(actions[:, 1], second.sample_from_uniform(uniform[:, 3:]))
    expected = first.log_prob(actions[:, 0]) + second.log_prob(actions[:, 1])
    np.testing.assert_allclose(dist.log_prob(actions), expected, rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(), first.entropy() + second.entropy(), rtol=1e-6)
    np.testing.assert_array_equal(dist.mode(), jnp.stack([first.mode(), second.mode()], -1))
    jitted = jax.jit(lambda d: d.log_prob(actions))(dist)  # a pytree with static nvec
    np.testing.assert_allclose(jitted, expected, rtol=1e-6)


def test_multi_discrete_space_and_its_errors():
    space = MultiDiscrete([3, 2])
    assert space.shape == (2,) and space.nvec == (3, 2)
    draws = jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 200))
    assert bool(jax.vmap(space.contains)(draws).all())
    assert set(np.unique(draws[:, 0])) == {0, 1, 2} and set(np.unique(draws[:, 1])) == {0, 1}
    for bad in ([], [3, 0], [[2, 2]], [1.5]):
        with pytest.raises(jaxppo.ConfigError, match="MultiDiscrete"):
            MultiDiscrete(bad)


def test_sub_action_masks_in_every_layout_become_one_row():
    spec = make_env("dials", env=TwoDials())
    assert spec.action_nvec == (3, 2) and spec.action_size == 5 and spec.action_shape == (2,)
    listed = [jnp.asarray([[True, False, True]]), jnp.asarray([[False, True]])]
    padded = jnp.asarray([[[True, False, True], [False, True, False]]])
    expected = [[True, False, True, False, True]]
    np.testing.assert_array_equal(flat_action_mask(listed, spec), expected)
    np.testing.assert_array_equal(flat_action_mask(padded, spec), expected)
    np.testing.assert_array_equal(flat_action_mask(jnp.asarray(expected), spec), expected)


def test_a_mask_on_box_actions_is_a_config_error():
    from gymnax.environments import spaces

    from envs_for_tests import Corridor

    class MaskedBox(Corridor):
        def action_mask(self, state, params):
            return jnp.ones(1, bool)

        def action_space(self, params=None):
            return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    with pytest.raises(jaxppo.ConfigError, match="action_mask"):
        make_env("masked", env=MaskedBox())


# ------------------------------------------------------------------------- probes
PROBE = jaxppo.PPOConfig(env_id="probe", num_envs=8, num_steps=20, total_timesteps=8 * 20 * 25, update_epochs=4)
HPARAMS = jaxppo.PPOHParams(learning_rate=3e-3, ent_coef=0.0)


def _train(env):
    return jax.jit(jaxppo.make_train(PROBE, env=env))(jax.random.key(0), HPARAMS)


@pytest.fixture(scope="module")
def masked_bandit():
    return _train(TemptingBandit())


def test_a_tempting_masked_action_is_never_taken_and_the_best_allowed_one_is_learned(masked_bandit):
    returns = np.asarray(masked_bandit.metrics["episode_return"])
    assert np.nanmax(returns) <= 10.0  # action 2 (paying 10) was never taken
    assert returns[-1] >= 9.5, returns  # and action 1 is learned (10 steps x 1)
    unmasked = np.asarray(_train(UnmaskedTemptingBandit()).metrics["episode_return"])
    assert unmasked[-1] > 50.0, unmasked  # without the mask the tempting action is learned


def test_the_mask_is_applied_again_in_the_update(masked_bandit):
    # approx_kl and the losses stay finite and small: the update recomputes log-probabilities of the
    # masked distribution it sampled from (unmasked ones would differ for every sample).
    for name in ("approx_kl", "policy_loss", "entropy"):
        assert np.all(np.isfinite(masked_bandit.metrics[name])), name
    trainer = jaxppo.make_trainer(PROBE.replace(update_epochs=1, num_minibatches=1), env=TemptingBandit())
    first = jax.jit(jaxppo.make_train(trainer.config, env=TemptingBandit()))(jax.random.key(3), HPARAMS)
    assert abs(float(first.metrics["approx_kl"][0])) < 1e-6  # ratio 1 on the first minibatch


def test_multi_discrete_actions_are_learned_sub_action_by_sub_action():
    returns = np.asarray(_train(TwoDials()).metrics["episode_return"])
    assert returns[-1] >= 19.0, returns  # both dials right on nearly every step (at most 20)
    masked = np.asarray(_train(MaskedDials()).metrics["episode_return"])
    assert np.nanmax(masked) <= 10.0 and masked[-1] >= 9.5, masked  # dial 0 never at 2; dial 1 learned


def test_evaluation_respects_the_mask(masked_bandit):
    trainer = jaxppo.make_trainer(PROBE, env=TemptingBandit())
    state = masked_bandit.state
    returns = jaxppo.evaluate(trainer, state.params, state.obs_stats, jax.random.key(0), 4, deterministic=False)
    assert np.all(np.asarray(returns) <= 10.0)


def test_a_loaded_policy_takes_the_mask(tmp_path, masked_bandit):
    from jaxppo.evaluation import make_act
    from jaxppo.loading import Policy

    trainer = jaxppo.make_trainer(PROBE, env=TemptingBandit())
    params = jax.tree.map(jnp.zeros_like, masked_bandit.state.params)  # uniform policy: logits all 0
    act = make_act(trainer, deterministic=True)
    jitted = jax.jit(lambda obs, key, mask=None, carry=None: act(params, None, obs, key, mask, carry))
    policy = Policy(jitted, (1,), "discrete", True)
    assert policy.predict(np.ones(1, np.float32)) == 0  # ties: the first action
    assert policy.predict(np.ones(1, np.float32), action_mask=np.array([False, False, True])) == 2
    batch = policy.predict(np.ones((2, 1), np.float32), action_mask=np.array([[False, True, True], [False, False, True]]))
    np.testing.assert_array_equal(batch, [1, 2])
