#!/usr/bin/env python
"""Cost of the observation encoders on XLA:CPU, one JSON line per measurement.

``--mode conv``: one convolution layer (MinAtar-sized: 10 x 10 x 4 input, 16 channels, 3 x 3,
stride 1, VALID, relu, then a sum) forward and backward, ``jit(vmap(...))`` over seeds with
per-seed weights, as the update epochs run it, in three lowerings that compute the same numbers:

- ``flax_conv``: ``flax.linen.Conv`` (``lax.conv_general_dilated``; vmapped over weights it becomes
  a grouped convolution);
- ``im2col``: the k x k shifted slices concatenated on the channel axis, then one Dense
  (``jaxppo.networks.conv_patches``, what jaxppo uses);
- ``shifted_sum``: one small matmul per kernel offset, summed.

``--mode train``: the whole training run, ``jit(vmap(make_train(config)))`` on Breakout-MinAtar
with PureJaxRL's MinAtar layout (64 envs x 128 steps, 4 epochs x 8 minibatches), once per
variant: ``mlp`` (``encoder="mlp"``), ``cnn`` (``encoder="cnn"``, jaxppo's im2col convolution),
``cnn_flax_conv`` (the same network with ``flax.linen.Conv`` patched in for the convolution) and
``cnn_shared`` (``shared_trunk=True``), the same config otherwise; alternating fresh processes,
compile and run timed apart.

    python experiments/bench_encoders.py --mode conv --seeds 8 --batch 1024
    python experiments/bench_encoders.py --mode train --seeds 8 --timesteps 65536 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VARIANTS = ("mlp", "cnn", "cnn_flax_conv", "cnn_shared")


def _conv_lowerings(kernel: int, stride: int):
    import flax.linen as nn
    import jax

    from jaxppo.networks import conv_patches

    def flax_conv(w, b, x):
        conv = nn.Conv(w.shape[-1], (kernel, kernel), strides=(stride, stride), padding="VALID")
        return conv.apply({"params": {"kernel": w, "bias": b}}, x)

    def im2col(w, b, x):
        return conv_patches(x, kernel, stride) @ w.reshape(-1, w.shape[-1]) + b

    def shifted_sum(w, b, x):
        out = conv_patches(x[..., :0], kernel, stride)  # [..., Ho, Wo, 0]: the output's spatial shape
        size = (out.shape[-3] - 1) * stride + 1, (out.shape[-2] - 1) * stride + 1
        total = 0.0
        for i in range(kernel):
            for j in range(kernel):
                window = x[..., i : i + size[0] : stride, j : j + size[1] : stride, :]
                total = total + window @ w[i, j]
        return total + b

    def lax_patches(w, b, x):  # patches by a convolution with a constant kernel, then a Dense
        patches = jax.lax.conv_general_dilated_patches(x, (kernel, kernel), (stride, stride), "VALID",
                                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        # lax orders a patch (channel, row, column): reorder the kernel's rows to match
        return patches @ w.transpose(2, 0, 1, 3).reshape(-1, w.shape[-1]) + b

    return {"flax_conv": flax_conv, "im2col": im2col, "shifted_sum": shifted_sum, "lax_patches": lax_patches}


def measure_conv(seeds: int, batch: int, channels: int, kernel: int, stride: int, repeats: int) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    in_channels, size = 4, 10
    keys = jax.random.split(jax.random.key(0), 3)
    w = jax.random.normal(keys[0], (seeds, kernel, kernel, in_channels, channels)) * 0.1
    b = jnp.zeros((seeds, channels))
    x = (jax.random.uniform(keys[1], (seeds, batch, size, size, in_channels)) < 0.1).astype(jnp.float32)
    rows, outputs = [], {}
    for name, layer in _conv_lowerings(kernel, stride).items():
        loss = lambda w, b, x, layer=layer: jax.nn.relu(layer(w, b, x)).sum()
        fn = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(0, 1))))
        start = time.perf_counter()
        compiled = fn.lower(w, b, x).compile()
        compile_s = time.perf_counter() - start
        outputs[name] = jax.block_until_ready(compiled(w, b, x))
        times, cpu_times = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled(w, b, x))
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        run_s, cpu_s = statistics.median(times), statistics.median(cpu_times)
        rows.append({"mode": "conv", "lowering": name, "seeds": seeds, "batch": batch, "compile_s": round(compile_s, 2),
                     "ms_per_call": round(1e3 * run_s, 2), "cpu_ms_per_call": round(1e3 * cpu_s, 2),
                     "samples_per_s": round(seeds * batch / run_s)})  # fmt: skip
    reference = outputs["flax_conv"]
    for row in rows:
        got = outputs[row["lowering"]]
        row["max_abs_diff_vs_flax_conv"] = float(
            max(np.abs(np.asarray(a) - np.asarray(r)).max() / max(1.0, np.abs(np.asarray(r)).max())
                for a, r in zip(jax.tree.leaves(got), jax.tree.leaves(reference), strict=True))
        )  # fmt: skip
    return rows


def _use_flax_conv() -> None:
    """Route jaxppo's convolutions through ``flax.linen.Conv`` (same init, kernel ``[k, k, C, out]``)."""
    import flax.linen as nn

    from jaxppo import networks

    def conv_layer(x, channels, kernel, stride, kernel_init, name):
        init = lambda key, shape, dtype=None: kernel_init(key, shape).reshape(shape)
        conv = nn.Conv(channels, (kernel, kernel), strides=(stride, stride), padding="VALID", kernel_init=init,
                       bias_init=nn.initializers.zeros, name=name)  # fmt: skip
        return conv(x)

    networks.conv_layer = conv_layer


def measure_train(variant: str, seeds: int, timesteps: int, num_envs: int) -> dict:
    import jax
    import numpy as np

    import jaxppo

    if variant == "cnn_flax_conv":
        _use_flax_conv()
    encoder = "mlp" if variant == "mlp" else "cnn"
    config = jaxppo.PPOConfig(env_id="Breakout-MinAtar", encoder=encoder, shared_trunk=variant == "cnn_shared",
                              total_timesteps=timesteps, num_envs=num_envs, num_steps=128, num_minibatches=8)  # fmt: skip
    keys = jax.random.split(jax.random.key(0), seeds)
    hparams = jaxppo.PPOHParams()
    fn = jax.jit(jax.vmap(jaxppo.make_train(config), in_axes=(0, None)))
    start = time.perf_counter()
    compiled = fn.lower(keys, hparams).compile()
    compile_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    result = jax.block_until_ready(compiled(keys, hparams))
    run_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    steps = seeds * jaxppo.make_trainer(config).config.env_steps
    final = np.asarray(result.metrics["episode_return_last100"])[:, -1]
    return {"mode": "train", "variant": variant, "seeds": seeds, "env_steps_per_seed": steps // seeds,
            "compile_s": round(compile_s, 2), "run_s": round(run_s, 2), "run_cpu_s": round(cpu_s, 2),
            "env_steps_per_s": round(steps / run_s), "env_steps_per_cpu_s": round(steps / cpu_s),
            "final_return_mean": round(float(np.nanmean(final)), 2)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["conv", "train"], default="conv")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024, help="conv: samples per seed (a minibatch)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timesteps", type=int, default=65_536, help="train: env steps per seed")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--rounds", type=int, default=1, help="train: alternating (mlp, cnn) pairs")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="train: what to time")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure_train(args.child, args.seeds, args.timesteps, args.num_envs)))
        return
    if args.mode == "conv":
        for row in measure_conv(args.seeds, args.batch, args.channels, args.kernel, args.stride, args.repeats):
            print(json.dumps(row), flush=True)
        return
    for _ in range(args.rounds):  # fresh processes, alternating: the machine's load drifts
        for variant in args.variants:
            command = [sys.executable, __file__, "--child", variant, "--seeds", str(args.seeds),
                       "--timesteps", str(args.timesteps), "--num-envs", str(args.num_envs)]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
