"""The trainer's pieces alone: the env seam, the policy seam and the iteration's pure helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from envs_for_tests import Corridor
from jaxppo import train
from jaxppo.envs import VecEnv, make_env
from jaxppo.policy import make_policy
from utils import tree_equal

CORRIDOR = jaxppo.PPOConfig(env_id="corridor", num_envs=3, num_steps=8, num_minibatches=2, total_timesteps=48)


@pytest.fixture(scope="module")
def corridor():
    trainer = jaxppo.make_trainer(CORRIDOR, env=Corridor())
    hp = trainer.resolve(jaxppo.PPOHParams())
    return trainer, hp, train.init_state(trainer, hp, jax.random.key(0))


# ------------------------------------------------------------------------- env seam
def test_vec_env_returns_the_final_observation_before_the_reset():
    env = VecEnv(make_env("corridor", env=Corridor()), num_envs=2)
    obs, state = env.reset(jax.random.key(0))
    assert obs.shape == (2, 1) and obs.dtype == jnp.float32
    keys = jax.random.split(jax.random.key(1), 2)
    for _ in range(4):  # walk right: position 4 of 5
        step = env.step(keys, state, jnp.ones(2, jnp.int32))
        state = step.state
    assert not step.terminated.any() and np.allclose(step.obs, 0.8)
    # Env 0 reaches the goal (terminated, reset to 0); env 1 walks back.
    step = env.step(keys, state, jnp.array([1, 0]))
    np.testing.assert_array_equal(step.terminated, [True, False])
    np.testing.assert_allclose(step.final_obs[:, 0], [1.0, 0.6])
    np.testing.assert_allclose(step.obs[:, 0], [0.0, 0.6])  # auto-reset observation
    np.testing.assert_array_equal(step.reward, [1.0, 0.0])
    assert step.reward.dtype == jnp.float32 and step.truncated.dtype == jnp.bool_


def test_vec_env_truncates_at_the_time_limit():
    env = VecEnv(make_env("corridor", env=Corridor()), num_envs=1)
    obs, state = env.reset(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 1)
    for t in range(20):  # walk left into the wall: the 20th step hits max_steps_in_episode
        step = env.step(keys, state, jnp.zeros(1, jnp.int32))
        state = step.state
        assert bool(step.truncated[0]) == (t == 19) and not step.terminated.any()


def test_continuous_actions_reach_the_env_clipped_and_shaped():
    env = VecEnv(make_env("MountainCarContinuous-v0"), num_envs=2)
    np.testing.assert_array_equal(env.env_action(jnp.array([[3.0], [-0.5]])), [[1.0], [-0.5]])
    discrete = VecEnv(make_env("CartPole-v1"), num_envs=2)
    assert discrete.env_action(jnp.array([1, 0])).tolist() == [1, 0]


# ---------------------------------------------------------------------- policy seam
def test_policy_reads_observations_in_their_env_shape():
    config = jaxppo.PPOConfig(env_id="Breakout-MinAtar", encoder="mlp").resolve("discrete")
    spec = make_env("Breakout-MinAtar")
    policy = make_policy(config, spec)
    params = policy.init(jax.random.split(jax.random.key(0), 2))
    assert params["actor"]["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (400, 64)
    obs = jnp.zeros((5, 3, 10, 10, 4))  # any leading batch dims
    dist = policy.distribution(params, obs)
    assert dist.logits.shape == (5, 3, spec.action_size) and policy.action_noise_size == spec.action_size
    assert policy.value(params, obs).shape == (5, 3)
    assert dist.sample_from_uniform(jnp.full((5, 3, spec.action_size), 0.5)).shape == (5, 3)


# ---------------------------------------------------------------- iteration helpers
def test_rollout_step_records_the_observation_it_acted_on(corridor):
    trainer, hp, state = corridor
    noise = train.draw_iteration_noise(trainer, state.key)
    step_noise = (noise.action_uniform[0], noise.env_keys[0])
    after, transition = train.rollout_step(trainer, hp, state, step_noise)
    np.testing.assert_array_equal(transition.obs, state.obs)
    dist = trainer.policy.distribution(state.params, state.obs)
    np.testing.assert_array_equal(transition.action, dist.sample_from_uniform(step_noise[0]))
    np.testing.assert_allclose(after.obs[:, 0], np.where(transition.action == 1, 0.2, 0.0))
    np.testing.assert_array_equal(after.episode_length, [1, 1, 1])


def test_compute_advantages_is_gae_of_the_critics_values(corridor):
    trainer, hp, state = corridor
    noise = train.draw_iteration_noise(trainer, state.key)
    _, traj = train.rollout(trainer, hp, state, noise)
    batch = train.compute_advantages(trainer, hp, state.params, traj)
    values = trainer.policy.value(state.params, traj.obs)
    next_values = trainer.policy.value(state.params, traj.final_obs)
    advantages, returns = jaxppo.compute_gae(
        traj.reward, values, next_values, traj.terminated, traj.truncated, hp.gamma, hp.gae_lambda
    )
    np.testing.assert_allclose(batch.advantages, advantages, atol=1e-6)
    np.testing.assert_allclose(batch.returns, returns, atol=1e-6)
    assert batch.obs.shape == (8, 3, 1)


def test_minibatch_update_with_no_learning_rate_keeps_the_parameters(corridor):
    trainer, hp, state = corridor
    noise = train.draw_iteration_noise(trainer, state.key)
    _, traj = train.rollout(trainer, hp, state, noise)
    batch = train.compute_advantages(trainer, hp, state.params, traj)
    minibatch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    learner = train.Learner(state.params, state.opt_state)
    updated, metrics = train.minibatch_update(trainer, hp, 0.0, jnp.asarray(True), learner, minibatch)
    assert tree_equal(updated.params, state.params)
    assert not tree_equal(updated.opt_state, state.opt_state)  # Adam's moments moved
    assert float(metrics["approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    moved, _ = train.minibatch_update(trainer, hp, 1e-2, jnp.asarray(True), learner, minibatch)
    assert not tree_equal(moved.params, state.params)


def test_update_epochs_stop_at_target_kl_and_report_it():
    trainer = jaxppo.make_trainer(CORRIDOR.replace(target_kl=1e-12, update_epochs=3), env=Corridor())
    hp = trainer.resolve(jaxppo.PPOHParams())
    state = train.init_state(trainer, hp, jax.random.key(0))
    noise = train.draw_iteration_noise(trainer, state.key)
    _, traj = train.rollout(trainer, hp, state, noise)
    batch = train.compute_advantages(trainer, hp, state.params, traj)
    permutations = jnp.stack([jnp.arange(24)] * 3)
    update = train.update_epochs(trainer, hp, 1e-3, train.Learner(state.params, state.opt_state), batch, permutations)
    assert int(update.epochs_done) == 1 and not bool(update.active)
    assert float(update.clipfrac_sum) >= 0.0 and set(update.last_metrics) == set(train.LOSS_METRICS)


def test_divergence_guard_rejects_a_non_finite_update(corridor):
    trainer, hp, state = corridor
    poisoned = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), state.params)
    update = train.EpochCarry(
        learner=train.Learner(poisoned, state.opt_state),
        active=jnp.asarray(True),
        last_metrics={name: jnp.zeros(()) for name in train.LOSS_METRICS},
        clipfrac_sum=jnp.zeros(()),
        epochs_done=jnp.ones((), jnp.int32),
    )
    guarded = train.divergence_guard(state, update)
    assert tree_equal(guarded.params, state.params) and int(guarded.diverged_at) == 1
    assert int(guarded.iteration) == 1
    healthy = train.divergence_guard(state, update._replace(learner=train.Learner(state.params, state.opt_state)))
    assert int(healthy.diverged_at) == -1


def test_the_helpers_give_the_same_numbers_jitted_and_not(corridor):
    trainer, hp, state = corridor
    eager, _ = train.iteration(trainer, hp, state)
    jitted, _ = jax.jit(lambda s: train.iteration(trainer, hp, s))(state)
    for a, b in zip(jax.tree.leaves(eager.params), jax.tree.leaves(jitted.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
