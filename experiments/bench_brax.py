#!/usr/bin/env python
"""Brax's own PPO (``brax.training.agents.ppo.train``) and jaxppo side by side on one brax env.

    python experiments/bench_brax.py                                   # brax/inverted_pendulum, positional
    python experiments/bench_brax.py --env playground/CartpoleBalance  # MuJoCo Playground, MJX (impl "jax")
    python experiments/bench_brax.py --chunks 5 --iterations 8 --second-run --out experiments/results/bench_brax

Both sides train one seed on the same env with the same counts: ``--num-envs`` envs,
``--num-steps`` steps per env per iteration (brax's ``unroll_length``, with ``batch_size *
num_minibatches = num_envs``, so both collect ``num_envs * num_steps`` steps an iteration),
``--num-minibatches`` minibatches and ``--update-epochs`` epochs (brax's
``num_updates_per_batch``), the same network (``--hidden`` for both the policy and the value MLP,
tanh), learning rate, discount, GAE lambda, clip range, gradient-norm clip, no entropy bonus,
observation normalisation; each library keeps its own policy distribution (brax: tanh-squashed
Gaussian; jaxppo: Gaussian, actions clipped), reward handling (brax: none; jaxppo: its default
return normalisation) and learning-rate schedule (brax: constant; jaxppo: annealed).

Protocol, identical on both sides, each in a fresh process: the budget is ``--chunks`` compiled
calls of ``--iterations`` iterations each (brax: ``num_evals = chunks + 1`` training epochs, timed
by brax's own ``training/walltime``; jaxppo: ``jit(trainer.run)`` called ``chunks`` times). The
steady call time is the fastest call from the third on; ``sps`` = env steps of a call /
steady call time; ``compile_s`` = all calls - ``chunks`` steady calls, the time spent compiling
(brax's training epoch is compiled on the first call and, as measured here, again on the
second). After every call the policy is
evaluated deterministically on ``--eval-episodes`` episodes of up to 1000 steps (brax's
``Evaluator``; ``jaxppo.evaluate``), outside the timing, so returns are compared at equal env
steps. ``--second-run`` trains once more in the same process with another seed
(``second_train_s``): brax's ``train`` builds and compiles its functions again on every call,
jaxppo's jitted functions are reused. brax 0.14.2 needs ``jax.device_put_replicated``, gone
from jax 0.10's namespace; the brax side puts it back from ``jax._src.api``.

Writes ``<out>.json`` (both sides, ratios) and ``<out>.md`` (a table); prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

EPISODE_LENGTH = 1000  # both suites' default time limit; brax's Evaluator and EpisodeWrapper use it


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--env", default="brax/inverted_pendulum", choices=["brax/inverted_pendulum", "playground/CartpoleBalance"]
    )
    parser.add_argument("--backend", default="positional", help="brax backend (brax/... only)")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--hidden", default="64,64")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--chunks", type=int, default=5, help="compiled calls (the first compiles)")
    parser.add_argument("--iterations", type=int, default=8, help="iterations per call")
    parser.add_argument(
        "--second-run",
        action="store_true",
        help="train again with another seed in the same process (brax compiles again)",
    )
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument(
        "--unroll-threefry", action="store_true", help="jaxppo.xla_cpu.unroll_threefry_on_cpu() on both sides"
    )
    parser.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    parser.add_argument("--side", choices=["brax", "jaxppo"], help=argparse.SUPPRESS)  # a child process
    return parser.parse_args(argv)


def hidden(args) -> tuple[int, ...]:
    return tuple(int(h) for h in args.hidden.split(","))


def env_kwargs(args) -> dict:
    return {"backend": args.backend} if args.env.startswith("brax/") else {}


def raw_env(args):
    """The unwrapped env brax's trainer gets (it adds its own EpisodeWrapper and AutoResetWrapper)."""
    suite, name = args.env.split("/")
    if suite == "brax":
        from brax import envs

        return envs.get_environment(name, **env_kwargs(args))
    from jaxppo.suites import playground

    return playground.make(name)[0].raw_env  # registry.load with impl="jax", as jaxppo's side


def chunk_summary(side: str, args, calls: list[float], second_total: float | None, returns: list[float]) -> dict:
    """Per-call times -> the steady call time (the fastest call from the third on: brax's trainer
    compiles again on its second call, and on a shared CPU other processes only add time) and
    the compile overhead (everything above ``chunks`` steady calls)."""
    steps_per_call = args.iterations * args.num_envs * args.num_steps
    steady = min(calls[2:] or calls[1:] or calls)
    return {
        "side": side,
        "env": args.env,
        "env_steps": steps_per_call * args.chunks,
        "call_s": [round(t, 3) for t in calls],
        "first_call_s": round(calls[0], 3),
        "second_call_s": round(calls[1], 3) if len(calls) > 1 else None,
        "steady_call_s": round(steady, 3),
        "compile_s": round(sum(calls) - len(calls) * steady, 3),
        "sps": round(steps_per_call / steady),
        "train_s": round(sum(calls), 3),
        "second_train_s": None if second_total is None else round(second_total, 3),
        "eval_return": [round(r, 2) for r in returns],
        "eval_steps": [steps_per_call * (k + 1) for k in range(args.chunks)],
    }


def restore_device_put_replicated():
    """brax 0.14.2's trainer calls ``jax.device_put_replicated``, which jax 0.10 removed from its
    namespace; the function itself is still in ``jax._src.api``."""
    import jax

    if "device_put_replicated" not in vars(jax):
        from jax._src import api

        jax.device_put_replicated = api.device_put_replicated
        jax.device_put_sharded = api.device_put_sharded


def run_brax(args) -> dict:
    import functools

    restore_device_put_replicated()
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen

    env = raw_env(args)
    wrap = {}
    if args.env.startswith("playground/"):  # Playground's envs reach brax's trainer through its own wrapper
        from mujoco_playground import wrapper

        wrap = {"wrap_env_fn": wrapper.wrap_for_brax_training}
    network = functools.partial(
        ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=hidden(args),
        value_hidden_layer_sizes=hidden(args), activation=linen.tanh,
    )  # fmt: skip

    def train(seed: int, with_eval: bool):
        log = []  # (training walltime so far, eval return) after each epoch
        progress = lambda step, metrics: log.append(
            (metrics.get("training/walltime"), metrics.get("eval/episode_reward"))
        )
        start = time.perf_counter()
        ppo.train(
            env, num_timesteps=args.chunks * args.iterations * args.num_envs * args.num_steps,
            num_envs=args.num_envs, episode_length=EPISODE_LENGTH, unroll_length=args.num_steps,
            batch_size=args.num_envs // args.num_minibatches, num_minibatches=args.num_minibatches,
            num_updates_per_batch=args.update_epochs, learning_rate=args.learning_rate, entropy_cost=0.0,
            discounting=0.99, gae_lambda=0.95, clipping_epsilon=0.2, max_grad_norm=0.5,
            normalize_observations=True, reward_scaling=1.0, network_factory=network, seed=seed,
            num_evals=args.chunks + 1, num_eval_envs=args.eval_episodes, deterministic_eval=True,
            run_evals=with_eval, progress_fn=progress, **wrap,
        )  # fmt: skip
        return time.perf_counter() - start, log[1:] if with_eval else log  # log[0]: the eval before training

    _, log = train(0, with_eval=True)
    walltimes = [0.0] + [float(w) for w, _ in log]  # brax's training walltime excludes its evals
    chunks = [b - a for a, b in zip(walltimes, walltimes[1:], strict=False)]
    second_total = train(1, with_eval=False)[0] if args.second_run else None
    return chunk_summary("brax", args, chunks, second_total, [float(r) for _, r in log])


def run_jaxppo(args) -> dict:
    import jax

    import jaxppo

    config = jaxppo.PPOConfig(
        env_id=args.env, env_kwargs=env_kwargs(args), num_envs=args.num_envs, num_steps=args.num_steps,
        num_minibatches=args.num_minibatches, update_epochs=args.update_epochs, hidden_sizes=hidden(args),
        activation="tanh", total_timesteps=args.chunks * args.iterations * args.num_envs * args.num_steps,
        normalize_observations=True,
    )  # fmt: skip
    hparams = jaxppo.PPOHParams(learning_rate=args.learning_rate, ent_coef=0.0, gamma=0.99, gae_lambda=0.95,
                                clip_coef=0.2, max_grad_norm=0.5)  # fmt: skip
    trainer = jaxppo.make_trainer(config)
    init = jax.jit(lambda key: trainer.init(key, hparams))
    run = jax.jit(lambda state: trainer.run(state, hparams, args.iterations).state)
    evaluate = jax.jit(
        lambda state, key: jaxppo.evaluate(trainer, state.params, state.obs_stats, key, args.eval_episodes)
    )

    def train(seed: int, with_eval: bool):
        state = jax.block_until_ready(init(jax.random.key(seed)))
        times, returns = [], []
        for k in range(args.chunks):
            start = time.perf_counter()
            state = jax.block_until_ready(run(state))
            times.append(time.perf_counter() - start)
            if with_eval:
                returns.append(float(evaluate(state, jax.random.key(1000 + k)).mean()))
        return times, returns

    chunks, returns = train(0, with_eval=True)
    start = time.perf_counter()
    if args.second_run:
        train(1, with_eval=False)
    second_total = time.perf_counter() - start if args.second_run else None
    return chunk_summary("jaxppo", args, chunks, second_total, returns)


def ratios(brax: dict, jaxppo: dict) -> dict:
    """jaxppo / brax for each measure (> 1: jaxppo larger)."""
    names = ("sps", "compile_s", "first_call_s", "second_call_s", "steady_call_s", "train_s", "second_train_s")
    out = {f"{name}_jaxppo_over_brax": round(jaxppo[name] / brax[name], 3) if brax[name] else None for name in names}
    out["final_return_jaxppo_minus_brax"] = round(jaxppo["eval_return"][-1] - brax["eval_return"][-1], 2)
    return out


def markdown(args, brax: dict, jaxppo: dict, ratio: dict) -> str:
    rows = [
        ("env steps/s (steady calls)", "sps", "{:,}"), ("compile s (all calls - steady)", "compile_s", "{:.1f}"),
        ("first call s", "first_call_s", "{:.2f}"), ("second call s", "second_call_s", "{:.2f}"),
        ("steady call s", "steady_call_s", "{:.3f}"), ("training s (all calls)", "train_s", "{:.1f}"),
    ] + ([("second training s (new seed)", "second_train_s", "{:.1f}")] if brax["second_train_s"] is not None else [])  # fmt: skip
    lines = [
        f"{args.env} ({', '.join(f'{k}={v}' for k, v in env_kwargs(args).items()) or 'defaults'}): "
        f"{brax['env_steps']:,} env steps, {args.num_envs} envs x {args.num_steps} steps, "
        f"{args.num_minibatches} minibatches, {args.update_epochs} epochs, MLP {args.hidden} tanh, "
        f"{args.chunks} calls of {args.iterations} iterations",
        "",
        "| measure | brax PPO | jaxppo | jaxppo / brax |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | {fmt.format(brax[key])} | {fmt.format(jaxppo[key])} | {ratio[f'{key}_jaxppo_over_brax']} |"
        )
    for k, steps in enumerate(brax["eval_steps"]):
        lines.append(
            f"| eval return at {steps:,} steps | {brax['eval_return'][k]:.1f} | {jaxppo['eval_return'][k]:.1f} | |"
        )
    return "\n".join(lines)


def child(args, side: str) -> dict:
    cmd = [sys.executable, __file__, *sys.argv[1:], "--side", side]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.side:
        if args.unroll_threefry:
            from jaxppo.xla_cpu import unroll_threefry_on_cpu

            unroll_threefry_on_cpu()
        print(json.dumps(run_brax(args) if args.side == "brax" else run_jaxppo(args)))
        return
    brax, jaxppo = child(args, "brax"), child(args, "jaxppo")
    ratio = ratios(brax, jaxppo)
    report = {"args": vars(args), "brax": brax, "jaxppo": jaxppo, "ratios": ratio, "load_average": os.getloadavg()}
    table = markdown(args, brax, jaxppo, ratio)
    print(json.dumps(report))
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
        Path(f"{args.out}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
