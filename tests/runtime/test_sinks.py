"""Sinks: readable video with the right frame count, JSONL records, clear errors, no open files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepilot.runtime.errors import SinkError
from edgepilot.runtime.frame import (
    INFER,
    POSTPROCESS,
    PREPROCESS,
    Detections,
    Frame,
    Result,
    SegMap,
)
from edgepilot.runtime.sinks import JsonlSink, VideoSink, WindowSink, result_record

CLASSES = ["road", "car", "sky"]


def seg_result(i: int) -> Result:
    frame = Frame.captured(i, np.full((48, 64, 3), 10 * i, np.uint8), pos_s=i / 30)
    for stage in (PREPROCESS, INFER, POSTPROCESS):
        frame.timeline.stamp(stage)
    ids = np.zeros((12, 16), np.uint8)
    ids[:3] = 2  # a quarter sky, the rest road
    return Result(frame, SegMap(ids, len(CLASSES)))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_video_sink_writes_a_readable_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"out{ext}"
    fds = open_fds()
    sink = VideoSink(path, fps=30)
    for i in range(12):
        r = seg_result(i)
        sink.write(r, r.frame.image)
    sink.close()
    assert open_fds() == fds
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    size = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    assert n == 12 and size == (64, 48)


def test_video_sink_rejects_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="unknown video extension"):
        VideoSink(tmp_path / "out.gif")
    with pytest.raises(SinkError, match="does not exist"):
        VideoSink(tmp_path / "missing" / "out.mp4")


def test_jsonl_has_one_record_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    fds = open_fds()
    sink = JsonlSink(path, CLASSES)
    for i in range(5):
        sink.write(seg_result(i), None)
    sink.close()
    assert open_fds() == fds
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["frame_id"] for r in records] == list(range(5))
    first = records[0]
    assert set(first) >= {"frame_id", "t_capture_s", "stamps_ms", "durations_ms", "latency_ms", "class_share"}
    assert first["class_share"] == {"road": 0.75, "sky": 0.25}
    assert list(first["durations_ms"]) == ["preprocess", "infer", "postprocess"]
    assert all(r["latency_ms"] >= 0 and r["stamps_ms"]["capture"] == 0 for r in records)
    assert records[3]["source_pos_s"] == pytest.approx(0.1)


def test_detection_record_names_classes() -> None:
    frame = Frame.captured(7, np.zeros((8, 8, 3), np.uint8))
    det = Detections(np.array([[1, 2, 30.5, 40]], np.float32), np.array([0.9], np.float32),
                     np.array([1], np.int32))
    rec = result_record(Result(frame, det), CLASSES)
    assert rec["detections"] == [{"box": [1.0, 2.0, 30.5, 40.0], "score": 0.9, "class": "car"}]
    assert rec["frame_id"] == 7 and np.isnan(rec["latency_ms"])  # no postprocess stamp yet


def test_jsonl_unwritable_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="cannot write JSONL"):
        JsonlSink(tmp_path / "missing" / "r.jsonl", CLASSES)


def test_window_without_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="needs a display") as info:
        WindowSink()
    assert info.value.exit_code == 2
