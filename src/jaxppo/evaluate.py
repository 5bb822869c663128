"""Bounded, vectorised evaluation of a trained policy, and loading policies from run dirs.

``python -m jaxppo.evaluate RUN_DIR`` prints evaluation returns per grid point and seed.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxppo import normalize as norm
from jaxppo.config import ConfigError
from jaxppo.train import Trainer

DEFAULT_MAX_STEPS = 1000  # used when the env has no max_steps_in_episode


def episode_step_limit(trainer: Trainer) -> int:
    """The env's time limit, which bounds every evaluation episode."""
    return int(getattr(trainer.spec.env_params, "max_steps_in_episode", DEFAULT_MAX_STEPS))


def make_act(trainer: Trainer, deterministic: bool = True):
    """``act(params, obs_stats, obs, key) -> action`` for one observation or a batch."""
    spec, config = trainer.spec, trainer.config

    def act(params, obs_stats, obs, key):
        obs = jnp.asarray(obs, jnp.float32)
        single = obs.ndim == len(spec.obs_shape)
        flat = obs.reshape((1 if single else obs.shape[0], spec.obs_size))
        if config.normalize_observations:
            flat = norm.normalize_observations(obs_stats, flat, config.obs_clip)
        dist = trainer.actor.apply(params["actor"], flat)
        action = dist.mode() if deterministic else dist.sample(key)
        if spec.action_kind == "continuous":
            action = jnp.clip(action, spec.action_low, spec.action_high).reshape((-1,) + spec.action_shape)
        return action[0] if single else action

    return act


def evaluate(trainer: Trainer, params, obs_stats, key, num_episodes: int, deterministic: bool = True):
    """Raw returns ``[num_episodes]`` of the policy, one env per episode, run to the time limit.

    Pure and ``jit``/``vmap``-able: vmap over ``params``/``obs_stats``/``key`` to evaluate all
    seeds (and grid points) at once. Observation statistics are frozen (as trained).
    """
    env, env_params = trainer.spec.env, trainer.spec.env_params
    act = make_act(trainer, deterministic)
    key, reset_key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, num_episodes), env_params)

    def body(carry, _):
        obs, env_state, key, returns, running = carry
        key, act_key, step_key = jax.random.split(key, 3)
        action = act(params, obs_stats, obs, act_key)
        obs, env_state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, num_episodes), env_state, action, env_params
        )
        returns = returns + jnp.where(running, reward, 0.0)
        running = running & ~(terminated | truncated)
        return (obs, env_state, key, returns, running), None

    init = (obs, env_state, key, jnp.zeros(num_episodes), jnp.ones(num_episodes, bool))
    (_, _, _, returns, _), _ = jax.lax.scan(body, init, None, length=episode_step_limit(trainer))
    return returns


def main(argv=None) -> int:
    from jaxppo import rundir

    parser = argparse.ArgumentParser(prog="python -m jaxppo.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise ConfigError(f"--episodes must be positive, got {args.episodes}")
        run = rundir.load_run(args.run_dir)
        evaluate_all = jax.jit(
            jax.vmap(jax.vmap(lambda p, s, k: evaluate(run.trainer, p, s, k, args.episodes, not args.stochastic)))
        )
        grid_size, seeds = run.num_grid_points, run.num_seeds
        keys = jax.random.split(jax.random.key(args.seed), grid_size * seeds).reshape(grid_size, seeds)
        returns = np.asarray(evaluate_all(run.states.params, run.states.obs_stats, keys))
    except ConfigError as error:
        print(f"jaxppo.evaluate: error: {error}", file=sys.stderr)
        return 2
    mode = "stochastic" if args.stochastic else "deterministic"
    print(f"{run.run_dir}: {args.episodes} {mode} episodes per seed, iteration {run.iteration}")
    for g, point in enumerate(run.grid_points):
        label = ", ".join(f"{k}={v:g}" for k, v in point.items()) or "defaults"
        print(f"grid point {g} ({label}): mean {returns[g].mean():.2f}")
        for s in range(seeds):
            print(f"  seed {s}: {returns[g, s].mean():.2f} ± {returns[g, s].std():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
