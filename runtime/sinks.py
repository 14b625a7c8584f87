"""Sinks: where results go. An annotated video file, a window, JSONL records.

Each sink has ``needs_image`` (whether it wants the annotated frame), ``write(result,
image)`` and ``close()``. A sink opens its file when created (or at the first frame
for video, whose size comes from the frame) and closes it in ``close()``, which the
pipeline calls in a ``finally``: a run that fails still leaves a flushed file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Protocol

import cv2
import numpy as np

from edgepilot.runtime.errors import SinkError
from edgepilot.runtime.frame import CAPTURE, Detections, PolicyAction, Result, SegMap

FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class Sink(Protocol):
    needs_image: bool

    def write(self, result: Result, image: np.ndarray | None) -> None: ...
    def close(self) -> None: ...


def video_fourcc(path: str | Path) -> int:
    """The fourcc for a video path's extension; SinkError (exit 2) for one we cannot write."""
    ext = Path(path).suffix.lower()
    if ext not in FOURCC:
        raise SinkError(f"--out {path}: unknown video extension {ext!r}; use {', '.join(FOURCC)}")
    return int(cv2.VideoWriter.fourcc(*FOURCC[ext]))


class VideoSink:
    """Annotated frames to a video file; fourcc from the extension (.mp4 mp4v, .avi MJPG)."""

    needs_image = True

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        self.fourcc = video_fourcc(self.path)
        if not self.path.parent.is_dir():
            raise SinkError(f"{self.path}: folder {self.path.parent} does not exist")
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: Result, image: np.ndarray | None) -> None:
        assert image is not None
        self.write_image(image)

    def write_image(self, image: np.ndarray) -> None:
        """One BGR frame (the writer opens at the first frame's size)."""
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), self.fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise SinkError(f"{self.path}: OpenCV cannot write this video (codec or permissions)")
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def display_available() -> bool:
    """True when a display is set and OpenCV has a GUI backend (headless wheels have none)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    return bool(gui) and not gui[0].strip().endswith("NONE")


class WindowSink:
    """Annotated frames in an OpenCV window; SinkError if there is no display or GUI backend."""

    needs_image = True

    def __init__(self, title: str = "edgepilot") -> None:
        if not display_available():
            raise SinkError("--show needs a display (DISPLAY or WAYLAND_DISPLAY) and OpenCV with GUI "
                            "support (pip install opencv-python, not -headless); use --out video.mp4 instead")
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def write(self, result: Result, image: np.ndarray | None) -> None:
        assert image is not None
        cv2.imshow(self.title, image)
        cv2.waitKey(1)  # lets the GUI thread draw; 1 ms is the shortest wait

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class JsonlSink:
    """One JSON object per frame: ids, capture time, stage stamps and durations, latency, output."""

    needs_image = False

    def __init__(self, path: str | Path, classes: list[str]) -> None:
        self.path = Path(path)
        self.classes = classes
        self.lines = 0
        try:
            self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot write JSONL ({exc.strerror})") from exc

    def write(self, result: Result, image: np.ndarray | None) -> None:
        assert self._file is not None
        self._file.write(json.dumps(result_record(result, self.classes)) + "\n")
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def result_record(result: Result, classes: list[str]) -> dict[str, Any]:
    """The JSON-ready record of one result; times are perf_counter seconds, durations ms."""
    tl = result.frame.timeline
    t0 = tl.get(CAPTURE) or 0.0
    record: dict[str, Any] = {
        "frame_id": result.frame.id,
        "t_capture_s": t0,
        "source_pos_s": None if np.isnan(result.frame.source_pos_s) else result.frame.source_pos_s,
        "stamps_ms": {name: (t - t0) * 1e3 for name, t in tl.stamps},
        "durations_ms": tl.durations_ms(),
        "latency_ms": tl.latency_ms(),
    }
    record.update(output_record(result.output, classes))
    return record


def output_record(out: Any, classes: list[str]) -> dict[str, Any]:
    """Detections as boxes/scores/class names, a SegMap as class -> pixel share, or an action."""
    if isinstance(out, Detections):
        return {"detections": [
            {"box": [round(float(v), 2) for v in box], "score": round(float(score), 4),
             "class": classes[cid] if 0 <= cid < len(classes) else str(int(cid))}
            for box, score, cid in zip(out.boxes, out.scores, out.class_ids, strict=True)]}
    if isinstance(out, SegMap):
        hist = out.histogram()
        total = max(int(hist.sum()), 1)
        names = classes or [str(i) for i in range(out.num_classes)]
        return {"class_share": {names[i]: round(int(n) / total, 6) for i, n in enumerate(hist) if n}}
    if isinstance(out, PolicyAction):
        return {"action": {n: float(v) for n, v in zip(out.names, out.values, strict=False)}}
    return {}


class NullSink:
    """Discards results (``--out`` and ``--jsonl`` not given)."""

    needs_image = False

    def write(self, result: Result, image: np.ndarray | None) -> None:
        return None

    def close(self) -> None:
        return None
