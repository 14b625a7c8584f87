"""Accuracy of one precision of a bundle, run as the runtime runs it.

The graph runs through ``load_engine(bundle, "ort", precision)`` on frames fed
by the runtime's preprocessing, its outputs go through the runtime's own
decoder (``make_decoder``), and the scores are perception's: segmentation class
ids (model resolution) are resized to the label resolution with nearest
neighbour into a :class:`ConfusionMatrix` (mIoU, per-class IoU); detections (the
decoder maps them back to source pixels) go to :func:`coco_ap` (map50,
map50_95) with the checkpoint's ``min_size``.

:func:`evaluate_bundle` (``edgepilot eval`` on a bundle) runs the same scoring
on any backend, precision and device, and times each engine call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
import torch

from edgepilot.export.frames import Frames, InputFeeder
from edgepilot.perception.classes import DETECTION, SEGMENTATION
from edgepilot.perception.metrics.detection import FrameBoxes, coco_ap
from edgepilot.perception.metrics.segmentation import ConfusionMatrix
from edgepilot.perception.train.config import DetConfig
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.frame import Detections, SegMap
from edgepilot.runtime.postprocess import make_decoder

SEG_KEYS = ("miou", "per_class_iou", "pixel_accuracy", "images")
DET_KEYS = ("map50", "map50_95", "per_class_ap", "images", "gt_boxes", "detections")
Infer = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


def _seg(bundle: Bundle, infer: Infer, fr: Frames, hw: tuple[int, int] | None = None) -> dict[str, Any]:
    feed, decoder = InputFeeder(bundle, hw), make_decoder(bundle)
    cm = ConfusionMatrix(SEGMENTATION.num_classes)
    n = 0
    for s in fr.samples():
        if s.labels is None:
            raise EdgepilotError("segmentation accuracy needs label PNGs for every --val frame", exit_code=2)
        x, transform = feed(s.image)
        seg = decoder(infer({feed.name: x}), transform, s.image.shape[:2])
        assert isinstance(seg, SegMap)
        h, w = s.labels.shape
        ids = cv2.resize(seg.class_ids, (w, h), interpolation=cv2.INTER_NEAREST)
        cm.update(torch.from_numpy(ids)[None], torch.from_numpy(s.labels)[None])
        n += 1
    scores = cm.scores(SEGMENTATION.names)
    return {k: v for k, v in {**scores, "images": n}.items() if k in SEG_KEYS}


def _det(bundle: Bundle, infer: Infer, fr: Frames, min_size: float, score_threshold: float,
         hw: tuple[int, int] | None = None) -> dict[str, Any]:
    # AP wants the low-score tail too: decode down to the training evaluator's threshold
    low = dataclasses.replace(bundle, meta={**bundle.meta, "decoder": {**bundle.decoder,
                                                                          "score_threshold": score_threshold}})
    feed, decoder = InputFeeder(bundle, hw), make_decoder(low)
    out: list[FrameBoxes] = []
    for s in fr.samples():
        x, transform = feed(s.image)
        h, w = s.image.shape[:2]
        d = decoder(infer({feed.name: x}), transform, (h, w))
        assert isinstance(d, Detections)
        out.append(FrameBoxes(h, w, s.boxes, s.classes, s.crowd, d.boxes.copy(), d.scores.copy(), d.class_ids.copy()))
    scores = coco_ap(out, DETECTION.names, min_size)
    return {k: v for k, v in scores.items() if k in DET_KEYS}


def measure_accuracy(bundle: Bundle, precision: str, fr: Frames, *, min_size: float = 0.0,
                     score_threshold: float = 0.01, threads: int = 1) -> dict[str, Any]:
    """Scores of ``bundle``'s ``precision`` graph on ``fr`` (seg: miou, per_class_iou, pixel_accuracy;
    det: map50, map50_95, per_class_ap), all in [0, 1], plus frame counts."""
    with load_engine(bundle, "ort", precision, threads=threads) as engine:
        if bundle.task == "segmentation":
            return _seg(bundle, engine.infer, fr)
        return _det(bundle, engine.infer, fr, min_size, score_threshold)


class _Timed:
    """``engine.infer`` that records each call's wall time (ms); outputs are host arrays, so done."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.ms: list[float] = []

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out: dict[str, np.ndarray] = self.engine.infer(feeds)
        self.ms.append(1e3 * (time.perf_counter() - t0))
        return out


def check_class_map(bundle: Bundle, task: str) -> None:
    """The bundle's task and classes are the class map the datagen labels use (scores are by class index)."""
    if task not in ("segmentation", "detection"):
        raise EdgepilotError(f"{bundle.path}: eval scores segmentation and detection bundles, not {task}",
                             exit_code=2)
    if bundle.task != task:
        raise EdgepilotError(f"{bundle.path} is a {bundle.task} bundle, not {task}; evaluate it with the "
                             f"other task ({'seg' if bundle.task == 'segmentation' else 'det'})", exit_code=2)
    names = list((SEGMENTATION if task == "segmentation" else DETECTION).names)
    if bundle.classes != names:
        raise EdgepilotError(f"{bundle.path}: classes {bundle.classes[:6]}{' ...' if len(bundle.classes) > 6 else ''} "
                             f"are not the datagen class map {names} (perception/classes.py) the labels are "
                             "scored against; evaluate a bundle exported from an edgepilot train checkpoint",
                             exit_code=2)


def evaluate_bundle(bundle: Bundle, fr: Frames, *, backend: str = "ort", precision: str = "fp32",
                    device: str = "cpu", hw: tuple[int, int] | None = None,
                    engine_options: Mapping[str, Any] | None = None, min_size: float | None = None,
                    score_threshold: float = 0.01, task: str | None = None) -> dict[str, Any]:
    """Scores of ``bundle`` run by ``load_engine(bundle, backend, precision, device)`` on ``fr``.

    Returns the keys of :func:`measure_accuracy` (seg: miou, per_class_iou; det: map50,
    map50_95, per_class_ap; in [0, 1]) plus backend, precision, device, frames,
    ``engine_p50_ms`` / ``engine_p90_ms`` (wall time of each ``infer`` call after a
    3-call warm-up) and ``engine`` (its ``describe()``). ``min_size`` (fraction of the
    image height) defaults to the training evaluator's (``DetConfig.min_size``). ``task``
    ("segmentation" or "detection"), when given, must be the bundle's. EdgepilotError
    (exit 2) for another task or class map, or no frames.
    """
    check_class_map(bundle, task or bundle.task)
    if len(fr) == 0:
        raise EdgepilotError(f"no frames to evaluate in {', '.join(fr.folders)} (split {fr.split!r})", exit_code=2)
    with load_engine(bundle, backend, precision, device, hw, **dict(engine_options or {})) as engine:
        engine.warmup(3)
        timed = _Timed(engine)
        if bundle.task == "segmentation":
            scores = _seg(bundle, timed, fr, hw)
        else:
            ms = DetConfig().min_size if min_size is None else min_size
            scores = {**_det(bundle, timed, fr, ms, score_threshold, hw), "min_size": ms}
        info = engine.describe()
    return {**scores, "backend": engine.backend, "precision": precision, "device": str(engine.device),
            "frames": len(timed.ms), "engine_p50_ms": float(np.percentile(timed.ms, 50)),
            "engine_p90_ms": float(np.percentile(timed.ms, 90)), "engine": info}


def headline(task: str, scores: dict[str, Any]) -> float:
    """The number precisions are compared by, in points (mIoU or AP50 x 100)."""
    return 100.0 * float(scores["miou"] if task == "segmentation" else scores["map50"])
