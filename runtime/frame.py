"""The records that flow through the loop: a Frame in, a Result out.

A Frame carries its capture time from the source; every stage appends a stamp
to the frame's Timeline, so each Result knows its own capture-to-result latency.
Times are ``time.perf_counter()`` seconds (monotonic, shared by all threads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

# Stage names, in the order a frame meets them. HANDOFF is stamped when the
# inference stage picks up a preprocessed input (the wait between the two threads).
CAPTURE, PREPROCESS, HANDOFF, INFER, POSTPROCESS, OUTPUT = (
    "capture",
    "preprocess",
    "handoff",
    "infer",
    "postprocess",
    "output",
)


@dataclass(slots=True)
class Timeline:
    """Ordered (stage, perf_counter seconds) stamps of one frame; appended by each stage."""

    stamps: list[tuple[str, float]] = field(default_factory=list)

    def stamp(self, stage: str, t: float | None = None) -> float:
        now = time.perf_counter() if t is None else t
        self.stamps.append((stage, now))
        return now

    def get(self, stage: str) -> float | None:
        for name, t in self.stamps:
            if name == stage:
                return t
        return None

    def durations_ms(self) -> dict[str, float]:
        """Time spent reaching each stage from the previous stamp, in milliseconds."""
        out: dict[str, float] = {}
        for (_, t0), (name, t1) in zip(self.stamps, self.stamps[1:], strict=False):
            out[name] = (t1 - t0) * 1e3
        return out

    def latency_ms(self, until: str = POSTPROCESS) -> float:
        """Capture-to-``until`` latency in milliseconds (NaN if a stamp is missing)."""
        t0, t1 = self.get(CAPTURE), self.get(until)
        if t0 is None or t1 is None:
            return float("nan")
        return (t1 - t0) * 1e3


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image. ``image`` is HxWx3 uint8 BGR (OpenCV order)."""

    id: int
    image: np.ndarray
    timeline: Timeline
    source_pos_s: float = float("nan")  # position in a file, seconds; NaN for live sources

    @staticmethod
    def captured(frame_id: int, image: np.ndarray, t: float | None = None, pos_s: float = float("nan")) -> Frame:
        tl = Timeline()
        tl.stamp(CAPTURE, t)
        return Frame(frame_id, image, tl, pos_s)


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes in source-image pixels: boxes (N, 4) float32 x1,y1,x2,y2; scores (N,); class_ids (N,) int32."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)
        )


@dataclass(frozen=True, slots=True)
class SegMap:
    """Per-pixel class ids at model resolution: class_ids (h, w) uint8."""

    class_ids: np.ndarray
    num_classes: int

    def histogram(self) -> np.ndarray:
        """Pixel count per class id, shape (num_classes,)."""
        return np.bincount(self.class_ids.ravel(), minlength=self.num_classes)[: self.num_classes]


@dataclass(frozen=True, slots=True)
class PolicyAction:
    """A policy's action vector, e.g. (steer, throttle) in [-1, 1]."""

    values: np.ndarray
    names: tuple[str, ...]


Output = Detections | SegMap | PolicyAction


@dataclass(frozen=True, slots=True)
class Result:
    """What the loop hands to sinks: the frame, its decoded output and its timeline."""

    frame: Frame
    output: Output
