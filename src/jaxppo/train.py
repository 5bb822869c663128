"""``make_train``: the whole PPO run as one pure function of ``(key, hparams)``.

Read top-down. ``iteration`` (one PPO iteration) comes first and its helpers follow it in the
order it calls them::

    draw_iteration_noise, annealed_learning_rate → rollout ⊃ rollout_step ⊃ normalize_step
      → compute_advantages (GAE) → xla_cpu.shuffle → update_epochs ⊃ update_epoch
      ⊃ (shuffle_into_minibatches or split_sequences, minibatch_update ⊃ loss) → divergence_guard
      → iteration_metrics

The environment is reached only through ``envs.VecEnv`` and the networks only through the
policy seam (``policy.TrainablePolicy``: the built-in networks or a user's ``network``), the
optimiser through ``Trainer.optimizer``; whether the policy is recurrent decides only which
layout (``SampleLayout`` or ``SequenceLayout``) acts, values and batches it. The XLA:CPU
workarounds are called by name from ``xla_cpu``. Everything an iteration needs lives in ``TrainState``, so a run can stop after any
iteration and continue exactly (``Trainer.run`` called again with the returned state). The
named containers follow the helpers, and the public pieces (``Trainer``, ``make_train``,
``make_trainer``, ``init_state``, ``make_optimizer``) close the module. Hyperparameters are resolved once, where
they enter (``Trainer.resolve``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxppo import normalize as norm
from jaxppo import xla_cpu
from jaxppo.config import ConfigError, PPOConfig, PPOHParams, first_line
from jaxppo.distributions import uniform_from_bits
from jaxppo.envs import EnvSpec, VecEnv, make_env
from jaxppo.gae import compute_gae
from jaxppo.losses import explained_variance, ppo_loss
from jaxppo.policy import TrainablePolicy, make_network_policy, make_policy

RECENT_EPISODES = 100  # window of CleanRL's "final return" metric
# Bits of the ``env_nonfinite`` metric: what the env itself returned as NaN or inf.
NONFINITE_OBSERVATION, NONFINITE_REWARD = 1, 2


# ------------------------------------------------------------------------- iteration
def iteration(trainer: Trainer, hp: PPOHParams, state: TrainState) -> tuple[TrainState, dict]:
    """One PPO iteration: randomness, rollout, GAE, update epochs, divergence guard, metrics."""
    config = trainer.config
    noise = draw_iteration_noise(trainer, state.key)
    learning_rate = annealed_learning_rate(config, hp, state.iteration)
    initial_carry = state.carry  # a recurrent policy's state at the rollout's start, replayed by the update

    # ----- rollout: num_steps steps of every env
    state, traj = rollout(trainer, hp, state.replace(key=noise.next_key), noise)

    # ----- GAE, from one batched value pass over visited states and their successors
    batch = compute_advantages(trainer, hp, state.params, traj, initial_carry)

    # ----- update epochs over shuffled minibatches (of whole env sequences for a recurrent policy)
    permutations = xla_cpu.shuffle(noise.shuffle_bits, noise.spare_key, config.update_epochs, shuffled_size(trainer))
    update = update_epochs(trainer, hp, learning_rate, Learner(state.params, state.opt_state), batch, permutations)

    # ----- divergence guard: a non-finite update is rejected and the agent frozen
    state = divergence_guard(state, update)

    # ----- metrics (reduced here, so memory does not grow with the run's length)
    return iteration_metrics(config, state, traj, batch, update, learning_rate)


def draw_iteration_noise(trainer: Trainer, key: jax.Array) -> IterationNoise:
    """All of an iteration's randomness in one draw (see ``xla_cpu.draw_bits`` for why)."""
    config = trainer.config
    words = xla_cpu.key_words(key)
    steps = (config.num_steps, config.num_envs)
    shuffle_shape = xla_cpu.shuffle_noise_shape(config.update_epochs, shuffled_size(trainer))
    shapes = [(2, words), (*steps, trainer.policy.action_noise_size), (*steps, words)]
    parts = xla_cpu.draw_bits(key, shapes + ([shuffle_shape] if shuffle_shape else []))
    next_key, spare_key = xla_cpu.keys_from_bits(key, parts[0])
    return IterationNoise(
        next_key=next_key,
        spare_key=spare_key,
        action_uniform=uniform_from_bits(parts[1]),
        env_keys=xla_cpu.keys_from_bits(key, parts[2]),
        shuffle_bits=parts[3] if shuffle_shape else None,
    )


def shuffled_size(trainer: Trainer) -> int:
    """What each epoch permutes: the batch's samples, or a recurrent policy's env sequences."""
    return trainer.layout.shuffled_size(trainer.config)


def annealed_learning_rate(config: PPOConfig, hp: PPOHParams, iterations_done: jax.Array) -> jax.Array:
    """CleanRL's linear annealing: ``lr0 * (1 - (i - 1) / num_iterations)`` for 1-based iteration ``i``."""
    if not config.anneal_lr:
        return hp.learning_rate
    return hp.learning_rate * (1.0 - iterations_done.astype(jnp.float32) / config.num_iterations)


# --------------------------------------------------------------------------- rollout
def rollout(trainer: Trainer, hp: PPOHParams, state: TrainState, noise: IterationNoise):
    """``num_steps`` steps of every env: ``(state, Transition [T, N, ...])``.

    ``noise`` was drawn from ``state.key``; the caller has already moved the state's key on to
    ``noise.next_key`` (as ``iteration`` and ``Trainer.rollout`` do), which this leaves alone.
    """
    step = functools.partial(rollout_step, trainer, hp)
    return jax.lax.scan(step, state, (noise.action_uniform, noise.env_keys))


def rollout_step(trainer: Trainer, hp: PPOHParams, state: TrainState, step_noise) -> tuple[TrainState, Transition]:
    """Act in every env once, from this step's share ``(uniform, env keys)`` of the noise."""
    uniform, env_keys = step_noise
    action_mask = trainer.env.action_mask(state.env_state)  # None unless the env masks actions
    # a recurrent policy's carry resets where this step's observation starts an episode
    dist, value, carry = trainer.layout.act(trainer.policy, state.params, state.carry, state.obs, state.episode_start,
                                            action_mask)  # fmt: skip
    action = dist.sample_from_uniform(uniform)
    log_prob = dist.log_prob(action)
    step = trainer.env.step(env_keys, state.env_state, action)
    state, next_obs, final_obs, train_reward = normalize_step(trainer.config, hp, state, step)

    done = jnp.logical_or(step.terminated, step.truncated)
    episode_return = state.episode_return + step.reward
    episode_length = state.episode_length + 1
    transition = Transition(
        obs=state.obs,
        action=action,
        log_prob=log_prob,
        action_mask=action_mask,
        reward=train_reward,
        terminated=step.terminated,
        truncated=step.truncated,
        final_obs=final_obs,
        episode_done=done,
        done_return=jnp.where(done, episode_return, 0.0),
        done_length=jnp.where(done, episode_length, 0),
        done_metrics={name: jnp.where(done, m, 0.0) for name, m in step.episode_metrics.items()},
        episode_start=state.episode_start,
        value=value,
        next_carry=carry,
    )
    state = state.replace(
        carry=carry,
        episode_start=trainer.layout.episode_start(done),
        env_state=step.state,
        obs=next_obs,
        episode_return=jnp.where(done, 0.0, episode_return),
        episode_length=jnp.where(done, 0, episode_length),
    )
    return state, transition


def normalize_step(config: PPOConfig, hp: PPOHParams, state: TrainState, step):
    """Observation normalisation and reward scaling of one env step (CleanRL's wrappers), each
    when switched on: ``(state with updated statistics, obs, final_obs, training reward)``."""
    next_obs, final_obs, reward = step.obs, step.final_obs, step.reward
    if config.normalize_observations:
        obs_stats = norm.update_observation_stats(state.obs_stats, next_obs)
        next_obs = norm.normalize_observation_tree(obs_stats, next_obs, config.obs_clip)
        final_obs = norm.normalize_observation_tree(obs_stats, final_obs, config.obs_clip)
        state = state.replace(obs_stats=obs_stats)
    if config.normalize_rewards:
        discounted_return = norm.update_discounted_return(state.discounted_return, reward, step.terminated, hp.gamma)
        reward_stats = state.reward_stats.update(discounted_return)
        reward = norm.scale_rewards(reward_stats, reward, config.reward_clip)
        state = state.replace(reward_stats=reward_stats, discounted_return=discounted_return)
    return state, next_obs, final_obs, reward


# ------------------------------------------------------------------------------- GAE
def compute_advantages(trainer: Trainer, hp: PPOHParams, params: dict, traj: Transition, initial_carry=None):
    """GAE of the rollout, bootstrapping from V(final_obs) at time limits: a ``Batch``, or for a
    recurrent policy ``Sequences`` (the batch, its episode starts and the rollout's first carry)."""
    values, next_values = trainer.layout.values(trainer.policy, params, traj)
    terminated = traj.terminated
    if trainer.config.truncation == "terminate":  # CleanRL parity: time limits end the return
        terminated = traj.episode_done
    advantages, returns = compute_gae(
        traj.reward, values, next_values, terminated, traj.truncated, hp.gamma, hp.gae_lambda
    )
    batch = Batch(traj.obs, traj.action, traj.log_prob, advantages, returns, values, traj.action_mask)
    return trainer.layout.learning_batch(batch, traj, initial_carry)


# ---------------------------------------------------------------------------- update
def update_epochs(trainer, hp, learning_rate, learner: Learner, batch, permutations) -> EpochCarry:
    """``update_epochs`` passes over the flattened batch, one permutation ``[B]`` each (for a
    recurrent policy: over the env sequences ``Sequences``, one permutation ``[N]`` each)."""
    flat = trainer.layout.epoch_batch(trainer.config, batch)
    carry = EpochCarry(
        learner=learner,
        active=jnp.asarray(True),
        last_metrics={name: jnp.zeros((), jnp.float32) for name in LOSS_METRICS},
        clipfrac_sum=jnp.zeros(()),
        epochs_done=jnp.zeros((), jnp.int32),
    )
    epoch = functools.partial(update_epoch, trainer, hp, learning_rate, flat)
    return jax.lax.scan(epoch, carry, permutations)[0]


def update_epoch(trainer, hp, learning_rate, batch: Batch, carry: EpochCarry, permutation) -> tuple[EpochCarry, None]:
    """One epoch: every sample once, in ``num_minibatches`` minibatches; then CleanRL's
    ``target_kl`` check on the epoch's last minibatch (a masked update: a scan cannot break)."""
    config = trainer.config
    minibatches = trainer.layout.minibatches(permutation, batch, config.num_minibatches)
    step = functools.partial(minibatch_update, trainer, hp, learning_rate, carry.active)
    learner, metrics = jax.lax.scan(step, carry.learner, minibatches)
    active = carry.active
    epoch_last = jax.tree.map(lambda m: m[-1], metrics)
    carry = EpochCarry(
        learner=learner,
        active=active,
        last_metrics=jax.tree.map(lambda new, old: jnp.where(active, new, old), epoch_last, carry.last_metrics),
        clipfrac_sum=carry.clipfrac_sum + jnp.where(active, metrics["clipfrac"].sum(), 0.0),
        epochs_done=carry.epochs_done + active.astype(jnp.int32),
    )
    if config.target_kl is not None:
        carry = carry._replace(active=jnp.logical_and(active, epoch_last["approx_kl"] <= config.target_kl))
    return carry, None


def shuffle_into_minibatches(permutation: jax.Array, batch, num_minibatches: int):
    """Permute the whole batch with one gather, then split it: every sample once per epoch.

    Leaves ``[B, ...]`` become ``[num_minibatches, B // num_minibatches, ...]``.
    """
    batch_size = jax.tree.leaves(batch)[0].shape[0]
    return jax.tree.map(
        lambda x: x[permutation].reshape((num_minibatches, batch_size // num_minibatches) + x.shape[1:]),
        batch,
    )


def split_sequences(permutation: jax.Array, sequences: Sequences, num_minibatches: int) -> Sequences:
    """Whole env sequences into minibatches: env ``permutation[k]`` goes to minibatch
    ``k // (N / num_minibatches)`` with all its steps, its episode starts and its first carry.

    Leaves ``[T, N, ...]`` become ``[num_minibatches, T, N // num_minibatches, ...]``, the first
    carry ``[N, ...]`` becomes ``[num_minibatches, N // num_minibatches, ...]``.
    """
    num_envs = permutation.shape[0]
    per_minibatch = num_envs // num_minibatches

    def by_env(x):  # time-major leaves
        x = x[:, permutation].reshape((x.shape[0], num_minibatches, per_minibatch) + x.shape[2:])
        return jnp.moveaxis(x, 1, 0)

    return Sequences(
        batch=jax.tree.map(by_env, sequences.batch),
        episode_start=by_env(sequences.episode_start),
        initial_carry=jax.tree.map(
            lambda x: x[permutation].reshape((num_minibatches, per_minibatch) + x.shape[1:]), sequences.initial_carry
        ),
    )


def minibatch_update(trainer, hp, learning_rate, active, learner: Learner, minibatch: Batch) -> tuple[Learner, dict]:
    """One gradient step on one minibatch (kept only while ``active``)."""
    grads, metrics = jax.grad(functools.partial(loss, trainer, hp), has_aux=True)(learner.params, minibatch)
    # The optimiser sees the iteration's (annealed) learning rate: new values never recompile.
    optimizer = trainer.optimizer(hp.replace(learning_rate=learning_rate))
    params, opt_state, metrics["grad_norm"] = xla_cpu.apply_update(optimizer, learner.params, grads, learner.opt_state)
    updated = Learner(params, opt_state)
    if trainer.config.target_kl is not None:  # masked update: the scan cannot break early
        updated = jax.tree.map(lambda new, old: jnp.where(active, new, old), updated, learner)
    return updated, metrics


def loss(trainer: Trainer, hp: PPOHParams, params: dict, minibatch) -> tuple[jax.Array, dict]:
    """The clipped PPO loss of the current policy on one minibatch: ``(loss, metrics)``."""
    config = trainer.config
    dist, values, minibatch = trainer.layout.replay(trainer.policy, params, minibatch)
    return ppo_loss(
        dist.log_prob(minibatch.action),
        minibatch.log_prob,
        minibatch.advantages,
        values,
        minibatch.values,
        minibatch.returns,
        dist.entropy(),
        clip_coef=hp.clip_coef,
        vf_coef=hp.vf_coef,
        ent_coef=hp.ent_coef,
        norm_adv=config.norm_adv,
        clip_vloss=config.clip_vloss,
        adv_std_ddof=config.adv_std_ddof,
    )


# -------------------------------------------------------------------- guard, metrics
def divergence_guard(state: TrainState, update: EpochCarry) -> TrainState:
    """Keep the update only if the loss and the parameters stayed finite; otherwise keep the old
    ones and freeze the agent from then on, so its NaNs never reach its state."""
    iteration = state.iteration + 1
    learner, last = update.learner, update.last_metrics
    finite = xla_cpu.all_finite((learner.params, learner.opt_state, last["policy_loss"], last["value_loss"]))
    healthy = (state.diverged_at < 0) & finite
    params, opt_state = jax.tree.map(
        lambda new, old: jnp.where(healthy, new, old), tuple(learner), (state.params, state.opt_state)
    )
    diverged_at = jnp.where((state.diverged_at < 0) & ~finite, iteration, state.diverged_at)
    return state.replace(params=params, opt_state=opt_state, iteration=iteration, diverged_at=diverged_at)


def iteration_metrics(config, state: TrainState, traj: Transition, batch: Batch, update: EpochCarry, learning_rate):
    """Record the iteration's episodes; ``(state, metrics)`` with one scalar per metric."""
    num_done = traj.episode_done.sum()
    recent_returns, recent_count = _record_episodes(
        state.recent_returns, state.recent_count, traj.done_return, traj.episode_done
    )
    metrics = {
        **update.last_metrics,
        "clipfrac": update.clipfrac_sum / (update.epochs_done * config.num_minibatches),
        "episode_return": jnp.where(num_done > 0, traj.done_return.sum() / num_done, jnp.nan),
        "episode_length": jnp.where(num_done > 0, traj.done_length.sum() / num_done, jnp.nan),
        "episodes": num_done,
        "episode_return_last100": jnp.nanmean(recent_returns),
        "explained_variance": explained_variance(batch.values, batch.returns),
        "learning_rate": learning_rate,
        "update_epochs_done": update.epochs_done,
        "env_steps": state.iteration * config.batch_size,
        "diverged": (state.diverged_at >= 0).astype(jnp.int32),
        "env_nonfinite": nonfinite_env_outputs(traj),
        # a suite's per-episode statistics (Craftax's achievements), averaged like episode_return
        **{f"episode/{name}": jnp.where(num_done > 0, value.sum() / num_done, jnp.nan)
           for name, value in traj.done_metrics.items()},
    }
    return state.replace(recent_returns=recent_returns, recent_count=recent_count), metrics


def nonfinite_env_outputs(traj: Transition) -> jax.Array:
    """Which env outputs held a NaN or inf in this rollout (``NONFINITE_*`` bits; 0: none). Read
    once from the whole rollout (a check inside every step cost up to a quarter of Breakout's
    speed); a NaN or inf survives the normalisers (an inf turns their statistics, then their
    outputs, into NaN), so the stored observations and rewards show it."""
    finite = lambda tree: functools.reduce(jnp.logical_and, [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
                                                             if jnp.issubdtype(x.dtype, jnp.inexact)], True)  # fmt: skip
    observation = jnp.where(finite((traj.obs, traj.final_obs)), 0, NONFINITE_OBSERVATION)
    return observation | jnp.where(finite(traj.reward), 0, NONFINITE_REWARD)


def _record_episodes(buffer, count, done_returns, done_mask):
    """Append this iteration's completed returns (time-major order) to a ring buffer."""
    returns, mask = done_returns.reshape(-1), done_mask.reshape(-1)
    rank = jnp.cumsum(mask) - 1  # order of each completed episode in this iteration
    total = mask.sum()
    # Only the newest RECENT_EPISODES can survive; dropping older ones keeps positions unique.
    keep = mask & (rank >= total - RECENT_EPISODES)
    position = jnp.where(keep, (count + rank) % RECENT_EPISODES, RECENT_EPISODES)
    buffer = buffer.at[position].set(returns, mode="drop")
    return buffer, count + total


# ------------------------------------------------------------------------ containers
@struct.dataclass
class TrainState:
    """The complete carry of training; checkpoint this to resume exactly."""

    params: dict  # {"actor": ..., "critic": ...}, or {"trunk": ...} with a shared trunk
    opt_state: Any  # over the parameters raveled into one vector (xla_cpu.apply_update)
    obs_stats: Any  # RunningMeanStd (per leaf for a Dict space; None for uint8 leaves), or None
    reward_stats: norm.RunningMeanStd | None
    discounted_return: jax.Array  # [num_envs], for reward scaling
    env_state: Any
    obs: Any  # [num_envs, *obs_shape] (a dict of such for a Dict space), normalised when normalisation is on
    episode_return: jax.Array  # [num_envs] raw return of the running episode
    episode_length: jax.Array  # [num_envs]
    recent_returns: jax.Array  # [100] ring buffer of completed raw episode returns
    recent_count: jax.Array  # completed episodes so far
    key: jax.Array
    iteration: jax.Array  # iterations done
    diverged_at: jax.Array  # 1-based iteration whose update went non-finite (then frozen); -1 if never
    carry: Any = None  # a recurrent policy's state per env ({"actor", "critic"} [num_envs, size]); None
    episode_start: jax.Array | None = None  # [num_envs] bool: obs begins an episode (recurrent policies)


@struct.dataclass
class TrainResult:
    metrics: dict  # name -> [num_iterations] (leading vmap axes in front)
    state: TrainState


class IterationNoise(NamedTuple):
    """Everything one iteration draws, from one ``jax.random.bits`` call (``xla_cpu.draw_bits``)."""

    next_key: jax.Array  # the state's key for the next iteration
    spare_key: jax.Array  # shuffles a batch too large for packed sorts
    action_uniform: jax.Array  # [T, N, action_noise_size] the policy samples from
    env_keys: jax.Array  # [T, N] one key per step and env
    shuffle_bits: jax.Array | None  # the epochs' shuffles (None: the batch is too large to pack)


class Transition(NamedTuple):
    """One rollout step for ``num_envs`` envs (stacked by the scan to ``[T, N, ...]``)."""

    obs: jax.Array
    action: jax.Array  # as sampled (continuous: unclipped)
    log_prob: jax.Array
    action_mask: jax.Array | None  # the actions the env allowed (None: the env has no mask)
    reward: jax.Array  # scaled when reward normalisation is on
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # s_{t+1} before auto-reset, normalised like obs
    episode_done: jax.Array  # terminated or truncated
    done_return: jax.Array  # raw return of the episode that ended here (0 otherwise)
    done_length: jax.Array
    done_metrics: dict  # {name: [N]} the env's per-episode statistics where an episode ended (0 otherwise)
    episode_start: jax.Array | None = None  # recurrent policies: obs begins an episode (the carry was reset)
    value: jax.Array | None = None  # recurrent policies: V(obs), computed while acting
    next_carry: Any = None  # recurrent policies: the carry after reading obs (V(final obs) reads on from it)


class Batch(NamedTuple):
    """What the update learns from: time-major ``[T, N, ...]`` (``[B, ...]`` once flattened)."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    advantages: jax.Array
    returns: jax.Array
    values: jax.Array  # V(s_t) at collection, for value clipping
    action_mask: jax.Array | None = None  # applied again in the update, as in the rollout


class Sequences(NamedTuple):
    """A recurrent policy's batch: whole env sequences, replayed from their first carry."""

    batch: Batch  # [T, N, ...]
    episode_start: jax.Array  # [T, N] the carry resets before reading these observations
    initial_carry: Any  # the policy's carry [N, ...] at the rollout's first step

    @property
    def values(self) -> jax.Array:
        return self.batch.values

    @property
    def returns(self) -> jax.Array:
        return self.batch.returns


class Learner(NamedTuple):
    """What the optimiser changes."""

    params: dict
    opt_state: Any


class EpochCarry(NamedTuple):
    """The update epochs' carry."""

    learner: Learner
    active: jax.Array  # False once target_kl stopped the epochs
    last_metrics: dict  # the last active minibatch's loss metrics
    clipfrac_sum: jax.Array  # over the active epochs' minibatches
    epochs_done: jax.Array


LOSS_METRICS = ("policy_loss", "value_loss", "entropy", "old_approx_kl", "approx_kl", "clipfrac", "grad_norm")


# --------------------------------------------------------------------------- layouts
class SampleLayout:
    """A feed-forward policy: it acts on each observation alone (no carry), the rollout's values
    come from one batched pass over the visited states and their successors, and each epoch
    shuffles single samples."""

    def act(self, policy, params, carry, obs, start, action_mask):
        return policy.distribution(params, obs, action_mask), None, carry

    def episode_start(self, starts: jax.Array) -> None:
        return None  # nothing to reset

    def values(self, policy, params, traj: Transition):
        both = jax.tree.map(lambda obs, final_obs: jnp.stack([obs, final_obs]), traj.obs, traj.final_obs)
        values, next_values = policy.value(params, both)
        return values, next_values

    def learning_batch(self, batch: Batch, traj: Transition, initial_carry) -> Batch:
        return batch

    def epoch_batch(self, config: PPOConfig, batch: Batch) -> Batch:
        return jax.tree.map(lambda x: x.reshape((config.batch_size,) + x.shape[2:]), batch)

    def shuffled_size(self, config: PPOConfig) -> int:
        return config.batch_size

    def minibatches(self, permutation: jax.Array, batch: Batch, num_minibatches: int) -> Batch:
        return shuffle_into_minibatches(permutation, batch, num_minibatches)

    def replay(self, policy, params, minibatch: Batch):
        dist = policy.distribution(params, minibatch.obs, minibatch.action_mask)
        return dist, policy.value(params, minibatch.obs), minibatch


class SequenceLayout:
    """A recurrent policy: it acts from its carry (reset where an episode starts) and gives V(s_t)
    while acting, V(final obs) reads on from s_t's carry, and each epoch shuffles whole env
    sequences, replayed from the rollout's first carry."""

    def act(self, policy, params, carry, obs, start, action_mask):
        return policy.step(params, carry, obs, start, action_mask)

    def episode_start(self, starts: jax.Array) -> jax.Array:
        return starts

    def values(self, policy, params, traj: Transition):
        return traj.value, policy.value_after(params, traj.next_carry, traj.final_obs)

    def learning_batch(self, batch: Batch, traj: Transition, initial_carry) -> Sequences:
        return Sequences(batch, traj.episode_start, initial_carry)

    def epoch_batch(self, config: PPOConfig, batch: Sequences) -> Sequences:
        return batch

    def shuffled_size(self, config: PPOConfig) -> int:
        return config.num_envs

    def minibatches(self, permutation: jax.Array, batch: Sequences, num_minibatches: int) -> Sequences:
        return split_sequences(permutation, batch, num_minibatches)

    def replay(self, policy, params, minibatch: Sequences):
        batch = minibatch.batch
        dist, values = policy.unroll(params, minibatch.initial_carry, batch.obs, minibatch.episode_start,
                                     batch.action_mask)  # fmt: skip
        return dist, values, batch


SAMPLES, SEQUENCES = SampleLayout(), SequenceLayout()


# --------------------------------------------------------------------------- trainer
@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """The pieces ``make_train`` is built from, for chunked runs, resume and evaluation.

    Its methods are pure and take unresolved ``PPOHParams`` (``None`` fields: the action
    space's defaults), which they resolve once on entry.
    """

    config: PPOConfig  # resolved: no None left
    env: VecEnv
    policy: TrainablePolicy
    # hparams -> optax transformation, the learning rate included (the iteration's, annealed)
    optimizer: Callable[[PPOHParams], optax.GradientTransformation] = dataclasses.field(default=None)

    def __post_init__(self):
        self.config.require_resolved("Trainer")  # every count below is derived from it
        if self.optimizer is None:
            object.__setattr__(self, "optimizer", default_optimizer)

    @property
    def spec(self) -> EnvSpec:
        return self.env.spec

    @property
    def layout(self) -> SampleLayout | SequenceLayout:
        """How this policy acts and learns (the loop's only view of whether it is recurrent)."""
        return SEQUENCES if self.policy.recurrent else SAMPLES

    def architecture(self) -> dict:
        """What the policy is, for this env (``policy.describe_architecture``), with its parameter count."""
        described = dict(self.policy.architecture)
        params = jax.eval_shape(self.policy.init, jax.random.split(jax.random.key(0), 2))
        described["parameters"] = int(sum(leaf.size for leaf in jax.tree.leaves(params)))
        return described

    def resolve(self, hparams: PPOHParams) -> PPOHParams:
        """The one place hyperparameters are resolved: ``None`` -> the action space's default."""
        return hparams.resolve(self.spec.action_kind)

    def init(self, key: jax.Array, hparams: PPOHParams) -> TrainState:
        return init_state(self, self.resolve(hparams), key)

    def step(self, state: TrainState, hparams: PPOHParams) -> tuple[TrainState, dict]:
        """One iteration; ``run`` is a scan of it (so a scan of a vmapped ``step`` equals it)."""
        return iteration(self, self.resolve(hparams), state)

    def run(self, state: TrainState, hparams: PPOHParams, num_iterations: int) -> TrainResult:
        """Run ``num_iterations`` iterations from ``state`` (chunks compose exactly)."""
        return run_iterations(self, self.resolve(hparams), state, num_iterations)

    def rollout(self, state: TrainState, hparams: PPOHParams) -> tuple[TrainState, Transition]:
        """The rollout of the next iteration alone: ``(state, Transition [T, N, ...])``."""
        noise = draw_iteration_noise(self, state.key)
        return rollout(self, self.resolve(hparams), state.replace(key=noise.next_key), noise)


def make_train(config: PPOConfig, env=None, env_params=None, *, network=None, optimizer=None):
    """Return ``train(key, hparams) -> TrainResult``, pure and ``jit``/``vmap``-able.

    ``env``/``env_params`` take a gymnax ``Environment`` instance in place of ``config.env_id``;
    ``network`` and ``optimizer`` a user's network and optimizer factories (see ``make_trainer``).
    """
    trainer = make_trainer(config, env=env, env_params=env_params, network=network, optimizer=optimizer)

    def train(key: jax.Array, hparams: PPOHParams | None = None) -> TrainResult:
        hparams = PPOHParams() if hparams is None else hparams
        hparams.validate()
        hp = trainer.resolve(hparams)
        return run_iterations(trainer, hp, init_state(trainer, hp, key), trainer.config.num_iterations)

    return train


def make_trainer(config: PPOConfig, env=None, env_params=None, *, network=None, optimizer=None) -> Trainer:
    """Validate ``config`` against the env and build the pure pieces of training (see ``Trainer``).

    ``network``: a factory ``network(action_size=...) -> flax.linen.Module`` in place of the
    built-in networks (``policy.NetworkPolicy`` says what the module returns); ``config``'s
    architecture fields then do not apply. ``optimizer``: a factory ``optimizer(hparams) ->
    optax.GradientTransformation``, the learning rate included, called with the traced
    ``PPOHParams`` whose ``learning_rate`` is the iteration's (annealed when ``anneal_lr``), so a
    grid over its fields needs one compile; default ``default_optimizer`` (CleanRL's).
    """
    if not isinstance(config, PPOConfig):
        raise ConfigError(f"config must be a jaxppo.PPOConfig, got {type(config).__name__}")
    config.validate()
    spec = make_env(config.env_id, config.env_kwargs, env, env_params)
    config = config.resolve(spec.action_kind)
    if network is None:
        policy = make_policy(config, spec)
    elif config.recurrent is not None:
        raise ConfigError(f"recurrent={config.recurrent!r} adds jaxppo's core to its own networks; a network "
                          f"factory brings its own core (a module with initial_carry): drop one of the two")  # fmt: skip
    else:
        policy = make_network_policy(network, spec)
    optimizer = default_optimizer if optimizer is None else checked_optimizer(optimizer, policy, spec)
    return Trainer(config=config, env=VecEnv(spec, config.num_envs), policy=policy, optimizer=optimizer)


def checked_optimizer(optimizer, policy, spec: EnvSpec, name: str | None = None):
    """``optimizer`` once it has built a transformation and its state for these parameters
    (``ConfigError`` naming what is wrong)."""
    name = name or getattr(optimizer, "__qualname__", repr(optimizer))
    hp = PPOHParams().resolve(spec.action_kind)
    try:
        transformation = optimizer(hp)
    except Exception as error:
        raise ConfigError(f"optimizer {name}(hparams) failed: {first_line(error)}") from None
    if not (callable(getattr(transformation, "init", None)) and callable(getattr(transformation, "update", None))):
        raise ConfigError(f"optimizer {name}(hparams) must return an optax.GradientTransformation, "
                          f"got {type(transformation).__name__}")  # fmt: skip
    try:
        params = jax.eval_shape(policy.init, jax.random.split(jax.random.key(0), 2))
        state = jax.eval_shape(transformation.init, params)
        jax.eval_shape(lambda p, s: xla_cpu.apply_update(optimizer(hp), p, p, s), params, state)
    except Exception as error:
        raise ConfigError(f"optimizer {name}'s transformation fails on the parameters: {first_line(error)}") from None
    return optimizer


def run_iterations(trainer: Trainer, hp: PPOHParams, state: TrainState, num_iterations: int) -> TrainResult:
    state, metrics = jax.lax.scan(lambda s, _: iteration(trainer, hp, s), state, None, length=num_iterations)
    return TrainResult(metrics=metrics, state=state)


def init_state(trainer: Trainer, hp: PPOHParams, key: jax.Array) -> TrainState:
    """Fresh parameters, optimiser, normalisers and episodes, from one key."""
    config, spec = trainer.config, trainer.spec
    keys = jax.random.split(key, 4)
    params = trainer.policy.init(keys[1:3])
    obs, env_state = trainer.env.reset(keys[3])
    obs_stats = reward_stats = None
    if config.normalize_observations:
        obs_stats = norm.create_observation_stats(spec.obs_leaves, obs)
        obs = norm.normalize_observation_tree(obs_stats, obs, config.obs_clip)
    if config.normalize_rewards:
        reward_stats = norm.RunningMeanStd.create(())
    return TrainState(
        params=params,
        opt_state=trainer.optimizer(hp).init(params),
        obs_stats=obs_stats,
        reward_stats=reward_stats,
        discounted_return=jnp.zeros(config.num_envs, jnp.float32),
        env_state=env_state,
        obs=obs,
        episode_return=jnp.zeros(config.num_envs, jnp.float32),
        episode_length=jnp.zeros(config.num_envs, jnp.int32),
        recent_returns=jnp.full(RECENT_EPISODES, jnp.nan, jnp.float32),
        recent_count=jnp.zeros((), jnp.int32),
        key=keys[0],
        iteration=jnp.zeros((), jnp.int32),
        diverged_at=jnp.full((), -1, jnp.int32),
        carry=trainer.policy.initial_carry(config.num_envs),
        episode_start=trainer.layout.episode_start(jnp.ones(config.num_envs, bool)),
    )


def make_optimizer(hp: PPOHParams) -> optax.GradientTransformation:
    """CleanRL's chain, per parameter array: clip by global norm, Adam (eps 1e-5), then the
    learning rate. Built from traced values: new hyperparameters never recompile."""
    return optax.chain(
        optax.clip_by_global_norm(hp.max_grad_norm),
        optax.scale_by_adam(eps=1e-5),
        optax.scale_by_learning_rate(hp.learning_rate),
    )


def default_optimizer(hp: PPOHParams) -> optax.GradientTransformation:
    """The optimiser when none is given: ``make_optimizer`` on the raveled parameters
    (``xla_cpu.raveled``: the same numbers, less to compile on XLA:CPU)."""
    return xla_cpu.raveled(make_optimizer(hp))
