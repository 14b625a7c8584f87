"""Benchmark records: one row per (backend, precision, shape, device), and the JSON report.

Report JSON (format ``edgepilot-bench``, version 1)::

    {"format": "edgepilot-bench", "version": 1, "date": ISO-8601 UTC, "command": [...argv],
     "bundle": {"name", "task", "sha256"}, "settings": {"iters", "warmup", "repeats", "rate_hz", "deadline_ms"},
     "system": {see runtime.bench.system}, "rows": [row, ...]}

A row::

    {"backend", "precision", "shape": "256x512" | "native", "device", "device_kind",
     "status": "ok" | "skipped", "reason": why skipped ("" when ok), "engine": engine.describe(),
     "latency_ms": {"p50", "p90", "p99", "p99.9", "max", "min", "mean", "std", "n"},
     "fps": 1000 / mean latency, "deadline_miss_share": share of samples over --deadline-ms (null without one),
     "repeat_p50s_ms": [median latency of each repeat],
     "clean_repeat_p50s_ms": [median of each repeat over calls not preempted by another process],
     "preempted_share": share of calls that lost the CPU to another process}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgepilot.runtime.bench.measure import Timing
from edgepilot.runtime.errors import GateError
from edgepilot.runtime.outputs import write_text_atomic
from edgepilot.runtime.telemetry import summarize_ms

FORMAT = "edgepilot-bench"
VERSION = 1


@dataclass(frozen=True, slots=True)
class RowKey:
    """What a row measures; the gate matches baseline rows on all four fields."""

    backend: str
    precision: str
    shape: str
    device_kind: str

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision}/{self.shape}/{self.device_kind}"


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One measured (or skipped) row; ``samples_ms`` stay in memory for plots, not in JSON."""

    key: RowKey
    device: str
    status: str
    reason: str = ""
    engine: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    fps: float = math.nan
    deadline_miss_share: float | None = None
    repeat_p50s_ms: tuple[float, ...] = ()
    clean_repeat_p50s_ms: tuple[float, ...] = ()
    preempted_share: float = 0.0
    samples_ms: tuple[float, ...] = field(default=(), compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def measured_row(key: RowKey, device: str, timing: Timing, engine: dict[str, Any],
                 deadline_ms: float | None = None) -> BenchRow:
    """Summarise a timing: percentiles (no clipping), FPS = 1000 / mean_ms, deadline-miss share."""
    samples = timing.samples_ms
    stats = summarize_ms(samples)
    miss = None if deadline_ms is None else float(np.mean(samples > deadline_ms))
    return BenchRow(key, device, "ok", "", engine, stats, 1e3 / stats["mean"], miss,
                    timing.repeat_p50s_ms, timing.clean_repeat_p50s_ms, timing.preempted_share,
                    tuple(float(v) for v in samples))


def skipped_row(key: RowKey, device: str, reason: str) -> BenchRow:
    """A row that could not be built (unsupported precision, missing backend or file)."""
    return BenchRow(key, device, "skipped", reason)


def row_to_json(row: BenchRow) -> dict[str, Any]:
    return {"backend": row.key.backend, "precision": row.key.precision, "shape": row.key.shape,
            "device": row.device, "device_kind": row.key.device_kind, "status": row.status,
            "reason": row.reason, "engine": row.engine, "latency_ms": row.latency_ms,
            "fps": row.fps, "deadline_miss_share": row.deadline_miss_share,
            "repeat_p50s_ms": list(row.repeat_p50s_ms), "clean_repeat_p50s_ms": list(row.clean_repeat_p50s_ms),
            "preempted_share": row.preempted_share}


def row_from_json(d: dict[str, Any]) -> BenchRow:
    """Parse a row written by ``row_to_json``; KeyError/TypeError on a malformed row."""
    key = RowKey(str(d["backend"]), str(d["precision"]), str(d["shape"]), str(d["device_kind"]))
    return BenchRow(key, str(d.get("device", key.device_kind)), str(d["status"]), str(d.get("reason", "")),
                    dict(d.get("engine", {})), dict(d.get("latency_ms", {})), float(d.get("fps", math.nan)),
                    d.get("deadline_miss_share"), tuple(float(v) for v in d.get("repeat_p50s_ms", ())),
                    tuple(float(v) for v in d.get("clean_repeat_p50s_ms", ())), float(d.get("preempted_share", 0.0)))


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write a report as indented JSON, atomically (creating parent folders); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(report, indent=2, allow_nan=True) + "\n")


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report written by ``write_report``; GateError (exit 2) if missing, not JSON or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise GateError(f"baseline {path} does not exist: record one with --update-baseline") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateError(f"baseline {path} is not a JSON benchmark report ({str(exc).splitlines()[0]}); "
                        "re-record it with --update-baseline") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        raise GateError(f"baseline {path} is not an {FORMAT} report (no 'format'/'rows'); "
                        "re-record it with --update-baseline")
    try:
        data["rows"] = [row_from_json(r) for r in data["rows"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GateError(f"baseline {path} has a malformed row ({exc!r}); re-record it with --update-baseline") from exc
    return data


def format_table(rows: list[BenchRow]) -> str:
    """A fixed-width text table of rows (latencies in ms); skipped rows show their reason."""
    head = (f"{'row':<28} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8} "
            f"{'mean':>8} {'std':>7} {'FPS':>10} {'miss':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if not r.ok:
            lines.append(f"{r.key.label:<28} skipped: {r.reason}")
            continue
        s = r.latency_ms
        miss = "-" if r.deadline_miss_share is None else f"{100 * r.deadline_miss_share:5.1f}%"
        lines.append(f"{r.key.label:<28} {s['p50']:8.3f} {s['p90']:8.3f} {s['p99']:8.3f} {s['p99.9']:8.3f} "
                     f"{s['max']:8.3f} {s['mean']:8.3f} {s['std']:7.3f} {r.fps:10.1f} {miss:>6}")
    return "\n".join(lines)
