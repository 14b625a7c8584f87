"""Detection decoders: our center-heatmap format and the YOLOv8/YOLO11 layout.

CenterNet-style (``decoder.type = "centernet"``)::

    heatmap [1, C, h, w]   class scores in [0, 1] per cell (heatmap_activation="sigmoid" if they are logits)
    size    [1, 2, h, w]   box width, height (input pixels, or cells with size_units="cells")
    offset  [1, 2, h, w]   sub-cell centre offset (optional)

Peaks are 3x3 local maxima above ``score_threshold`` (the max-pool trick of
CenterNet, which makes NMS unnecessary), top ``max_detections`` kept.

YOLOv8/YOLO11 (``decoder.type = "yolo"``): one output [1, 4 + nc, N], rows
cx, cy, w, h in input pixels then nc class scores (already sigmoid); boxes
above ``score_threshold`` go through OpenCV's class-aware NMS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from edgepilot.runtime.bundle import Bundle
from edgepilot.runtime.errors import BundleError
from edgepilot.runtime.frame import Detections
from edgepilot.runtime.postprocess import check_finite, output
from edgepilot.runtime.preprocess import Transform

_KERNEL = np.ones((3, 3), np.uint8)


def _finish(boxes: np.ndarray, scores: np.ndarray, cls: np.ndarray, transform: Transform, src_hw: tuple[int, int]) -> Detections:
    boxes = transform.boxes_to_source(boxes.astype(np.float32), src_hw[1], src_hw[0])
    return Detections(boxes, scores.astype(np.float32), cls.astype(np.int32))


class CenterNetDecoder:
    def __init__(self, bundle: Bundle) -> None:
        cfg = bundle.decoder
        self.heatmap = cfg.get("heatmap", "heatmap")
        self.size = cfg.get("size", "size")
        self.offset = cfg.get("offset")
        self.stride = float(cfg.get("stride", 4))
        self.threshold = float(cfg.get("score_threshold", 0.3))
        self.max_det = int(cfg.get("max_detections", 100))
        self.sigmoid = cfg.get("heatmap_activation", "none") == "sigmoid"
        self.size_scale = self.stride if cfg.get("size_units", "pixels") == "cells" else 1.0

    def __call__(
        self, outputs: Mapping[str, np.ndarray], transform: Transform, src_hw: tuple[int, int]
    ) -> Detections:
        heat = output(outputs, self.heatmap)
        check_finite(self.heatmap, heat)
        if heat.ndim != 4:
            raise BundleError(f"heatmap {self.heatmap!r} must be [1, C, h, w], got {list(heat.shape)}")
        heat = heat[0]  # (C, h, w)
        if self.sigmoid:
            heat = 1.0 / (1.0 + np.exp(-heat))
        # per-class 3x3 max filter; cv2.dilate takes (h, w, C) for C <= 512
        pooled = cv2.dilate(np.ascontiguousarray(heat.transpose(1, 2, 0)), _KERNEL)
        if pooled.ndim == 2:
            pooled = pooled[:, :, None]
        peaks = (heat >= self.threshold) & (heat == pooled.transpose(2, 0, 1))
        c, y, x = np.nonzero(peaks)
        if c.size == 0:
            return Detections.empty()
        scores = heat[c, y, x]
        if scores.size > self.max_det:
            keep = np.argpartition(-scores, self.max_det)[: self.max_det]
            c, y, x, scores = c[keep], y[keep], x[keep], scores[keep]
        order = np.argsort(-scores)
        c, y, x, scores = c[order], y[order], x[order], scores[order]
        size = output(outputs, self.size)[0]  # (2, h, w)
        w, h = size[0, y, x] * self.size_scale, size[1, y, x] * self.size_scale
        cx, cy = x.astype(np.float32), y.astype(np.float32)
        if self.offset:
            off = output(outputs, self.offset)[0]
            cx, cy = cx + off[0, y, x], cy + off[1, y, x]
        cx, cy = cx * self.stride, cy * self.stride
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return _finish(boxes, scores, c, transform, src_hw)


class YoloDecoder:
    def __init__(self, bundle: Bundle) -> None:
        cfg = bundle.decoder
        self.name = cfg.get("output", bundle.outputs[0].name)
        self.threshold = float(cfg.get("score_threshold", 0.25))
        self.iou = float(cfg.get("iou_threshold", 0.45))
        self.max_det = int(cfg.get("max_detections", 300))
        self.agnostic = bool(cfg.get("class_agnostic", False))
        self.nc = len(bundle.classes)

    def __call__(
        self, outputs: Mapping[str, np.ndarray], transform: Transform, src_hw: tuple[int, int]
    ) -> Detections:
        raw = output(outputs, self.name)
        check_finite(self.name, raw)
        if raw.ndim != 3 or raw.shape[1] != 4 + self.nc:
            raise BundleError(
                f"YOLO output {self.name!r} must be [1, 4 + {self.nc}, N], got {list(raw.shape)}; "
                "fix meta.json 'classes' or the decoder"
            )
        pred = raw[0]  # (4 + nc, N)
        cls_scores = pred[4:]
        # the best class score per anchor first (a max over rows: vectorised), the class index only
        # for the few anchors above the threshold (an argmax over axis 0 of every anchor is not);
        # same values and the same first-index tie rule as a full argmax. The whole decode went from
        # 0.40 to 0.08 ms on the YOLOv8n-class output (benchmarks/profile_cpu.py, postprocess)
        scores = cls_scores.max(axis=0)
        keep = scores > self.threshold
        if not keep.any():
            return Detections.empty()
        cls = np.argmax(cls_scores[:, keep], axis=0).astype(np.int32)
        xywh = pred[:4, keep].T.astype(np.float32)  # (M, 4) cx, cy, w, h
        scores = scores[keep].astype(np.float32)
        tl = np.stack([xywh[:, 0] - xywh[:, 2] / 2, xywh[:, 1] - xywh[:, 3] / 2, xywh[:, 2], xywh[:, 3]], axis=1)
        dnn: Any = cv2.dnn  # OpenCV's stubs want lists; it takes arrays without a copy
        if self.agnostic:
            kept = dnn.NMSBoxes(tl, scores, self.threshold, self.iou, top_k=self.max_det)
        else:
            kept = dnn.NMSBoxesBatched(tl, scores, cls, self.threshold, self.iou, top_k=self.max_det)
        idx = np.asarray(kept, dtype=np.int64).reshape(-1)[: self.max_det]
        boxes = np.concatenate([tl[idx, :2], tl[idx, :2] + tl[idx, 2:]], axis=1)
        return _finish(boxes, scores[idx], cls[idx], transform, src_hw)
