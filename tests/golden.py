"""Golden runs: short training runs whose every metric and final parameter is pinned.

``tests/data/golden.json`` holds what these runs produced; ``test_golden.py`` checks that the
code still produces exactly that. After an intended change of the numbers, rewrite it with
``python tests/golden.py --write`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import jax
import numpy as np

import jaxppo
from utils import FULL_OPTIMIZATION

GOLDEN_PATH = Path(__file__).parent / "data" / "golden.json"

RUNS = {
    # CleanRL discrete defaults: 3 iterations of 4 envs x 128 steps.
    "cartpole": (jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=3 * 512), {}),
    # Continuous actions with observation and reward normalisation, value clipping off.
    "pendulum": (
        jaxppo.PPOConfig(env_id="Pendulum-v1", total_timesteps=512, num_steps=256, num_minibatches=4,
                         update_epochs=2, clip_vloss=False),  # fmt: skip
        {},
    ),
    # Early stopping by target_kl, time limits as terminations, ddof 1, another network.
    "cartpole_variant": (
        jaxppo.PPOConfig(env_id="CartPole-v1", total_timesteps=2 * 256, num_envs=2, num_steps=128,
                         num_minibatches=2, update_epochs=3, target_kl=2e-5, truncation="terminate",
                         adv_std_ddof=1, hidden_sizes=(32,), activation="relu"),  # fmt: skip
        {"learning_rate": 1e-3, "ent_coef": 0.0},
    ),
}


def run(name: str) -> dict:
    config, hparams = RUNS[name]
    train = jax.jit(jaxppo.make_train(config), compiler_options=FULL_OPTIMIZATION)  # XLA's defaults, as users run
    result = train(jax.random.key(7), jaxppo.PPOHParams(**hparams))
    params = [np.asarray(leaf) for leaf in jax.tree.leaves(result.state.params)]
    digest = hashlib.sha256(b"".join(p.astype(np.float32).tobytes() for p in params)).hexdigest()
    return {
        "metrics": {k: np.asarray(v).astype(np.float64).tolist() for k, v in sorted(result.metrics.items())},
        "params_sha256": digest,
        "params_abs_sum": float(sum(np.abs(p).astype(np.float64).sum() for p in params)),
    }


# The vector extensions XLA:CPU compiles for: CPUs that report one model name (a VM's "AMD EPYC")
# may differ in them, and so in float32 rounding.
_ISA_PREFIXES = ("sse", "ssse", "avx", "fma", "f16c", "amx", "asimd", "sve")


def machine() -> dict:
    """What decides float32 rounding here: the jax build, the CPU and its vector extensions."""
    cpu = platform.processor()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    cpu = fields.get("model name", cpu)
    isa = sorted(flag for flag in fields.get("flags", fields.get("Features", "")).split() if flag.startswith(_ISA_PREFIXES))
    return {"jax": jax.__version__, "jaxlib": jax.lib.__version__, "cpu": cpu, "isa": " ".join(isa),
            "backend": jax.default_backend()}  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/golden.py --write")
    data = {"machine": machine(), "runs": {name: run(name) for name in RUNS}}
    GOLDEN_PATH.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {GOLDEN_PATH}")
