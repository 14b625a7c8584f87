"""A PNG of the training curves: loss and the validation metric per epoch (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], path: str | Path, metric: str) -> Path | None:
    """Draw loss and ``metric`` against epoch into ``path``; None (nothing drawn) without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5), dpi=100)
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no global backend change
    loss_ax, metric_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["loss"] for h in history], marker="o", ms=3)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    loss_ax.set_yscale("log")
    metric_ax.plot(epochs, [h.get(metric, float("nan")) for h in history], marker="o", ms=3, color="tab:green")
    metric_ax.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}", ylim=(0, 1))
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
