"""The recurrent (GRU) policy: carry resets, replay alignment, sequence minibatches, memory,
equivalence of vmapped seeds and grids, resume, evaluation and ``load_policy``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxppo
from cli_harness import cli, in_parallel, in_this_process
from jaxppo import train as train_module
from jaxppo.config import ConfigError
from jaxppo.probes import Memory
from utils import assert_tree_close

pytestmark = pytest.mark.timeout(600)

# CartPole with short rollouts: several episodes end inside one rollout, so resets matter.
SMALL = jaxppo.PPOConfig(env_id="CartPole-v1", recurrent="gru", recurrent_size=16, num_envs=4, num_steps=32,
                         total_timesteps=3 * 4 * 32, num_minibatches=2, update_epochs=2, hidden_sizes=(16,))  # fmt: skip
HP = jaxppo.PPOHParams()


@pytest.fixture(scope="module")
def trainer():
    return jaxppo.make_trainer(SMALL)


@pytest.fixture(scope="module")
def rollout(trainer):
    """A rollout with random initial carries (as later iterations have) and its starting state."""
    state = trainer.init(jax.random.key(1), HP)
    carry = jax.tree.map(lambda c: jax.random.normal(jax.random.key(2), c.shape), state.carry)
    state = state.replace(carry=carry, episode_start=jnp.zeros(SMALL.num_envs, bool))
    after, traj = jax.jit(trainer.rollout)(state, HP)
    assert int(traj.episode_done[:-1].sum()) >= 2, "the test needs episodes that end inside the rollout"
    return state, after, traj


def test_a_start_resets_the_carry_before_the_step(trainer):
    params = trainer.init(jax.random.key(0), HP).params
    obs = jnp.ones((3, 4)) * 0.1
    fresh = trainer.policy.initial_carry(3)
    old = jax.tree.map(lambda c: c + 1.0, fresh)
    starts = jnp.array([True, False, True])
    dist, value, carry = trainer.policy.step(params, old, obs, starts)
    ref_dist, ref_value, ref_carry = trainer.policy.step(params, fresh, obs, jnp.zeros(3, bool))
    for i in (0, 2):  # reset: as from a fresh episode
        np.testing.assert_array_equal(dist.logits[i], ref_dist.logits[i])
        np.testing.assert_array_equal(value[i], ref_value[i])
        np.testing.assert_array_equal(carry["actor"][i], ref_carry["actor"][i])
    assert not np.allclose(dist.logits[1], ref_dist.logits[1])  # not reset: the old carry counts
    assert not np.allclose(carry["critic"][1], ref_carry["critic"][1])


def test_the_rollout_marks_each_step_after_a_done_as_a_start(rollout):
    state, after, traj = rollout
    done, start = np.asarray(traj.episode_done), np.asarray(traj.episode_start)
    np.testing.assert_array_equal(start[0], np.asarray(state.episode_start))
    np.testing.assert_array_equal(start[1:], done[:-1])
    np.testing.assert_array_equal(np.asarray(after.episode_start), done[-1])
    np.testing.assert_array_equal(np.asarray(after.carry["critic"]), np.asarray(traj.next_carry["critic"][-1]))


def test_replay_from_the_stored_first_carry_reproduces_the_rollout(trainer, rollout):
    state, _, traj = rollout
    replay = jax.jit(trainer.policy.unroll)
    dist, values = replay(state.params, state.carry, traj.obs, traj.episode_start)
    np.testing.assert_allclose(dist.log_prob(traj.action), traj.log_prob, atol=1e-6)
    np.testing.assert_allclose(values, traj.value, atol=1e-6)
    # Resetting one step late, or never, changes the replay: the check above can fail.
    late = jnp.concatenate([jnp.zeros_like(traj.episode_start[:1]), traj.episode_start[:-1]])
    for wrong in (late, jnp.zeros_like(traj.episode_start)):
        wrong_dist, _ = replay(state.params, state.carry, traj.obs, wrong)
        assert np.abs(np.asarray(wrong_dist.log_prob(traj.action) - traj.log_prob)).max() > 1e-4


def test_the_first_minibatch_of_the_update_has_ratio_one(trainer, rollout):
    state, after, traj = rollout
    hp = trainer.resolve(HP)
    sequences = train_module.compute_advantages(trainer, hp, state.params, traj, state.carry)
    permutation = jax.random.permutation(jax.random.key(5), SMALL.num_envs)
    minibatches = train_module.split_sequences(permutation, sequences, SMALL.num_minibatches)
    first = jax.tree.map(lambda x: x[0], minibatches)
    assert first.batch.obs.shape == (SMALL.num_steps, SMALL.num_envs // SMALL.num_minibatches, 4)
    _, metrics = jax.jit(functools.partial(train_module.loss, trainer, hp))(state.params, first)
    assert abs(float(metrics["approx_kl"])) < 1e-7 and float(metrics["clipfrac"]) == 0.0
    # Each minibatch holds whole env sequences: env permutation[k]'s every step, and its carry.
    env = int(permutation[0])
    np.testing.assert_array_equal(first.batch.action[:, 0], traj.action[:, env])
    np.testing.assert_array_equal(first.initial_carry["actor"][0], state.carry["actor"][env])


def test_vmapped_seeds_and_a_grid_equal_separate_runs():
    train = jaxppo.make_train(SMALL)
    keys = jax.random.split(jax.random.key(7), 2)
    grid, points = jaxppo.hparam_grid(HP, learning_rate=[1e-3, 3e-3], clip_coef=[0.1, 0.3])
    batched = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))(keys, grid)
    alone = jax.jit(train)
    for g, point in enumerate(points):
        for s in range(2):
            one = alone(keys[s], HP.replace(**point))
            assert_tree_close(jax.tree.map(lambda x: x[g, s], batched.state.params), one.state.params)
            assert_tree_close(batched.metrics["policy_loss"][g, s], one.metrics["policy_loss"])
    assert not np.allclose(batched.metrics["policy_loss"][0, 0], batched.metrics["policy_loss"][3, 1])


def test_chunks_of_a_recurrent_run_compose_exactly(trainer):
    state = trainer.init(jax.random.key(3), HP)
    run = jax.jit(trainer.run, static_argnums=2)
    whole = run(state, HP, 3)
    first = run(state, HP, 1)
    rest = run(first.state, HP, 2)
    assert_tree_close(whole.state.params, rest.state.params, atol=0, rtol=0)
    assert_tree_close(whole.state.carry, rest.state.carry, atol=0, rtol=0)


def test_bad_recurrent_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"num_envs = 6 must be divisible by num_minibatches = 4.*\[1, 2, 3, 6\]"):
        jaxppo.make_trainer(SMALL.replace(num_envs=6, num_minibatches=4))
    with pytest.raises(ConfigError, match=r"recurrent must be one of"):
        jaxppo.make_trainer(SMALL.replace(recurrent="lstm2"))
    with pytest.raises(ConfigError, match=r"recurrent_size must be a positive integer"):
        jaxppo.make_trainer(SMALL.replace(recurrent_size=0))
    assert jaxppo.PPOConfig(recurrent="none").recurrent is None


@pytest.mark.slow
def test_the_gru_remembers_the_cue_and_the_feed_forward_policy_stays_at_chance():
    returns = {}
    for core in (None, "gru"):
        config = jaxppo.PPOConfig(recurrent=core, recurrent_size=32, num_envs=16, num_steps=32,
                                  total_timesteps=48 * 512, num_minibatches=4, update_epochs=4)  # fmt: skip
        train = jax.vmap(jaxppo.make_train(config, env=Memory(num_cues=2, delay=4)), in_axes=(0, None))
        result = jax.jit(train)(jax.random.split(jax.random.key(0), 2), jaxppo.PPOHParams(learning_rate=1e-3))
        returns[core] = np.asarray(result.metrics["episode_return"])[:, -8:].mean(axis=1)
    assert np.all(np.abs(returns[None] - 0.5) < 0.1), returns  # no memory: a coin flip at the answer
    assert np.all(returns["gru"] > 0.9), returns


def test_cli_trains_evaluates_resumes_and_loads_a_recurrent_policy(tmp_path):
    flags = ["--env", "CartPole-v1", "--recurrent", "gru", "--recurrent-size", "8", "--hidden-sizes", "16",
             "--num-envs", "4", "--num-steps", "32", "--num-minibatches", "2", "--update-epochs", "1",
             "--seeds", "2", "--no-anneal-lr", "--no-progress", "--eval-episodes", "2"]  # fmt: skip
    short = cli(*flags, "--total-timesteps", 2 * 128, "--out", "short", cwd=tmp_path)
    assert short.returncode == 0, short.stderr[-3000:]
    both = in_parallel({
        "longer": lambda: cli("--resume", "short", "--total-timesteps", 4 * 128, "--no-progress", cwd=tmp_path),
        "reference": lambda: cli(*flags, "--total-timesteps", 4 * 128, "--out", "reference", cwd=tmp_path),
    })  # fmt: skip
    longer, reference = both["longer"], both["reference"]
    assert longer.returncode == 0 and reference.returncode == 0, longer.stderr[-2000:] + reference.stderr[-2000:]
    assert (tmp_path / "short/metrics.csv").read_text() == (tmp_path / "reference/metrics.csv").read_text()
    # refused before training: in this process, without the seconds of a new one's imports
    refused = in_this_process("--resume", "short", "--recurrent-size", "16", cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    policy = jaxppo.load_policy(tmp_path / "reference")
    assert policy.recurrent
    obs = np.array([0.01, 0.02, 0.03, 0.04], np.float32)
    action, carry = policy(obs)
    assert int(action) in (0, 1) and carry["actor"].shape == (8,)
    again, carry_again = policy(obs, carry=policy.initial_carry())
    assert int(again) == int(action) and np.array_equal(carry_again["actor"], carry["actor"])
    _, carry_2 = policy(obs, carry=carry)
    assert not np.array_equal(carry_2["actor"], carry["actor"])  # it reads on from the carry
    batch_action, batch_carry = policy.predict(np.stack([obs, obs]), carry=policy.initial_carry(2))
    assert batch_action.shape == (2,) and batch_carry["critic"].shape == (2, 8)
