"""Latency statistics: percentiles without outlier clipping (the tail is the point)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PERCENTILES = (50, 90, 99, 99.9)


def summarize_ms(samples_ms: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/min/mean/std and count of latency samples in ms.

    NaN samples are dropped; an empty input gives NaN statistics and n = 0.
    """
    x = np.asarray(list(samples_ms) if not isinstance(samples_ms, np.ndarray) else samples_ms, np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "p99.9": nan, "max": nan, "min": nan,
                "mean": nan, "std": nan, "n": 0}
    q = np.percentile(x, PERCENTILES)
    out = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}
    out.update(max=float(x.max()), min=float(x.min()), mean=float(x.mean()), std=float(x.std()), n=int(x.size))
    return out


def format_row(name: str, s: dict[str, float]) -> str:
    """One aligned text line of a summary, for terminal reports."""
    return (f"{name:<16} p50 {s['p50']:8.2f}  p90 {s['p90']:8.2f}  p99 {s['p99']:8.2f}  "
            f"max {s['max']:8.2f} ms  (n={s['n']})")
