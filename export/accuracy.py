"""Accuracy of one precision of a bundle, run as the runtime runs it.

The graph runs through ``load_engine(bundle, "ort", precision)`` on frames fed
by the runtime's preprocessing, its outputs go through the runtime's own
decoder (``make_decoder``), and the scores are perception's: segmentation class
ids (model resolution) are resized to the label resolution with nearest
neighbour into a :class:`ConfusionMatrix` (mIoU, per-class IoU); detections (the
decoder maps them back to source pixels) go to :func:`coco_ap` (map50,
map50_95) with the checkpoint's ``min_size``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import torch

from edgepilot.export.frames import Frames, InputFeeder
from edgepilot.perception.classes import DETECTION, SEGMENTATION
from edgepilot.perception.metrics.detection import FrameBoxes, coco_ap
from edgepilot.perception.metrics.segmentation import ConfusionMatrix
from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.frame import Detections, SegMap
from edgepilot.runtime.postprocess import make_decoder

SEG_KEYS = ("miou", "per_class_iou", "pixel_accuracy", "images")
DET_KEYS = ("map50", "map50_95", "per_class_ap", "images", "gt_boxes", "detections")


def _seg(bundle: Bundle, engine: Any, fr: Frames) -> dict[str, Any]:
    feed, decoder = InputFeeder(bundle), make_decoder(bundle)
    cm = ConfusionMatrix(SEGMENTATION.num_classes)
    n = 0
    for s in fr.samples():
        if s.labels is None:
            raise EdgepilotError("segmentation accuracy needs label PNGs for every --val frame", exit_code=2)
        x, transform = feed(s.image)
        seg = decoder(engine.infer({feed.name: x}), transform, s.image.shape[:2])
        assert isinstance(seg, SegMap)
        h, w = s.labels.shape
        ids = cv2.resize(seg.class_ids, (w, h), interpolation=cv2.INTER_NEAREST)
        cm.update(torch.from_numpy(ids)[None], torch.from_numpy(s.labels)[None])
        n += 1
    scores = cm.scores(SEGMENTATION.names)
    return {k: v for k, v in {**scores, "images": n}.items() if k in SEG_KEYS}


def _det(bundle: Bundle, engine: Any, fr: Frames, min_size: float, score_threshold: float) -> dict[str, Any]:
    # AP wants the low-score tail too: decode down to the training evaluator's threshold
    low = dataclasses.replace(bundle, meta={**bundle.meta, "decoder": {**bundle.decoder,
                                                                          "score_threshold": score_threshold}})
    feed, decoder = InputFeeder(bundle), make_decoder(low)
    out: list[FrameBoxes] = []
    for s in fr.samples():
        x, transform = feed(s.image)
        h, w = s.image.shape[:2]
        d = decoder(engine.infer({feed.name: x}), transform, (h, w))
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
            return _seg(bundle, engine, fr)
        return _det(bundle, engine, fr, min_size, score_threshold)


def headline(task: str, scores: dict[str, Any]) -> float:
    """The number precisions are compared by, in points (mIoU or AP50 x 100)."""
    return 100.0 * float(scores["miou"] if task == "segmentation" else scores["map50"])
