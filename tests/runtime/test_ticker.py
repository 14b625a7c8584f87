"""The synchronous per-frame path: same Processor call, stamps and report as the threaded loop."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.frame import Frame, SegMap
from edgepilot.runtime.pipeline import run_loop
from edgepilot.runtime.processor import Processor
from edgepilot.runtime.sources import open_source
from edgepilot.runtime.telemetry import STAGES
from edgepilot.runtime.ticker import Ticker


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (96, 160, 3), dtype=np.uint8) for _ in range(n)]

def test_ticker_stamps_and_reports_like_the_loop(bundles: dict[str, Path]) -> None:
    engine = load_engine(load_bundle(bundles["seg"]), "null", delay_ms=2)
    proc = engine.make_processor()
    assert isinstance(proc, Processor)
    before = set(threading.enumerate())
    ticker = Ticker(proc, engine=engine.describe(), source="test")
    for image in _frames(12):
        result = ticker.process(image)
        assert [s for s, _ in result.frame.timeline.stamps] == ["capture", *STAGES[:-1]]
        ticker.record(result)
        assert [s for s, _ in result.frame.timeline.stamps] == ["capture", *STAGES]
    report = ticker.report()
    assert set(threading.enumerate()) == before  # no threads of its own
    assert report.frames == 12 and report.dropped == 0 and report.stopped == "end"
    assert report.stages_ms["infer"]["n"] == 12 and report.stages_ms["infer"]["p50"] >= 2.0
    assert report.engine["backend"] == "null" and report.source == "test"

    loop_report, _ = run_loop(open_source("synthetic:160x96@500:12"), engine.make_processor())
    assert set(loop_report.stages_ms) == set(report.stages_ms)
    assert json.loads(report.to_json()).keys() == json.loads(loop_report.to_json()).keys()

def test_ticker_outputs_equal_the_loops(bundles: dict[str, Path]) -> None:
    pytest.importorskip("onnxruntime")
    engine = load_engine(load_bundle(bundles["seg"]), "ort")
    images = _frames(3)
    ticker = Ticker(engine.make_processor())
    direct = engine.make_processor()

    for i, image in enumerate(images):
        got, want = ticker.process(image).output, direct(Frame.captured(i, image))
        assert isinstance(got, SegMap) and isinstance(want, SegMap)
        assert np.array_equal(got.class_ids, want.class_ids)
