"""Latency distribution plot: one horizontal box per measured row (matplotlib, imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgepilot.runtime.bench.report import BenchRow
from edgepilot.runtime.errors import SinkError, require

# Beyond this max/min spread a linear axis squashes the fast rows into a line.
LOG_SPREAD = 20.0


PLOT_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_plot_path(path: str | Path) -> None:
    """A --plot path matplotlib can write (by its extension); SinkError (exit 2) otherwise."""
    if Path(path).suffix.lower() not in PLOT_FORMATS:
        raise SinkError(f"--plot {path}: unknown image extension {Path(path).suffix!r}; use {', '.join(PLOT_FORMATS)}")


def plot_latency(rows: Sequence[BenchRow], path: str | Path, title: str = "latency") -> Path | None:
    """Write a PNG of every measured row's samples (whiskers to min/max: no outlier hidden).

    Returns the path, or None when no row was measured. The x axis is log scale
    when the slowest sample is over ``LOG_SPREAD`` times the fastest.
    """
    measured = [r for r in rows if r.ok and r.samples_ms]
    if not measured:
        return None
    matplotlib = require("matplotlib", "bench", "--plot")
    matplotlib.use("Agg")  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.45 * len(measured)), dpi=90)
    ax.boxplot([r.samples_ms for r in measured], vert=False, whis=(0, 100), showmeans=True)
    ax.set_yticks(range(1, len(measured) + 1), [r.key.label for r in measured])
    ax.invert_yaxis()  # top to bottom in table order
    lo = min(min(r.samples_ms) for r in measured)
    hi = max(max(r.samples_ms) for r in measured)
    if lo > 0 and hi / lo > LOG_SPREAD:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms); box p25-p75, line p50, triangle mean, whiskers min-max")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
