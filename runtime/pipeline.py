"""The loop: capture -> preprocess -> inference -> output, each stage in its own thread.

The source's capture thread fills its queue; the preprocess thread takes a frame,
stamps ``queue`` and prepares its input (``processor.prepare``) while the
inference thread runs the previous one (``processor.complete``: infer and
decode), so host preprocessing hides behind the engine. A processor without
``prepare``/``complete`` (a device-resident one) runs whole in the inference
thread. Results go to the output thread over a bounded queue; the output thread
annotates, writes the sinks, stamps ``output`` and records the frame's latencies
into preallocated arrays (no per-frame objects are kept). The main thread only
supervises: Ctrl-C or an error in any stage sets the stop event, every thread is
joined, and ``run_loop`` returns the LatencyReport together with the error.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgepilot.runtime.draw import Annotator
from edgepilot.runtime.errors import SourceError
from edgepilot.runtime.frame import (
    CAPTURE,
    HANDOFF,
    INFER,
    OUTPUT,
    POSTPROCESS,
    PREPROCESS,
    Frame,
    Output,
    Result,
)
from edgepilot.runtime.sinks import Sink
from edgepilot.runtime.sources import Source
from edgepilot.runtime.telemetry import format_row, summarize_ms

QUEUE = "queue"  # stamped when the loop takes the frame from the source: capture -> queue is waiting time
STAGES = (QUEUE, PREPROCESS, HANDOFF, INFER, POSTPROCESS, OUTPUT)
_END = None  # end-of-results marker on the output queue


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
        return "\n".join(rows)


def _nan_to_none(value: Any) -> Any:
    return None


def _clean(summary: dict[str, float]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}


class _Loop:
    """One run's threads and shared state; ``run_loop`` is its public face."""

    def __init__(self, source: Source, processor: Callable[[Frame], Output], sinks: Sequence[Sink],
                 annotator: Annotator | None, max_frames: int | None,
                 on_result: Callable[[Result], None] | None, queue_size: int) -> None:
        self.source, self.processor, self.sinks = source, processor, list(sinks)
        self.annotate = annotator if any(s.needs_image for s in self.sinks) else None
        self.max_frames, self.on_result = max_frames, on_result
        self.results: queue.Queue[Result | None] = queue.Queue(maxsize=queue_size)
        # one slot: the processor's input buffers rotate (PIPELINE_BUFFERS) and must not be overrun
        self.prepared: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.split = hasattr(processor, "prepare") and hasattr(processor, "complete")
        self.recorder = LatencyRecorder()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.inferred = 0
        self.t_last = 0.0

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()

    def _frames(self) -> Iterator[Frame]:
        """Frames from the source, stamped ``queue``, until the end, the stop event or max_frames."""
        taken = 0
        while not self.stop.is_set():
            try:
                frame = self.source.read()
            except SourceError as exc:
                # The source died: record why, but let frames already captured drain
                # through inference to the sinks; the error is raised after the run.
                if self.error is None:
                    self.error = exc
                return
            if frame is None:
                return
            frame.timeline.stamp(QUEUE)
            yield frame
            taken += 1
            if self.max_frames is not None and taken >= self.max_frames:
                return

    def preprocess_loop(self) -> None:
        prepare = self.processor.prepare  # type: ignore[attr-defined]
        try:
            for frame in self._frames():
                self._put(self.prepared, prepare(frame))
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.fail(exc)
        finally:
            self._put(self.prepared, _END)

    def _inputs(self) -> Iterator[Any]:
        if not self.split:
            yield from self._frames()
            return
        while not self.stop.is_set():
            try:
                item = self.prepared.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def infer_loop(self) -> None:
        run = self.processor.complete if self.split else self.processor  # type: ignore[attr-defined]
        try:
            for item in self._inputs():
                output = run(item)
                self._put(self.results, Result(item.frame if self.split else item, output))
                self.inferred += 1
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.fail(exc)
        finally:
            self._put(self.results, _END)

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def output_loop(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    result = self.results.get(timeout=0.1)
                except queue.Empty:
                    continue
                if result is _END:
                    break
                image = self.annotate(result.frame.image, result.output) if self.annotate else None
                for sink in self.sinks:
                    sink.write(result, image)
                self.t_last = result.frame.timeline.stamp(OUTPUT)
                self.recorder.add(result.frame)
                if self.on_result is not None:
                    self.on_result(result)
        except BaseException as exc:
            self.fail(exc)


def run_loop(source: Source, processor: Callable[[Frame], Output], *, sinks: Sequence[Sink] = (),
             annotator: Annotator | None = None, engine_info: dict[str, Any] | None = None,
             max_frames: int | None = None, on_result: Callable[[Result], None] | None = None,
             queue_size: int = 4) -> tuple[LatencyReport, BaseException | None]:
    """Run the loop until the source ends, ``max_frames`` results, Ctrl-C or an error.

    Returns the report and the error that stopped the run (None if none); the caller
    writes the report and then raises the error. Closes the source and the sinks.
    """
    loop = _Loop(source, processor, sinks, annotator, max_frames, on_result, queue_size)
    threads = [threading.Thread(target=loop.infer_loop, name="inference", daemon=True),
               threading.Thread(target=loop.output_loop, name="output", daemon=True)]
    if loop.split:
        threads.insert(0, threading.Thread(target=loop.preprocess_loop, name="preprocess", daemon=True))
    interrupted = False
    t_start = time.perf_counter()
    try:
        for t in threads:
            t.start()
        interrupted = _supervise(loop, threads)
    finally:
        loop.stop.set()
        source.close()
        for t in threads:
            t.join()
        for sink in loop.sinks:
            sink.close()
    stopped = ("error" if loop.error else "interrupted" if interrupted
               else "max_frames" if max_frames is not None and loop.inferred >= max_frames else "end")
    report = _report(loop, source, engine_info or {}, t_start, stopped)
    return report, loop.error


def _supervise(loop: _Loop, threads: list[threading.Thread]) -> bool:
    """Wait for the stage threads; on Ctrl-C or a stage error stop the source. True if interrupted."""
    interrupted = False
    while any(t.is_alive() for t in threads):
        try:
            threads[-1].join(0.1)
            if loop.stop.is_set() or not threads[0].is_alive():
                loop.source.close()  # unblocks a read() waiting for the next frame
        except KeyboardInterrupt:
            interrupted = True
            loop.stop.set()
    return interrupted


def _report(loop: _Loop, source: Source, engine: dict[str, Any], t_start: float, stopped: str) -> LatencyReport:
    rec = loop.recorder
    wall = max((loop.t_last or time.perf_counter()) - t_start, 1e-9)
    return LatencyReport(
        source=source.description, engine=engine, frames=rec.n, dropped=source.dropped,
        wall_s=wall, fps=rec.n / wall,
        stages_ms={s: _clean(summarize_ms(rec.column(s))) for s in STAGES},
        capture_to_result_ms=_clean(summarize_ms(rec.column("capture_to_result"))),
        capture_to_output_ms=_clean(summarize_ms(rec.column("capture_to_output"))),
        stopped=stopped, error=str(loop.error) if loop.error else None,
        extra={"reopen_attempts": source.reopen_attempts, "captured": source.captured})
