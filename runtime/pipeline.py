"""The loop: capture -> preprocess -> inference -> output, each stage in its own thread.

The source's capture thread fills its queue; the preprocess thread takes a frame,
stamps ``queue`` and prepares its input (``processor.prepare``) while the
inference thread runs the previous one (``processor.complete``: infer and
decode), so preprocessing hides behind the engine (on the host, or on the
device for a device-resident processor: both implement ``Processor``). Results go to the output thread over a bounded queue; the output thread
annotates, writes the sinks, stamps ``output`` and records the frame's latencies
into preallocated arrays (no per-frame objects are kept). The main thread only
supervises: Ctrl-C or an error in any stage sets the stop event, every thread is
joined, and ``run_loop`` returns the LatencyReport together with the error. The
report's ``extra["cpu_ms_per_frame"]`` says where the CPU went: each stage
thread's CPU time and the whole process's, per frame.
Recorder and report live in ``runtime.telemetry``; ``runtime.ticker`` is the
synchronous counterpart for callers that step one frame at a time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from edgepilot.runtime.draw import Annotator
from edgepilot.runtime.errors import SourceError
from edgepilot.runtime.frame import OUTPUT, Frame, Result
from edgepilot.runtime.processor import Prepared, Processor
from edgepilot.runtime.sinks import Sink
from edgepilot.runtime.sources import Source
from edgepilot.runtime.telemetry import QUEUE, LatencyRecorder, LatencyReport, build_report

_END = None  # end-of-stream marker on the stage queues
CPU_NOTE = ("CPU time per output frame: each loop thread's own (capture: reading and decoding the source; "
            "preprocess; inference: waiting for the engine's run and decoding its outputs, and the run itself "
            "where the engine runs it in the calling thread; output: annotation and sinks) and the whole process's "
            "(every thread: the engine's own threads too)")


class _Loop:
    """One run's threads and shared state; ``run_loop`` is its public face."""

    def __init__(self, source: Source, processor: Processor, sinks: Sequence[Sink],
                 annotator: Annotator | None, max_frames: int | None,
                 on_result: Callable[[Result], None] | None, queue_size: int) -> None:
        self.source, self.processor, self.sinks = source, processor, list(sinks)
        self.annotate = annotator if any(s.needs_image for s in self.sinks) else None
        self.max_frames, self.on_result = max_frames, on_result
        self.results: queue.Queue[Result | None] = queue.Queue(maxsize=queue_size)
        # one slot: the processor's input buffers rotate (PIPELINE_BUFFERS) and must not be overrun
        self.prepared: queue.Queue[Prepared | None] = queue.Queue(maxsize=1)
        self.recorder = LatencyRecorder()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.inferred = 0
        self.t_last = 0.0
        self.cpu_s: dict[str, float] = {}  # each stage thread's CPU time, recorded as it ends

    def _cpu_done(self, stage: str) -> None:
        self.cpu_s[stage] = time.thread_time()  # the thread's own CPU since it started (one run)

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
        prepare = self.processor.prepare
        try:
            for frame in self._frames():
                self._put(self.prepared, prepare(frame))
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.fail(exc)
        finally:
            self._put(self.prepared, _END)
            self._cpu_done("preprocess")

    def _inputs(self) -> Iterator[Prepared]:
        while not self.stop.is_set():
            try:
                item = self.prepared.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def infer_loop(self) -> None:
        complete = self.processor.complete
        try:
            for item in self._inputs():
                output = complete(item)
                self._put(self.results, Result(item.frame, output))
                self.inferred += 1
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.fail(exc)
        finally:
            self._put(self.results, _END)
            self._cpu_done("inference")

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
        finally:
            self._cpu_done("output")


def run_loop(source: Source, processor: Processor, *, sinks: Sequence[Sink] = (),
             annotator: Annotator | None = None, engine_info: dict[str, Any] | None = None,
             max_frames: int | None = None, on_result: Callable[[Result], None] | None = None,
             queue_size: int = 4) -> tuple[LatencyReport, BaseException | None]:
    """Run the loop until the source ends, ``max_frames`` results, Ctrl-C or an error.

    Returns the report and the error that stopped the run (None if none); the caller
    writes the report and then raises the error. Closes the source and the sinks.
    """
    loop = _Loop(source, processor, sinks, annotator, max_frames, on_result, queue_size)
    threads = [threading.Thread(target=loop.preprocess_loop, name="preprocess", daemon=True),
               threading.Thread(target=loop.infer_loop, name="inference", daemon=True),
               threading.Thread(target=loop.output_loop, name="output", daemon=True)]
    interrupted = False
    t_start, cpu_start = time.perf_counter(), time.process_time()
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
    loop.cpu_s["process"] = time.process_time() - cpu_start
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
    wall = (loop.t_last or time.perf_counter()) - t_start
    frames = max(1, loop.recorder.n)
    cpu = {"capture": source.cpu_s, **loop.cpu_s}
    return build_report(loop.recorder, source=source.description, engine=engine, wall_s=wall, stopped=stopped,
                        dropped=source.dropped, error=loop.error,
                        extra={"reopen_attempts": source.reopen_attempts, "captured": source.captured,
                               "cpu_ms_per_frame": {k: v * 1e3 / frames for k, v in cpu.items()},
                               "cpu_note": CPU_NOTE})
