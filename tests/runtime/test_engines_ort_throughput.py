"""ort with hint=throughput: several runs in flight on the CPU, the loop's results unchanged."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.engines.ops_ort import OrtOverlapProcessor
from edgepilot.runtime.errors import EngineError
from edgepilot.runtime.frame import Frame
from edgepilot.runtime.pipeline import run_loop
from edgepilot.runtime.processor import HostProcessor
from edgepilot.runtime.sources import Source, SyntheticCapture

CORES = len(os.sched_getaffinity(0))


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ort-run")]


def test_throughput_hint_shares_the_cores_among_runs_in_flight(bundles: dict[str, Path]) -> None:
    eng = load_engine(bundles["seg"], "ort", hint="throughput")
    info = eng.describe()
    streams = min(CORES, 4)
    assert (info["hint"], info["streams"]) == ("throughput", streams)
    assert info["threads"] == max(1, CORES // streams)
    assert isinstance(eng.make_processor(), OrtOverlapProcessor) == (streams > 1)
    two = load_engine(bundles["seg"], "ort", hint="throughput", streams=2, threads=3).describe()
    assert (two["streams"], two["threads"]) == (2, 3)  # given values win
    latency = load_engine(bundles["seg"], "ort")
    assert latency.describe()["streams"] == 1 and type(latency.make_processor()) is HostProcessor


def test_streams_without_the_throughput_hint_is_a_clear_error(bundles: dict[str, Path]) -> None:
    with pytest.raises(EngineError) as err:
        load_engine(bundles["seg"], "ort", streams=2)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert "streams=2" in str(err.value) and "hint=throughput" in str(err.value)


@pytest.mark.parametrize("preprocess", ["graph", "host"])
@pytest.mark.parametrize("name", ["seg", "yolo"])
def test_overlapped_runs_in_the_loop_give_the_sync_results(bundles: dict[str, Path], name: str,
                                                           preprocess: str) -> None:
    """Runs started in prepare and awaited in complete: every frame, in order, the same outputs (with the
    frame normalised in the graph, auto's choice here, or on the host)."""
    sync = load_engine(bundles[name], "ort").make_processor()
    eng = load_engine(bundles[name], "ort", hint="throughput", streams=2, preprocess=preprocess)
    assert eng.describe()["preprocess"] == preprocess
    cam = SyntheticCapture(320, 180, 1e6)
    expected = [sync(Frame.captured(i, cam.frame(i))) for i in range(24)]
    got: dict[int, Any] = {}

    def keep(result: Any) -> None:
        got[result.frame.id] = result.output

    source = Source(lambda: SyntheticCapture(320, 180, 1e6), description="synthetic", live=False, limit=24)
    report, error = run_loop(source, eng.make_processor(), on_result=keep)
    assert error is None and report.frames == 24 and sorted(got) == list(range(24))
    for i in range(24):
        if name == "seg":
            np.testing.assert_array_equal(got[i].class_ids, expected[i].class_ids)
        else:
            np.testing.assert_array_equal(got[i].boxes, expected[i].boxes)
            np.testing.assert_array_equal(got[i].class_ids, expected[i].class_ids)
    assert _pool_threads()  # the runs went through the pool...
    eng.close()
    assert not _pool_threads()  # ...and closing the engine ends its threads


@pytest.mark.parametrize("preprocess", ["graph", "host"])
def test_a_failed_run_stops_the_loop_with_its_error(bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                    preprocess: str) -> None:
    eng = load_engine(bundles["seg"], "ort", hint="throughput", streams=2, preprocess=preprocess)
    method = "infer_frame" if preprocess == "graph" else "infer"  # what the loop's runs call
    calls = {"n": 0}
    real = getattr(eng, method)

    def flaky(feeds: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise EngineError("onnxruntime failed: injected")
        return real(feeds)

    monkeypatch.setattr(eng, method, flaky)
    source = Source(lambda: SyntheticCapture(160, 90, 1e6), description="synthetic", live=False, limit=40)
    report, error = run_loop(source, eng.make_processor())
    assert isinstance(error, EngineError) and "injected" in str(error)
    assert report.frames < 40
    eng.close()


def test_throughput_is_measured_only_where_runs_overlap(bundles: dict[str, Path]) -> None:
    eng = load_engine(bundles["seg"], "ort", hint="throughput", streams=2)
    fps = eng.throughput_fps(eng.sample_inputs(), 6)
    assert fps is not None and fps > 0
    assert load_engine(bundles["seg"], "ort").throughput_fps(eng.sample_inputs(), 6) is None
