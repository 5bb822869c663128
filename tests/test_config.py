"""Config validation: every mistake is a ConfigError naming the problem and the fix."""

import math

import jax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxppo
from envs_for_tests import Corridor, DictActionCorridor, DiscreteObsCorridor
from jaxppo import ConfigError, PPOConfig, PPOHParams


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_config_is_hashable_and_env_kwargs_become_items():
    config = PPOConfig(env_kwargs={"b": 1, "a": 2})
    assert config.env_kwargs == (("a", 2), ("b", 1))
    assert hash(config) == hash(PPOConfig(env_kwargs={"a": 2, "b": 1}))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(num_envs=0), "num_envs must be a positive integer"),
        (dict(num_steps=-3), "num_steps must be a positive integer"),
        (dict(update_epochs=1.5), "update_epochs must be an integer"),
        (dict(num_minibatches=3), "not divisible by num_minibatches"),
        (dict(total_timesteps=100), "smaller than one iteration"),
        (dict(truncation="cut"), "truncation must be one of"),
        (dict(activation="sigmoid"), "activation must be one of"),
        (dict(target_kl=-0.1), "target_kl must be None or a positive number"),
        (dict(hidden_sizes=()), "hidden_sizes must be positive"),
    ],
)
def test_invalid_config_raises_one_line_config_error(changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        jaxppo.make_train(PPOConfig(env_id="CartPole-v1", **changes))
    assert "\n" not in str(info.value)


def test_divisibility_error_names_valid_choices():
    with pytest.raises(ConfigError, match=r"choose num_minibatches among \[1, 2, 4"):
        jaxppo.make_train(PPOConfig(num_minibatches=3))


def test_unknown_env_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean CartPole-v1"):
        jaxppo.make_train(PPOConfig(env_id="CartPole-v2"))


def test_unsupported_spaces_are_rejected():
    with pytest.raises(ConfigError, match="action space Dict is not supported"):
        jaxppo.make_train(PPOConfig(), env=DictActionCorridor())
    with pytest.raises(ConfigError, match="observation space Discrete is not supported"):
        jaxppo.make_train(PPOConfig(), env=DiscreteObsCorridor())
    with pytest.raises(ConfigError, match="must be an instance of gymnax"):
        jaxppo.make_train(PPOConfig(), env=object())


def test_bad_env_kwargs_are_a_config_error():
    with pytest.raises(ConfigError, match="env_kwargs"):
        jaxppo.make_train(PPOConfig(env_kwargs={"no_such_option": 1}))


@pytest.mark.parametrize(
    "field, value",
    [("gamma", 1.5), ("gae_lambda", -0.1), ("learning_rate", -1e-3), ("clip_coef", math.nan),
     ("ent_coef", math.inf), ("vf_coef", -1.0), ("max_grad_norm", -0.5)],
)  # fmt: skip
def test_invalid_hyperparameters_raise(field, value):
    train = jaxppo.make_train(PPOConfig(total_timesteps=512))
    with pytest.raises(ConfigError, match=field):
        train(jax.random.key(0), PPOHParams(**{field: value}))


def test_grid_rejects_unknown_and_empty_fields():
    with pytest.raises(ConfigError, match="unknown hyperparameter 'lr'"):
        jaxppo.hparam_grid(lr=[1e-3])
    with pytest.raises(ConfigError, match="empty"):
        jaxppo.hparam_grid(clip_coef=[])
    with pytest.raises(ConfigError, match="gamma"):
        jaxppo.hparam_grid(gamma=[0.9, 1.2])


def test_grid_is_the_cartesian_product():
    grid, points = jaxppo.hparam_grid(PPOHParams(gamma=0.9), learning_rate=[1, 2, 3], clip_coef=[0.1, 0.2])
    assert len(points) == 6 and points[1] == {"learning_rate": 1, "clip_coef": 0.2}
    assert grid.learning_rate.tolist() == [1, 1, 2, 2, 3, 3]
    assert grid.gamma.shape == (6,) and grid.ent_coef is None


def test_hparams_resolve_per_action_kind():
    assert float(PPOHParams().resolve("discrete").learning_rate) == pytest.approx(2.5e-4)
    assert float(PPOHParams().resolve("continuous").ent_coef) == 0.0
    assert float(PPOHParams(ent_coef=0.05).resolve("continuous").ent_coef) == pytest.approx(0.05)


counts = st.integers(min_value=-2, max_value=300)


@settings(deadline=None, max_examples=200)
@given(num_envs=counts, num_steps=counts, num_minibatches=counts, update_epochs=counts,
       total_timesteps=st.integers(min_value=-10, max_value=100_000))  # fmt: skip
def test_validation_accepts_exactly_the_valid_configs(
    num_envs, num_steps, num_minibatches, update_epochs, total_timesteps
):
    config = PPOConfig(
        num_envs=num_envs, num_steps=num_steps, num_minibatches=num_minibatches,
        update_epochs=update_epochs, total_timesteps=total_timesteps,
    )  # fmt: skip
    valid = (
        min(num_envs, num_steps, num_minibatches, update_epochs, total_timesteps) > 0
        and (num_envs * num_steps) % num_minibatches == 0
        and total_timesteps >= num_envs * num_steps
    )
    if valid:
        resolved = config.resolve("discrete")
        assert resolved.num_iterations >= 1
        assert resolved.env_steps <= total_timesteps
        assert resolved.minibatch_size * num_minibatches == resolved.batch_size
    else:
        with pytest.raises(ConfigError):
            config.resolve("discrete")


@settings(deadline=None, max_examples=100)
@given(st.sampled_from(["gamma", "gae_lambda", "clip_coef", "learning_rate"]), st.floats(allow_nan=True))
def test_hparam_validation_matches_ranges(field, value):
    bounded = field in ("gamma", "gae_lambda")
    valid = math.isfinite(value) and value >= 0 and (value <= 1 or not bounded)
    if valid:
        PPOHParams(**{field: value}).validate()
    else:
        with pytest.raises(ConfigError):
            PPOHParams(**{field: value}).validate()


def test_custom_env_trains_end_to_end():
    config = PPOConfig(total_timesteps=8 * 512, num_envs=8, num_steps=64)
    result = jaxppo.make_train(config, env=Corridor())(jax.random.key(0), PPOHParams(learning_rate=2.5e-3))
    lengths = result.metrics["episode_length"]
    assert result.metrics["episode_return"].shape == (8,)
    # Walking right every step reaches the goal in 5 steps; PPO should get close quickly.
    assert float(lengths[-1]) < float(lengths[0])


@pytest.mark.parametrize("derived", ["batch_size", "minibatch_size", "num_iterations", "env_steps"])
def test_an_unresolved_config_has_no_derived_counts_and_says_why(derived):
    config = PPOConfig(num_steps=64)  # num_envs, total_timesteps, ... left to the action space
    assert not config.is_resolved
    with pytest.raises(jaxppo.UnresolvedConfigError, match=r"num_envs.*None.*resolve\(action_kind\)"):
        getattr(config, derived)
    resolved = config.resolve("discrete")
    assert resolved.is_resolved and resolved.batch_size == 4 * 64
    assert getattr(resolved, derived) > 0


def test_a_trainer_holds_only_a_resolved_config():
    trainer = jaxppo.make_trainer(PPOConfig())
    assert trainer.config.is_resolved
    with pytest.raises(jaxppo.UnresolvedConfigError, match="Trainer needs a resolved PPOConfig"):
        jaxppo.Trainer(config=PPOConfig(), env=trainer.env, policy=trainer.policy)
