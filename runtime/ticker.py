"""The synchronous per-frame path: one frame per call, in the caller's thread.

For callers that own the clock, such as a driving agent in a synchronous
simulator (one frame per tick, no threads, nothing dropped). It runs the same
:class:`~edgepilot.runtime.processor.Processor` call as the threaded loop, so
the frame gets the same stamps, and records into the same
:class:`~edgepilot.runtime.telemetry.LatencyRecorder`, so :meth:`Ticker.report`
is the same :class:`~edgepilot.runtime.telemetry.LatencyReport` as ``run``'s::

    ticker = Ticker(engine.make_processor(), engine=engine.describe(), source="builtin:highway")
    for step in range(n):
        result = ticker.process(obs.image)   # capture .. postprocess stamps
        ...                                  # act on result.output, write video
        ticker.record(result)                # output stamp, latencies recorded
    report = ticker.report()
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgepilot.runtime.frame import OUTPUT, Frame, Result
from edgepilot.runtime.processor import Processor
from edgepilot.runtime.telemetry import QUEUE, LatencyRecorder, LatencyReport, build_report


class Ticker:
    """Frame -> Result in the caller's thread, recorded like the threaded loop's frames."""

    def __init__(self, processor: Processor, *, engine: dict[str, Any] | None = None,
                 source: str = "synchronous") -> None:
        self.processor = processor
        self.engine = dict(engine or {})
        self.source = source
        self.recorder = LatencyRecorder()
        self._next_id = 0
        self._t_start: float | None = None

    def process(self, image: np.ndarray, t_capture: float | None = None) -> Result:
        """Run one frame (HxWx3 uint8 BGR); ``t_capture`` (perf_counter s) defaults to now."""
        frame = Frame.captured(self._next_id, image, t_capture)
        self._next_id += 1
        if self._t_start is None:
            self._t_start = frame.timeline.stamps[0][1]
        frame.timeline.stamp(QUEUE)  # nothing waits between capture and processing here
        return Result(frame, self.processor(frame))

    def record(self, result: Result) -> None:
        """Stamp ``output`` (the caller is done with the result) and record its latencies."""
        result.frame.timeline.stamp(OUTPUT)
        self.recorder.add(result.frame)

    def report(self, stopped: str = "end", error: BaseException | None = None) -> LatencyReport:
        """The latency report over every recorded frame so far."""
        wall = time.perf_counter() - self._t_start if self._t_start is not None else 0.0
        return build_report(self.recorder, source=self.source, engine=self.engine, wall_s=wall,
                            stopped=stopped, error=error)
