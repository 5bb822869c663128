"""Learning-curve plots. ``python -m jaxppo.plot RUN_DIR [RUN_DIR ...] [--out FILE]`` overlays runs.

A curve is the per-iteration mean raw episode return, carried forward through iterations
that finished no episode, averaged over seeds; the band is a 95 % normal-approximation
confidence interval of that mean (1.96 standard errors).
"""

from __future__ import annotations

import io
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from jaxppo.config import ConfigError


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward along the last axis (leading NaNs stay NaN)."""
    values = np.asarray(values, np.float64)
    index = np.where(np.isnan(values), 0, np.arange(values.shape[-1]))
    np.maximum.accumulate(index, axis=-1, out=index)
    filled = np.take_along_axis(values, index, axis=-1)
    return filled


def curve_band(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % band over seeds of ``returns`` ``[S, n]`` (forward-filled)."""
    filled = forward_fill(returns)
    with warnings.catch_warnings():  # all-NaN columns (no episode finished yet) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(filled, axis=0)
        count = np.sum(~np.isnan(filled), axis=0)
        sem = np.nanstd(filled, axis=0) / np.sqrt(np.maximum(count, 1))
    return mean, mean - 1.96 * sem, mean + 1.96 * sem


def render(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str) -> bytes:
    """PNG bytes: one labelled line with its band per ``(label, env_steps [n], returns [S, n])``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for label, steps, returns in curves:
        mean, low, high = curve_band(returns)
        (line,) = ax.plot(steps, mean, label=f"{label} (n={returns.shape[0]})", linewidth=1.8)
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return (raw)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    if curves:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def curves_from_csv(path: Path, prefix: str = "") -> list[tuple[str, np.ndarray, np.ndarray]]:
    from jaxppo.rundir import HPARAM_NAMES, read_csv

    rows = read_csv(path)
    if not rows:
        raise ConfigError(f"{path} has no rows; the run recorded no iteration yet")
    by_point = defaultdict(lambda: defaultdict(dict))
    labels = {}
    try:
        for row in rows:
            g = int(row["grid_point"])
            by_point[g][int(row["seed"])][int(row["iteration"])] = (int(row["env_steps"]), float(row["episode_return"]))
            labels[g] = {name: float(row[f"hp_{name}"]) for name in HPARAM_NAMES}
    except (KeyError, ValueError, TypeError) as error:
        raise ConfigError(f"{path} is not a metrics.csv this jaxppo version wrote ({type(error).__name__}: {error})") from None
    varying = [n for n in HPARAM_NAMES if len({labels[g][n] for g in labels}) > 1]
    curves = []
    for g, seeds in sorted(by_point.items()):
        iterations = sorted(next(iter(seeds.values())))
        steps = np.array([seeds[min(seeds)][i][0] for i in iterations])
        returns = np.array([[seeds[s][i][1] for i in iterations] for s in sorted(seeds)])
        label = ", ".join(f"{n}={labels[g][n]:g}" for n in varying) or "defaults"
        curves.append((f"{prefix}{label}", steps, returns))
    return curves


PROG = "python -m jaxppo.plot"


def build_parser():
    from jaxppo.commandline import Parser

    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories written by python -m jaxppo.run")
    parser.add_argument("--out", default="learning_curves.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--title", default=None)
    return parser


def main(argv=None) -> int:
    from jaxppo.commandline import run_main

    return run_main(PROG, _main, argv)


def check_out(out: Path) -> Path:
    """``out`` if a PNG can be written there; ``ConfigError`` (naming ``--out``) if not. Only a
    ``.png`` name is accepted, so a mistyped ``--out`` never replaces a run's other files."""
    import os

    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out} does not end in .png; name the PNG file to write, e.g. --out curves.png")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; name a file in it, e.g. --out {out / 'curves.png'}")
    parent = out.parent
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: directory {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: directory {parent} is not writable; choose another --out")
    return out


def _main(argv) -> int:
    from jaxppo.loading import run_directory
    from jaxppo.rundir import METRICS_FILE, atomic_write_bytes

    args = build_parser().parse_args(argv)
    out = check_out(Path(args.out))
    curves = []
    for run_dir in args.run_dirs:
        path = run_directory(run_dir) / METRICS_FILE
        if not path.is_file():
            raise ConfigError(f"{run_dir} has no {METRICS_FILE} yet; plot it once its run has written one")
        prefix = f"{Path(run_dir).name}: " if len(args.run_dirs) > 1 else ""
        curves.extend(curves_from_csv(path, prefix))
    title = args.title or ", ".join(Path(d).name for d in args.run_dirs)
    try:
        atomic_write_bytes(out, render(curves, title))
    except OSError as error:
        raise ConfigError(f"--out {out} cannot be written ({error.strerror}); choose another --out") from None
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
