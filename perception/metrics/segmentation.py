"""Segmentation metrics: a confusion matrix over class ids, per-class IoU and mIoU.

mIoU averages the IoU of the classes present in the ground truth of the
evaluated data (a class no label pixel has is reported as None and left out;
its false positives still lower the IoU of the classes they were taken from).
IGNORE pixels count nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgepilot.perception.classes import IGNORE


class ConfusionMatrix:
    """Counts (ground truth, prediction) pairs; ``mat[t, p]`` pixels of class t predicted p."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` of one shape ([B, H, W]), integer class ids."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and labels {tuple(target.shape)} differ")
        t = target.reshape(-1).to(torch.int64)
        p = pred.reshape(-1).to(torch.int64)
        keep = (t != IGNORE) & (t < self.num_classes)
        n = self.num_classes
        counts = torch.bincount(t[keep] * n + p[keep].clamp(0, n - 1), minlength=n * n)
        self.mat += counts.reshape(n, n).cpu()

    def scores(self, names: Sequence[str]) -> dict[str, Any]:
        """{"miou", "per_class_iou" (name -> IoU or None), "pixel_accuracy", "classes_present", "pixels"}."""
        m = self.mat.to(torch.float64).numpy()
        tp, gt, pr = np.diag(m), m.sum(axis=1), m.sum(axis=0)
        union = gt + pr - tp
        present = gt > 0
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        total = m.sum()
        return {
            "miou": float(iou[present].mean()) if present.any() else 0.0,
            "per_class_iou": {n: (float(iou[k]) if present[k] else None) for k, n in enumerate(names)},
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
            "classes_present": [n for k, n in enumerate(names) if present[k]],
            "pixels": int(total),
        }
