"""Aggregate statistics across seeds: IQM and bootstrap confidence intervals (rliable style)."""

from __future__ import annotations

import numpy as np


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50 % (trimming 25 % on each side)."""
    x = np.sort(np.asarray(values, np.float64))
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan")
    n = x.size
    low, high = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return float(x[low:high].mean()) if high > low else float(x.mean())


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (fixed seed: the same data gives the same interval)."""
    x = np.asarray(values, np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def summarize(values) -> dict:
    x = np.asarray(values, np.float64)
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "min": nan, "max": nan, "iqm": nan, "ci95": [nan, nan], "n": 0}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "iqm": iqm(finite),
        "ci95": list(bootstrap_ci(finite)),
        "n": int(finite.size),
    }
