"""make_train: API contract, PPO invariants, vmap/grid equivalence, chunking, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from jaxppo.train import shuffle_into_minibatches
from jaxppo.xla_cpu import PACKED_INDEX_BITS_MAX, random_permutations
from utils import assert_tree_close, tree_equal

SMALL = jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=3 * 512)  # 3 iterations of 4 x 128

METRICS = [
    "episode_return", "episode_length", "policy_loss", "value_loss", "entropy", "approx_kl",
    "old_approx_kl", "clipfrac", "explained_variance", "grad_norm", "learning_rate", "env_steps",
]  # fmt: skip


# Resolved hyperparameters: every call below has the same pytree structure, so each compiled
# program (one seed, a grid of 4 points x 2 seeds) is compiled once for the whole module.
DEFAULTS = jaxppo.PPOHParams().resolve("discrete")


@pytest.fixture(scope="module")
def train_small():
    return jax.jit(jaxppo.make_train(SMALL))


@pytest.fixture(scope="module")
def train_small_grid():
    """``(keys [S], grid [G]) -> TrainResult [G, S, ...]``."""
    return jax.jit(jax.vmap(jax.vmap(jaxppo.make_train(SMALL), in_axes=(0, None)), in_axes=(None, 0)))


@pytest.fixture(scope="module")
def small_result(train_small):
    return train_small(jax.random.key(0), DEFAULTS)


def test_metrics_contract(small_result):
    for name in METRICS:
        assert name in small_result.metrics, name
        assert small_result.metrics[name].shape == (3,), name
    np.testing.assert_array_equal(small_result.metrics["env_steps"], [512, 1024, 1536])
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", "learning_rate"):
        assert np.all(np.isfinite(small_result.metrics[name])), name
    assert int(small_result.state.iteration) == 3


def test_episode_statistics_are_raw_cartpole_returns(small_result):
    # CartPole pays 1 per step, so a finished episode's raw return equals its length.
    returns, lengths = small_result.metrics["episode_return"], small_result.metrics["episode_length"]
    finished = ~np.isnan(returns)
    assert finished.any()
    np.testing.assert_allclose(returns[finished], lengths[finished], rtol=1e-6)
    assert np.all(returns[finished] >= 8)  # a CartPole episode lasts at least 8 steps


def test_first_minibatch_has_ratio_one():
    # One epoch with one minibatch: the logged loss is the first minibatch's, before any update.
    config = SMALL.replace(total_timesteps=512, update_epochs=1, num_minibatches=1)
    metrics = jax.jit(jaxppo.make_train(config))(jax.random.key(1), jaxppo.PPOHParams()).metrics
    # Rollout and update compute the same log-probs in differently fused XLA programs: equal up
    # to float32 rounding, which depends on the CPU (exactly 0 on one x86-64 machine, 3e-10 on another).
    assert abs(float(metrics["approx_kl"][0])) < 1e-6
    assert abs(float(metrics["old_approx_kl"][0])) < 1e-6
    assert float(metrics["clipfrac"][0]) == 0.0


def test_later_minibatches_move_the_policy(small_result):
    assert np.all(small_result.metrics["approx_kl"] > 0)


def test_each_epoch_permutation_covers_the_batch_once():
    batch = {"index": jnp.arange(512), "obs": jnp.arange(512 * 3).reshape(512, 3)}
    permutations = random_permutations(jax.random.key(3), 2, 512)
    minibatches = shuffle_into_minibatches(permutations[0], batch, 4)
    assert minibatches["index"].shape == (4, 128)
    np.testing.assert_array_equal(np.sort(minibatches["index"].reshape(-1)), np.arange(512))
    np.testing.assert_array_equal(minibatches["obs"][..., 0], 3 * minibatches["index"])  # rows stay together
    other = shuffle_into_minibatches(permutations[1], batch, 4)
    assert not np.array_equal(other["index"], minibatches["index"])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 128, 512, 1000, 2**PACKED_INDEX_BITS_MAX + 1])
def test_random_permutations_are_permutations(size):
    permutations = np.asarray(random_permutations(jax.random.key(size), 3, size))
    assert permutations.shape == (3, size) and permutations.dtype == np.int32
    for row in permutations:
        np.testing.assert_array_equal(np.sort(row), np.arange(size))


def test_random_permutations_are_uniform():
    # All 4! = 24 orders of 4 elements, equally often.
    draws = 48_000
    permutations = np.asarray(jax.jit(random_permutations, static_argnums=(1, 2))(jax.random.key(0), draws, 4))
    codes = permutations @ np.array([64, 16, 4, 1])
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    expected = draws / 24
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 49.7, (chi2, counts)  # 23 degrees of freedom: p = 0.001
    # On a realistic batch: position counts of each element over many draws are flat.
    size, draws = 512, 2000
    permutations = np.asarray(jax.jit(random_permutations, static_argnums=(1, 2))(jax.random.key(1), draws, size))
    first_quarter = (permutations[:, : size // 4, None] == np.arange(size)).any(axis=1).sum(axis=0)
    # Each element lands in the first minibatch (a quarter) with probability 1/4.
    z = (first_quarter - draws / 4) / np.sqrt(draws * 0.25 * 0.75)
    assert np.abs(z).max() < 5, z
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2, (z.mean(), z.std())


def test_random_permutations_differ_with_the_key():
    a, b = (np.asarray(random_permutations(jax.random.key(k), 2, 512)) for k in (0, 1))
    assert not np.array_equal(a, b) and not np.array_equal(a[0], a[1])


def test_rollout_noise_is_fresh_for_every_step_env_and_rollout():
    """All of a rollout's noise comes from one draw (``draw_iteration_noise``): no step, env or
    later rollout may reuse another's. With a constant (zero) policy the sampled actions are the
    noise itself."""
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(env_id="MountainCarContinuous-v0", num_envs=4, num_steps=256))
    hparams = jaxppo.PPOHParams()
    state = trainer.init(jax.random.key(0), hparams)
    state = state.replace(params=jax.tree.map(jnp.zeros_like, state.params))  # mean 0, std 1 everywhere
    rollout = jax.jit(trainer.rollout)
    state_after, first = rollout(state, hparams)
    _, second = rollout(state_after, hparams)
    noise = np.concatenate([np.asarray(first.action), np.asarray(second.action)]).reshape(-1)
    assert len(np.unique(noise)) == noise.size  # 2048 distinct float32 draws
    assert abs(noise.mean()) < 0.1 and 0.93 < noise.std() < 1.07  # standard normal: se 0.022, 0.016
    lagged = np.corrcoef(noise[:-4], noise[4:])[0, 1]  # the same env one step later
    assert abs(lagged) < 0.1
    assert not np.array_equal(jax.random.key_data(state_after.key), jax.random.key_data(state.key))


def test_stored_continuous_actions_are_unclipped():
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(env_id="MountainCarContinuous-v0", num_steps=64))
    hparams = jaxppo.PPOHParams()
    state = trainer.init(jax.random.key(0), hparams)
    _, traj = jax.jit(trainer.rollout)(state, hparams)
    actions = np.asarray(traj.action)
    assert actions.shape == (64, 1, 1)
    assert np.abs(actions).max() > 1.0  # std 1 at init: samples leave the [-1, 1] bounds
    dist = trainer.policy.distribution(state.params, traj.obs)
    np.testing.assert_allclose(dist.log_prob(traj.action), traj.log_prob, atol=1e-5)


def test_learning_rate_is_annealed_per_iteration(small_result):
    np.testing.assert_allclose(small_result.metrics["learning_rate"], 2.5e-4 * np.array([1, 2 / 3, 1 / 3]), rtol=1e-6)


def test_grid_and_vmapped_seeds_equal_separate_runs(train_small, train_small_grid):
    keys = jax.random.split(jax.random.key(11), 2)
    grid, points = jaxppo.hparam_grid(DEFAULTS, learning_rate=[1e-3, 3e-3], clip_coef=[0.1, 0.3])
    assert len(points) == 4 and grid.learning_rate.shape == (4,)
    result = train_small_grid(keys, grid)
    assert result.metrics["policy_loss"].shape == (4, 2, 3)
    for g, point in enumerate(points):
        for s in range(2):
            alone = train_small(keys[s], DEFAULTS.replace(**point))
            assert_tree_close(jax.tree.map(lambda x: x[g, s], result.state.params), alone.state.params)
            assert_tree_close(result.metrics["episode_return"][g, s], alone.metrics["episode_return"])
    # Different hyperparameters and different seeds really train differently.
    assert not np.allclose(result.metrics["policy_loss"][0], result.metrics["policy_loss"][3])
    assert not np.allclose(result.metrics["policy_loss"][0, 0], result.metrics["policy_loss"][0, 1])


def test_new_hyperparameter_values_do_not_recompile():
    traces = []

    def counted(key, hparams):
        traces.append(1)
        return jaxppo.make_train(SMALL.replace(total_timesteps=512))(key, hparams)

    train = jax.jit(counted)
    for lr, clip in [(1e-4, 0.1), (3e-4, 0.2), (1e-3, 0.3)]:
        hparams = jaxppo.PPOHParams(learning_rate=lr, clip_coef=clip).resolve("discrete")
        jax.block_until_ready(train(jax.random.key(0), hparams))
    assert len(traces) == 1


def test_chunked_run_equals_unchunked_run(small_result):
    # small_result is init + a scan of 3 iterations in one program; here each iteration is its
    # own call (as the CLI's chunks and resume do): everything an iteration needs is in the state.
    trainer = jaxppo.make_trainer(SMALL)
    state = jax.jit(trainer.init)(jax.random.key(0), DEFAULTS)
    step = jax.jit(trainer.step)
    metrics = []
    for _ in range(3):
        state, iteration_metrics = step(state, DEFAULTS)
        metrics.append(iteration_metrics)
    chunked = jax.tree.map(lambda *x: jnp.stack(x), *metrics)
    assert tree_equal(small_result.state, state)
    assert tree_equal(small_result.metrics, chunked)


def test_same_key_gives_bit_identical_results(train_small):
    a = train_small(jax.random.key(2), DEFAULTS)
    b = jax.jit(jaxppo.make_train(SMALL))(jax.random.key(2), DEFAULTS)  # fresh trace and compile
    assert tree_equal(a, b)
    c = train_small(jax.random.key(3), DEFAULTS)
    assert not tree_equal(a.metrics, c.metrics)


def test_target_kl_stops_epochs_inside_the_scan(small_result):
    stopped = jax.jit(jaxppo.make_train(SMALL.replace(target_kl=1e-9)))(jax.random.key(0), DEFAULTS)
    np.testing.assert_array_equal(stopped.metrics["update_epochs_done"], [1, 1, 1])
    # The same seed without target_kl (small_result) runs every epoch and ends elsewhere.
    np.testing.assert_array_equal(small_result.metrics["update_epochs_done"], [4, 4, 4])
    assert not tree_equal(stopped.state.params, small_result.state.params)


def test_continuous_defaults_are_cleanrl_continuous():
    trainer = jaxppo.make_trainer(jaxppo.PPOConfig(env_id="Pendulum-v1"))
    config = trainer.config
    assert (config.num_envs, config.num_steps, config.num_minibatches, config.update_epochs) == (1, 2048, 32, 10)
    assert config.normalize_observations and config.normalize_rewards
    hp = jaxppo.PPOHParams().resolve(trainer.spec.action_kind)
    assert float(hp.learning_rate) == pytest.approx(3e-4) and float(hp.ent_coef) == 0.0
    # Explicit settings win over the continuous defaults.
    assert jaxppo.make_trainer(jaxppo.PPOConfig(env_id="Pendulum-v1", num_envs=8)).config.num_envs == 8


def test_normalisation_statistics_are_per_seed():
    config = jaxppo.PPOConfig(env_id="Pendulum-v1", total_timesteps=256, num_steps=128, num_minibatches=4)
    keys = jax.random.split(jax.random.key(0), 2)
    result = jax.jit(jax.vmap(jaxppo.make_train(config), in_axes=(0, None)))(keys, jaxppo.PPOHParams())
    stats = result.state.obs_stats
    assert stats.mean.shape == (2, 3)
    assert float(stats.count[0]) == pytest.approx(1e-4 + 257, rel=1e-6)  # reset obs + 256 steps, one env
    assert not np.allclose(stats.mean[0], stats.mean[1])


def test_a_diverging_grid_point_is_flagged_frozen_and_contained(train_small, train_small_grid):
    keys = jax.random.split(jax.random.key(0), 2)
    # Grid points 2 and 3 have a learning rate that overflows at once.
    grid, points = jaxppo.hparam_grid(DEFAULTS, learning_rate=[2.5e-4, 1e30], clip_coef=[0.2, 0.1])
    assert [p["learning_rate"] for p in points] == [2.5e-4, 2.5e-4, 1e30, 1e30]
    result = train_small_grid(keys, grid)
    np.testing.assert_array_equal(result.state.diverged_at, [[-1, -1], [-1, -1], [1, 1], [1, 1]])
    np.testing.assert_array_equal(result.metrics["diverged"][2:], np.ones((2, 2, 3)))
    assert not np.any(result.metrics["diverged"][:2])
    for leaf in jax.tree.leaves(result.state.params):
        assert np.all(np.isfinite(leaf))  # the rejected updates never reached the state
    # Compiled like the training run (eager op-by-op execution may round differently).
    initial = jax.jit(jax.vmap(jaxppo.make_trainer(SMALL).init, in_axes=(0, None)))(keys, DEFAULTS)
    for g in (2, 3):
        assert tree_equal(jax.tree.map(lambda x: x[g], result.state.params), initial.params)  # frozen at init
    healthy = train_small(keys[0], DEFAULTS)
    assert_tree_close(jax.tree.map(lambda x: x[0, 0], result.state.params), healthy.state.params)
