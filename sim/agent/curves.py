"""The policy's learning curve: PPO's mean episode reward (SB3's ``progress.csv``) and the
validation driving score (``history.json``) against env steps, one PNG (matplotlib, Agg)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def _read_progress(path: Path) -> tuple[list[float], list[float]]:
    steps, rewards = [], []
    if path.is_file():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    s, r = float(row.get("time/total_timesteps") or "nan"), float(row.get("rollout/ep_rew_mean") or "nan")
                except ValueError:
                    continue
                if math.isfinite(s) and math.isfinite(r):
                    steps.append(s)
                    rewards.append(r)
    return steps, rewards


def plot_policy_curves(out: str | Path) -> Path | None:
    """``OUT/curves.png`` from ``OUT/progress.csv`` and ``OUT/history.json``; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    out = Path(out)
    steps, rewards = [], []
    for part in sorted(out.glob("progress*.csv"), key=lambda p: p.stat().st_mtime):  # resumed runs: in order
        s, r = _read_progress(part)
        steps += s
        rewards += r
    history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
    val = [h for h in history if h.get("phase") == "ppo"]
    fig = Figure(figsize=(9, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    reward_ax, score_ax = fig.subplots(1, 2)
    reward_ax.plot(steps, rewards)
    reward_ax.set(xlabel="PPO env steps", ylabel="mean episode reward", title="training episodes (PPO)")
    xs = [h["timesteps"] for h in val]
    score_ax.plot(xs, [h["driving_score"] for h in val], marker="o", ms=3, color="black", label="mean")
    for name in (val[0]["per_scenario"] if val else {}):
        score_ax.plot(xs, [h["per_scenario"].get(name, float("nan")) for h in val], alpha=0.6, label=name)
    score_ax.set(xlabel="PPO env steps (0: after the warm start)", ylabel="driving score",
                 title="validation seeds", ylim=(0, 1.05))
    score_ax.legend(fontsize=7, loc="lower right")
    for ax in (reward_ax, score_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path)
    return path
