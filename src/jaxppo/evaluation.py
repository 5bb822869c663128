"""Bounded, vectorised evaluation of a trained policy (the CLI is ``jaxppo.evaluate``)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxppo import normalize as norm
from jaxppo.envs import VecEnv, prepare_observations
from jaxppo.train import Trainer

DEFAULT_MAX_STEPS = 1000  # used when the env has no max_steps_in_episode


def episode_step_limit(trainer: Trainer) -> int:
    """The env's time limit, which bounds every evaluation episode."""
    return int(getattr(trainer.spec.env_params, "max_steps_in_episode", DEFAULT_MAX_STEPS))


def make_act(trainer: Trainer, deterministic: bool = True):
    """``act(params, obs_stats, obs, key, action_mask=None) -> action`` for one observation or a
    batch, as the env takes it (continuous actions clipped to the bounds); ``action_mask``
    (``[action_size]`` per observation) restricts the choice to the allowed actions.

    A recurrent policy's ``act(params, obs_stats, obs, key, action_mask=None, carry=None) ->
    (action, carry)`` reads on from ``carry`` (``None``: a fresh episode's, ``initial_carry``) and
    returns the carry for the next step; pass ``None`` again where an episode starts.
    """
    spec = trainer.spec

    def act(params, obs_stats, obs, key, action_mask=None, carry=None):
        obs = prepare_observations(spec, obs)  # float32; uint8 image leaves scaled by 1/255
        first, first_leaf = jax.tree.leaves(obs)[0], jax.tree.leaves(spec.obs_leaves)[0]
        single = first.ndim == len(first_leaf.shape)
        batch = jax.tree.map(lambda x: x[None] if single else x, obs)
        if action_mask is not None:
            action_mask = jnp.asarray(action_mask, bool).reshape((-1, spec.action_size))
        size = jax.tree.leaves(batch)[0].shape[0]
        # a fresh episode's carry (None for a feed-forward policy), or the one given, batched like obs
        carry = trainer.policy.initial_carry(size) if carry is None else jax.tree.map(
            lambda c: c[None] if single else c, carry)  # fmt: skip
        chosen, carry = choose_action(trainer, deterministic, params, obs_stats, batch, key, action_mask, carry)
        action, carry = jax.tree.map(lambda x: x[0] if single else x, (trainer.env.env_action(chosen), carry))
        return action if carry is None else (action, carry)

    return act


def choose_action(trainer: Trainer, deterministic: bool, params, obs_stats, obs, key, action_mask=None, carry=None):
    """The policy's action for an observation batch, its mode or a sample (normalised first
    with the frozen statistics when the run normalised observations), among the allowed actions:
    ``(action, carry)``, where a recurrent policy's ``carry`` [N, ...] is read on (no reset) and
    a feed-forward policy's stays ``None``."""
    config = trainer.config
    if config.normalize_observations:
        obs = norm.normalize_observation_tree(obs_stats, obs, config.obs_clip)
    no_start = jnp.zeros(jax.tree.leaves(obs)[0].shape[:1], bool)  # the caller resets a carry itself
    dist, _, carry = trainer.layout.act(trainer.policy, params, carry, obs, no_start, action_mask)
    return (dist.mode() if deterministic else dist.sample(key)), carry


def agent_keys(key, batch_shape: tuple[int, ...]):
    """One evaluation key per agent of a ``batch_shape`` (e.g. ``[G, S]``) batch."""
    return jax.random.split(key, math.prod(batch_shape)).reshape(batch_shape)


def evaluate(
    trainer: Trainer, params, obs_stats, key, num_episodes: int, deterministic: bool = True, batch_dims: int = 0
):
    """Raw returns ``[..., num_episodes]`` of the policy, one env per episode, to the time limit.

    ``params``/``obs_stats`` may carry ``batch_dims`` leading axes (e.g. 2 for the ``[G, S]``
    states of a grid run): every agent is evaluated in the same call, each with its own key,
    ``agent_keys(key, batch_shape)``, or ``key`` already holds one key per agent.
    Pure and ``jit``-able. Observation statistics are frozen (as trained).
    """
    if batch_dims:
        batch_shape = jax.tree.leaves(params)[0].shape[:batch_dims]
        keys = key if key.shape == batch_shape else agent_keys(key, batch_shape)
        single = lambda p, s, k: evaluate(trainer, p, s, k, num_episodes, deterministic)
        for _ in range(batch_dims):
            single = jax.vmap(single)
        return single(params, obs_stats, keys)
    init, body = episode_loop(trainer, params, obs_stats, key, num_episodes, deterministic)
    # Until every episode ended, at most the time limit: a long limit costs only what is played.
    limit = episode_step_limit(trainer)
    go_on = lambda carry: jnp.logical_and(carry.running.any(), carry.t < limit)
    return jax.lax.while_loop(go_on, body, init).returns


class EpisodeCarry(NamedTuple):
    """What ``episode_loop``'s body carries from one step of the ``num_episodes`` envs to the next."""

    obs: Any
    env_state: Any
    policy_carry: Any
    key: jax.Array
    returns: jax.Array  # float32 [N]: each episode's return so far
    running: jax.Array  # bool [N]: the episode has not ended (one episode per env)
    t: jax.Array  # int32: steps taken


def episode_loop(trainer: Trainer, params, obs_stats, key, num_episodes: int, deterministic: bool = True):
    """``(init, body)``: the first ``EpisodeCarry`` of ``num_episodes`` evaluation episodes (one
    env each) and the step ``body(carry) -> carry``. ``evaluate`` loops it to the time limit;
    ``jaxppo.video`` runs the same steps to record the env states, so both play the same episodes."""
    env = VecEnv(trainer.spec, num_episodes)
    key, reset_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key)

    def body(carry: EpisodeCarry) -> EpisodeCarry:
        obs, env_state, policy_carry, key, returns, running, t = carry
        key, act_key, step_key = jax.random.split(key, 3)
        mask = env.action_mask(env_state)
        action, policy_carry = choose_action(trainer, deterministic, params, obs_stats, obs, act_key, mask, policy_carry)
        step = env.step(jax.random.split(step_key, num_episodes), env_state, action)
        returns = returns + jnp.where(running, step.reward, 0.0)
        running = running & ~(step.terminated | step.truncated)  # one episode per env: later ones are not counted
        return EpisodeCarry(step.obs, step.state, policy_carry, key, returns, running, t + 1)

    policy_carry = trainer.policy.initial_carry(num_episodes)
    init = EpisodeCarry(obs, env_state, policy_carry, key, jnp.zeros(num_episodes), jnp.ones(num_episodes, bool),
                        jnp.zeros((), jnp.int32))  # fmt: skip
    return init, body
