"""mIoU and COCO AP on hand-made cases, and the evaluate_* entry points on generated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgepilot.perception.classes import IGNORE
from edgepilot.perception.metrics.segmentation import ConfusionMatrix

NAMES = ("a", "b", "c")


def test_perfect_segmentation_is_miou_one_and_absent_classes_are_left_out():
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, IGNORE]])
    cm = ConfusionMatrix(3)
    cm.update(labels.clamp(max=1), labels)
    s = cm.scores(NAMES)
    assert s["miou"] == 1.0 and s["per_class_iou"] == {"a": 1.0, "b": 1.0, "c": None}
    assert s["classes_present"] == ["a", "b"] and s["pixels"] == 7


def test_segmentation_iou_by_hand():
    labels = torch.tensor([[0, 0, 0, 1]])
    pred = torch.tensor([[0, 0, 1, 1]])
    cm = ConfusionMatrix(3)
    cm.update(pred, labels)
    s = cm.scores(NAMES)
    assert s["per_class_iou"]["a"] == pytest.approx(2 / 3) and s["per_class_iou"]["b"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2) and s["pixel_accuracy"] == pytest.approx(3 / 4)


def _frame(gt, dets, scores, h=100, w=200, crowd=None):
    from edgepilot.perception.metrics.detection import FrameBoxes

    gt = np.array(gt, np.float32).reshape(-1, 4)
    dets = np.array(dets, np.float32).reshape(-1, 4)
    return FrameBoxes(h, w, gt, np.zeros(len(gt), np.int64), np.zeros(len(gt), bool) if crowd is None else
                      np.array(crowd), dets, np.array(scores, np.float32), np.zeros(len(dets), np.int64))


def test_perfect_detection_is_ap_one():
    pytest.importorskip("pycocotools")
    from edgepilot.perception.metrics.detection import coco_ap

    boxes = [[10, 10, 50, 40], [100, 20, 160, 70]]
    r = coco_ap([_frame(boxes, boxes, [0.9, 0.8]), _frame(boxes[:1], boxes[:1], [0.7])], ["vehicle"])
    assert r["map50"] == pytest.approx(1.0) and r["map50_95"] == pytest.approx(1.0)
    assert r["per_class_ap"] == {"vehicle": pytest.approx(1.0)} and r["gt_boxes"] == 3


def test_false_positives_and_misses_lower_ap():
    pytest.importorskip("pycocotools")
    from edgepilot.perception.metrics.detection import coco_ap

    gt = [[10, 10, 50, 40], [100, 20, 160, 70]]
    worse = coco_ap([_frame(gt, [[120, 80, 150, 95], gt[0]], [0.95, 0.5])], ["vehicle"])  # FP first, one miss
    assert 0.0 < worse["map50"] < 0.6
    assert coco_ap([_frame(gt, [], [])], ["vehicle"])["map50"] == 0.0


def test_small_boxes_are_ignore_regions():
    pytest.importorskip("pycocotools")
    from edgepilot.perception.metrics.detection import coco_ap

    gt = [[10, 10, 50, 40], [150, 50, 152, 51]]  # the second is 2x1 px: below 1/32 of 100 px
    r = coco_ap([_frame(gt, [gt[0], [0, 90, 2, 91]], [0.9, 0.95])], ["vehicle"], min_size=1 / 32)
    assert r["map50"] == pytest.approx(1.0)  # the miss and the tiny false positive do not count
    assert r["map50_all"] < 1.0


def test_evaluate_functions_return_scores_in_range(datagen_dir):
    pytest.importorskip("pycocotools")
    from edgepilot.perception.models.centernet import CenterNet
    from edgepilot.perception.models.fast_scnn import FastSCNN
    from edgepilot.perception.train.det import evaluate_det
    from edgepilot.perception.train.seg import evaluate_seg

    torch.manual_seed(0)
    seg = evaluate_seg(FastSCNN(), datagen_dir, "val", size=(64, 128), device="cpu")
    assert 0.0 <= seg["miou"] <= 1.0 and seg["images"] == 4 and "vehicle" in seg["classes_present"]
    assert all(v is None or 0.0 <= v <= 1.0 for v in seg["per_class_iou"].values())
    det = evaluate_det(CenterNet(), datagen_dir, "val", size=(64, 128), device="cpu")
    for key in ("map50", "map50_95", "map50_all"):
        assert 0.0 <= det[key] <= 1.0
    assert det["images"] == 4 and det["gt_boxes"] > 0
