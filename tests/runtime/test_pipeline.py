"""The threaded loop: order, timestamps, stage errors, max_frames, memory, no threads left."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.draw import Annotator
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import EngineError, SourceError
from edgepilot.runtime.frame import Frame, Result
from edgepilot.runtime.pipeline import run_loop
from edgepilot.runtime.processor import HostProcessor
from edgepilot.runtime.sinks import JsonlSink, VideoSink
from edgepilot.runtime.sources import Backoff, Source, open_source
from edgepilot.runtime.telemetry import STAGES, LatencyRecorder
from tests.runtime.test_sources import FakeCamera


def processor_for(bundle: Path, **opts: object):  # type: ignore[no-untyped-def]
    b = load_bundle(bundle)
    engine = load_engine(b, "null", **opts)
    return b, engine, engine.make_processor()


def test_file_runs_in_full_with_timestamps(bundles: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    b, engine, proc = processor_for(bundles["seg"], delay_ms=1)
    seen: list[Result] = []
    before = set(threading.enumerate())
    sinks = [VideoSink(tmp_path / "o.avi"), JsonlSink(tmp_path / "r.jsonl", b.classes)]
    report, error = run_loop(open_source(str(clip)), proc, sinks=sinks, annotator=Annotator(b.classes, b.palette),
                             engine_info=engine.describe(), on_result=seen.append)
    assert error is None and report.stopped == "end"
    assert [r.frame.id for r in seen] == list(range(30)) and report.frames == 30
    stamps = [name for name, _ in seen[0].frame.timeline.stamps]
    assert stamps == ["capture", *STAGES]
    for r in seen:
        t = [s for _, s in r.frame.timeline.stamps]
        assert t == sorted(t)  # every stage stamps after the previous one
    assert report.stages_ms["infer"]["p50"] >= 1.0  # the null engine's busy wait
    assert report.capture_to_output_ms["p50"] >= report.capture_to_result_ms["p50"] > 0
    assert report.dropped == 0 and report.engine["backend"] == "null"
    assert report.fps == pytest.approx(30 / report.wall_s)
    assert sinks[1]._file is None and sinks[0]._writer is None  # closed by the loop
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 30
    assert json.loads(report.to_json())["frames"] == 30
    assert set(threading.enumerate()) == before


def test_max_frames_stops_an_endless_live_source(bundles: dict[str, Path]) -> None:
    _, _, proc = processor_for(bundles["seg"])
    before = set(threading.enumerate())
    report, error = run_loop(open_source("synthetic:160x120@200"), proc, max_frames=15)
    assert error is None and report.stopped == "max_frames" and report.frames == 15
    assert set(threading.enumerate()) == before


def test_nan_outputs_stop_the_run_with_a_report(bundles: dict[str, Path], tmp_path: Path) -> None:
    b, _, proc = processor_for(bundles["seg_logits"], nan=True)
    sink = JsonlSink(tmp_path / "r.jsonl", b.classes)
    before = set(threading.enumerate())
    report, error = run_loop(open_source("synthetic:64x48@100"), proc, sinks=[sink])
    assert isinstance(error, EngineError) and error.exit_code == 1
    assert report.stopped == "error" and "NaN" in (report.error or "")
    assert report.frames == 0 and sink._file is None
    assert json.loads(report.to_json())["capture_to_result_ms"]["p50"] is None  # valid JSON, no NaN
    assert set(threading.enumerate()) == before


def test_a_camera_dying_mid_run_surfaces_source_error(bundles: dict[str, Path]) -> None:
    _, _, proc = processor_for(bundles["seg"])
    cams = [FakeCamera(fail_after=20)]
    before = set(threading.enumerate())
    src = Source(lambda: cams.pop() if cams else FakeCamera(opened=False), description="cam", live=True,
                 backoff=Backoff(attempts=2, base_s=0.01))
    report, error = run_loop(src, proc)
    assert isinstance(error, SourceError) and error.exit_code == 1
    assert report.stopped == "error" and 1 <= report.frames <= 20
    assert report.extra["reopen_attempts"] == 2
    assert set(threading.enumerate()) == before


def test_slow_consumer_on_a_live_source_counts_drops(bundles: dict[str, Path]) -> None:
    _, _, proc = processor_for(bundles["seg"], delay_ms=10)
    ids: list[int] = []
    report, _ = run_loop(open_source("synthetic:64x48@500:200"), proc, on_result=lambda r: ids.append(r.frame.id))
    assert report.dropped > 0 and report.frames + report.dropped == 200
    assert all(b > a for a, b in zip(ids, ids[1:], strict=False))



class _ReusingEngine:
    """Wraps an engine so every call writes its call number into ONE reused uint8 output buffer (like TensorRT)."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.calls = engine, 0
        self.buf = np.zeros(engine.outputs[0].shape, np.uint8)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.engine, name)

    def infer(self, feeds):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.buf.fill(self.calls % 256)
        return {self.engine.outputs[0].name: self.buf}


def test_results_do_not_alias_an_engine_buffer_reused_by_the_next_frame(bundles: dict[str, Path], clip: Path) -> None:
    b = load_bundle(bundles["seg"])
    engine = _ReusingEngine(load_engine(b, "null"))
    proc = HostProcessor(b, engine)  # the wrapper, not the engine it wraps, must run infer
    seen: list[tuple[int, int, int]] = []

    def slow_reader(r: Result) -> None:
        first = int(r.output.class_ids[0, 0])  # type: ignore[union-attr]
        time.sleep(0.003)  # the inference thread runs the next frame meanwhile
        seen.append((r.frame.id, first, int(r.output.class_ids[0, 0])))  # type: ignore[union-attr]

    report, error = run_loop(open_source(str(clip)), proc, on_result=slow_reader)
    assert error is None and report.frames == 30
    assert all(a == c == (i + 1) % 256 for i, a, c in seen), seen

def test_recorder_grows_and_keeps_values() -> None:
    rec = LatencyRecorder(capacity=2)
    for i in range(5):
        f = Frame.captured(i, np.zeros((2, 2, 3), np.uint8), t=10.0)
        for k, stage in enumerate(STAGES, start=1):
            f.timeline.stamp(stage, 10.0 + k * 0.001 * (i + 1))
        rec.add(f)
    assert rec.n == 5
    assert rec.column("infer") == pytest.approx([1, 2, 3, 4, 5])
    assert rec.column("capture_to_output") == pytest.approx([len(STAGES) * (i + 1) for i in range(5)])



def test_recorder_is_bounded_and_keeps_the_newest_rows() -> None:
    rec = LatencyRecorder(capacity=2, max_rows=4)
    for i in range(10):
        f = Frame.captured(i, np.zeros((2, 2, 3), np.uint8), t=0.0)
        for stage in STAGES:
            f.timeline.stamp(stage, 0.001 * (i + 1))  # every stage at the same time: capture->output = i + 1 ms
        rec.add(f)
    assert rec.n == 10 and rec.stored == 4
    assert sorted(rec.column("capture_to_output")) == pytest.approx([7, 8, 9, 10])

def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_long_run_does_not_grow_memory(bundles: dict[str, Path]) -> None:
    _, _, proc = processor_for(bundles["seg"])
    run_loop(open_source("synthetic:160x120@5000:300"), proc)  # warm allocator pools
    rss0 = rss_mb()
    report, _ = run_loop(open_source("synthetic:160x120@5000:5000"), proc)
    assert report.frames + report.dropped == 5000
    assert rss_mb() - rss0 < 20, f"RSS grew {rss_mb() - rss0:.1f} MB over {report.frames} frames"


def _burn(ms: float) -> None:
    end = time.thread_time() + ms / 1e3
    while time.thread_time() < end:
        pass


def test_the_report_says_which_thread_spent_the_cpu(bundles: dict[str, Path], clip: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """cpu_ms_per_frame: a stage that burns CPU shows up in its own thread's row and in the process's."""
    _, _, proc = processor_for(bundles["seg"], delay_ms=3)  # the null engine busy-waits in the inference thread
    prepare = proc.prepare

    def slow_prepare(frame: Frame):  # type: ignore[no-untyped-def]
        _burn(6.0)
        return prepare(frame)

    monkeypatch.setattr(proc, "prepare", slow_prepare)
    report, error = run_loop(open_source(str(clip)), proc)
    assert error is None and report.frames == 30
    cpu = report.extra["cpu_ms_per_frame"]
    assert set(cpu) == {"capture", "preprocess", "inference", "output", "process"}
    assert 5.5 <= cpu["preprocess"] < 12  # the 6 ms burn (+ preprocessing itself)
    assert 2.5 <= cpu["inference"] < 6  # the engine's 3 ms wait, run in this thread
    assert cpu["output"] < 2.5 and 0 < cpu["capture"] < 5
    assert cpu["process"] >= cpu["preprocess"] + cpu["inference"]
    assert json.loads(report.to_json())["extra"]["cpu_ms_per_frame"]["preprocess"] == cpu["preprocess"]
