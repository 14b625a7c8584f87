"""Detection AP through pycocotools' COCOeval (AP@0.5 and AP@0.5:0.95, 101-point, maxDets 100).

Small boxes: ``min_size`` (a fraction of the image height) sets COCOeval's area
range to sqrt(w * h) >= min_size * H, KITTI's treatment of small objects: ground
truth below it is an ignore region (a detection on it counts neither way) and
unmatched detections below it are left out. ``map50_all`` and ``map50_95_all``
report the same with every box counted.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgepilot.runtime.errors import require


@dataclass(frozen=True, slots=True)
class FrameBoxes:
    """Ground truth and detections of one image, boxes (N, 4) x1, y1, x2, y2 in its pixels."""

    height: int
    width: int
    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    gt_crowd: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


def _coco(frames: Sequence[FrameBoxes], num_classes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for i, f in enumerate(frames, start=1):
        images.append({"id": i, "height": f.height, "width": f.width})
        for b, c, crowd in zip(f.gt_boxes.tolist(), f.gt_classes.tolist(), f.gt_crowd.tolist(), strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": int(crowd)})
        for b, s, c in zip(f.boxes.tolist(), f.scores.tolist(), f.classes.tolist(), strict=True):
            dets.append({"image_id": i, "category_id": int(c) + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                         "score": float(s)})
    cats = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    return {"info": {}, "images": images, "annotations": anns, "categories": cats}, dets


def _evaluate(gt: Any, dt: Any, min_area: float, num_classes: int) -> tuple[float, float, list[float], list[float]]:
    from pycocotools.cocoeval import COCOeval

    ev = COCOeval(gt, dt, "bbox")
    ev.params.areaRng = [[min_area, 1e12]]
    ev.params.areaRngLbl = ["all"]
    ev.evaluate()
    ev.accumulate()
    prec = ev.eval["precision"]  # [T iou, R recall, K class, A area, M maxdets], -1 where no gt

    def ap(p: np.ndarray) -> float:
        p = p[p > -1]
        return float(p.mean()) if p.size else 0.0

    per50 = [ap(prec[0, :, k, 0, -1]) for k in range(num_classes)]
    per = [ap(prec[:, :, k, 0, -1]) for k in range(num_classes)]
    return ap(prec[0, :, :, 0, -1]), ap(prec[:, :, :, 0, -1]), per50, per


def coco_ap(frames: Sequence[FrameBoxes], names: Sequence[str], min_size: float = 0.0) -> dict[str, Any]:
    """{"map50", "map50_95", "per_class_ap" (AP@0.5), "per_class_ap50_95", "map50_all", "map50_95_all",
    "images", "gt_boxes", "detections"}; APs in [0, 1], 0 where nothing to detect."""
    require("pycocotools", "train", "computing COCO AP")
    from pycocotools.coco import COCO

    # one reference height, so the area range means the same in every image (IoU is scale-free)
    ref = max((f.height for f in frames), default=1)
    scaled = [FrameBoxes(ref, int(round(f.width * ref / f.height)), f.gt_boxes * (ref / f.height), f.gt_classes,
                         f.gt_crowd, f.boxes * (ref / f.height), f.scores, f.classes) for f in frames]
    gt_dict, dets = _coco(scaled, len(names))
    out: dict[str, Any] = {"images": len(frames), "gt_boxes": len(gt_dict["annotations"]), "detections": len(dets)}
    if not gt_dict["annotations"] or not dets:
        zero = dict.fromkeys(names, 0.0)
        return {**out, "map50": 0.0, "map50_95": 0.0, "per_class_ap": zero, "per_class_ap50_95": zero,
                "map50_all": 0.0, "map50_95_all": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(dets)
        m50, m, per50, per = _evaluate(gt, dt, (min_size * ref) ** 2, len(names))
        m50_all, m_all, _, _ = _evaluate(gt, dt, 0.0, len(names))
    return {**out, "map50": m50, "map50_95": m, "per_class_ap": dict(zip(names, per50, strict=True)),
            "per_class_ap50_95": dict(zip(names, per, strict=True)), "map50_all": m50_all, "map50_95_all": m_all}
