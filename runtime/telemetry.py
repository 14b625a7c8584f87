"""Per-frame latency: the recorder, the report and its statistics.

Percentiles are taken without outlier clipping (the tail is the point). The
threaded loop (``pipeline.run_loop``) and a synchronous caller (one frame per
simulator tick, see ``runtime.ticker``) record frames with the same
:class:`LatencyRecorder` and summarise them into the same
:class:`LatencyReport`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgepilot.runtime.frame import CAPTURE, HANDOFF, INFER, OUTPUT, POSTPROCESS, PREPROCESS, Frame

QUEUE = "queue"  # stamped when the loop takes the frame from the source: capture -> queue is waiting time
STAGES = (QUEUE, PREPROCESS, HANDOFF, INFER, POSTPROCESS, OUTPUT)

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


class LatencyRecorder:
    """Per-frame stage durations (ms) in float64 arrays: one row per frame, no objects kept.

    Rows grow from ``capacity`` up to ``max_rows`` (200,000 rows = 12.8 MB), then the
    oldest are overwritten, so a day-long stream keeps bounded memory and its
    statistics cover the most recent ``max_rows`` frames. ``n`` counts every frame.
    """

    COLUMNS = (*STAGES, "capture_to_result", "capture_to_output")

    def __init__(self, capacity: int = 4096, max_rows: int = 200_000) -> None:
        self._data = np.full((min(capacity, max_rows), len(self.COLUMNS)), np.nan)
        self.max_rows = max_rows
        self.n = 0

    @property
    def stored(self) -> int:
        """Rows holding data: min(n, max_rows)."""
        return min(self.n, self._data.shape[0])

    def _row(self) -> np.ndarray:
        size = self._data.shape[0]
        if self.n >= size and size < self.max_rows:
            grown = np.full((min(2 * size, self.max_rows), len(self.COLUMNS)), np.nan)
            grown[:size] = self._data
            self._data = grown
        row = self._data[self.n % self._data.shape[0]]
        row.fill(np.nan)
        return row

    def add(self, frame: Frame) -> None:
        row = self._row()
        tl = frame.timeline
        t0 = prev = tl.get(CAPTURE)
        for i, stage in enumerate(STAGES):
            t = tl.get(stage)
            if t is not None and prev is not None:
                row[i] = (t - prev) * 1e3
                prev = t
        if t0 is not None:
            row[-2] = tl.latency_ms(POSTPROCESS)
            row[-1] = tl.latency_ms(OUTPUT)
        self.n += 1

    def column(self, name: str) -> np.ndarray:
        """The stored values of one column (in ring order once it has wrapped)."""
        return self._data[: self.stored, self.COLUMNS.index(name)]


@dataclass(frozen=True, slots=True)
class LatencyReport:
    """What a run measured. Latency summaries are dicts of p50/p90/p99/p99.9/max/... in ms.

    ``capture_to_result_ms`` ends at the postprocess stamp, ``capture_to_output_ms``
    after the sinks; ``fps`` is results per wall-clock second of the run; ``dropped``
    counts frames the source captured but never handed over (live or realtime).
    """

    source: str
    engine: dict[str, Any]
    frames: int
    dropped: int
    wall_s: float
    fps: float
    stages_ms: dict[str, dict[str, float]]
    capture_to_result_ms: dict[str, float]
    capture_to_output_ms: dict[str, float]
    stopped: str  # end | max_frames | interrupted | error
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False, default=_nan_to_none)

    def table(self) -> str:
        """The terminal summary: one row per stage and end to end, then FPS and drops."""
        named = [*self.stages_ms.items(), ("capture->result", self.capture_to_result_ms),
                 ("capture->output", self.capture_to_output_ms)]
        rows = [format_row(name, s) if s["n"] else f"{name:<16} (no samples)" for name, s in named]
        rows.append(f"{self.frames} frames in {self.wall_s:.2f} s: {self.fps:.1f} FPS, "
                    f"{self.dropped} dropped by the source ({self.stopped})")
        cpu = self.extra.get("cpu_ms_per_frame")
        if cpu:
            rows.append("CPU ms a frame: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
        return "\n".join(rows)


def _nan_to_none(value: Any) -> Any:
    return None


def _clean(summary: dict[str, float]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}


def build_report(recorder: LatencyRecorder, *, source: str, engine: dict[str, Any], wall_s: float,
                 stopped: str, dropped: int = 0, error: BaseException | None = None,
                 extra: dict[str, Any] | None = None) -> LatencyReport:
    """Summarise what ``recorder`` holds; ``wall_s`` is the run's wall-clock time (s) for FPS."""
    wall = max(wall_s, 1e-9)
    return LatencyReport(
        source=source, engine=engine, frames=recorder.n, dropped=dropped, wall_s=wall,
        fps=recorder.n / wall,
        stages_ms={s: _clean(summarize_ms(recorder.column(s))) for s in STAGES},
        capture_to_result_ms=_clean(summarize_ms(recorder.column("capture_to_result"))),
        capture_to_output_ms=_clean(summarize_ms(recorder.column("capture_to_output"))),
        stopped=stopped, error=str(error) if error else None, extra=dict(extra or {}))
