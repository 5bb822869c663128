#!/usr/bin/env python
"""Every env id of gymnax and of each suite, drawn by jaxppo's renderer (``jaxppo.frames``): the
states of two fresh resets become frames, or the env is refused in one line, or it crashes.

    python experiments/sweep_render.py                       # every suite installed
    python experiments/sweep_render.py --suites navix,pgx    # some

The ids are those ``experiments/sweep_suites.py`` tries (each suite's registry; gymnax's
``registered_envs``), in one process, one after another; an id that cannot be made (its data must
be downloaded, a game for several players) is ``not made``. Prints a line per env and a table per
suite; writes the results as JSON (``--out``). Classified as ``drawn`` (``uint8 [2, H, W, 3]``),
``refused`` (a ``ConfigError`` from ``jaxppo.frames.renderer``), ``crashed`` (anything else).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SUITES = ("gymnax", "navix", "xminigrid", "craftax", "jumanji", "pgx", "brax", "playground")


def env_ids(suite: str) -> list[str]:
    if suite == "gymnax":
        from jaxppo.envs import import_gymnax

        return list(import_gymnax().registered_envs)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sweep_suites import registered_envs  # the sweep of training runs: the same ids

    return registered_envs(suite)


def draw(env_id: str) -> tuple[str, str]:
    import jax
    import numpy as np

    from jaxppo.config import ConfigError
    from jaxppo.envs import make_env
    from jaxppo.frames import renderer

    try:
        spec = make_env(env_id)
    except Exception as error:  # a download, a game for several players: not what this sweep looks at
        return "not made", f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
    try:
        drawer = renderer(spec.env, spec.env_params)
        keys = jax.random.split(jax.random.key(0), 2)
        _, states = jax.jit(jax.vmap(spec.env.reset, in_axes=(0, None)))(keys, spec.env_params)
        frames = drawer(states)
    except ConfigError as error:
        return "refused", str(error)
    except Exception as error:  # whatever the renderer raised
        return "crashed", f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != 2 or frames.shape[-1] != 3:
        return "crashed", f"frames {frames.dtype} {frames.shape}"
    return "drawn", "x".join(map(str, frames.shape[1:3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--out", default="experiments/results/render_sweep.json")
    args = parser.parse_args()
    from jaxppo.frames import headless_mujoco

    headless_mujoco()
    results = {}
    for suite in args.suites.split(","):
        for env_id in env_ids(suite):
            start = time.perf_counter()
            status, detail = draw(env_id)
            results[env_id] = {"suite": suite, "status": status, "detail": detail}
            print(f"{env_id}: {status} ({detail[:120]}) {time.perf_counter() - start:.1f} s", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print("| suite | ids | drawn | refused | not made | crashed |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for suite in args.suites.split(","):
        rows = [r["status"] for r in results.values() if r["suite"] == suite]
        counts = [rows.count(s) for s in ("drawn", "refused", "not made", "crashed")]
        print(f"| {suite} | {len(rows)} | " + " | ".join(map(str, counts)) + " |")


if __name__ == "__main__":
    main()
