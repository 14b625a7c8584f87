"""Segmentation: training task, ``train_seg`` and ``evaluate_seg``.

The loss is cross-entropy at the label resolution (the model's logits are full
resolution) with online hard example mining; mIoU is measured at the dataset's
own label resolution: logits at the network input size are resized bilinearly to
the labels before the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgepilot.perception.classes import IGNORE, SEGMENTATION
from edgepilot.perception.data.datasets import DatagenDataset, FrameDataset, Sample
from edgepilot.perception.metrics.segmentation import ConfusionMatrix
from edgepilot.perception.preprocess import to_input
from edgepilot.perception.train.build import build_model, load_model
from edgepilot.perception.train.config import SegConfig
from edgepilot.perception.train.eval_data import batches, eval_dataset, seed_everything
from edgepilot.perception.train.loop import Batch, fit, resolve_device
from edgepilot.runtime.errors import EdgepilotError


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, threshold: float, min_kept: float) -> torch.Tensor:
    """Mean cross-entropy of the pixels above ``threshold`` nats, or of the hardest ``min_kept``
    share of labelled pixels when fewer are; plain mean cross-entropy when ``threshold`` <= 0."""
    loss = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none")  # [B, H, W]
    valid = loss[target != IGNORE]
    if valid.numel() == 0:
        return logits.sum() * 0.0
    if threshold <= 0:
        return valid.mean()
    hard = valid[valid > threshold]
    n_min = max(1, int(min_kept * valid.numel()))
    if hard.numel() < n_min:
        hard = valid.topk(n_min).values
    return hard.mean()


class SegTask:
    """Fast-SCNN on datagen folders (``cfg.data`` train split; val: ``cfg.val_data`` or the val split)."""

    name, metric = "seg", "miou"

    def __init__(self, cfg: SegConfig, train_set: FrameDataset | None = None,
                 val_set: FrameDataset | None = None) -> None:
        self.cfg = cfg
        self.model = build_model(cfg)
        self.train_set: FrameDataset = train_set if train_set is not None else DatagenDataset(
            cfg.data, "train", (cfg.height, cfg.width), cfg.augment, cfg.seed)
        self.val_set: FrameDataset = val_set if val_set is not None else eval_dataset(
            cfg.val_data, cfg.data)

    def collate(self, samples: list[Sample]) -> Batch:
        if any(s.labels is None for s in samples):
            raise EdgepilotError("segmentation training needs label PNGs for every frame", exit_code=2)
        return {"image": torch.from_numpy(np.stack([s.image for s in samples])),
                "labels": torch.from_numpy(np.stack([s.labels for s in samples if s.labels is not None]))}

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(to_input(batch["image"]))
        loss = ohem_cross_entropy(logits, batch["labels"].long(), self.cfg.ohem_threshold, self.cfg.ohem_min_kept)
        return loss, {"ce": float(loss.detach())}

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        return segmentation_scores(model, self.val_set, (self.cfg.height, self.cfg.width), device,
                                   limit=self.cfg.val_limit)


def segmentation_scores(model: torch.nn.Module, dataset: FrameDataset, size: tuple[int, int] | None,
                        device: torch.device, batch_size: int = 16, limit: int = 0) -> dict[str, Any]:
    """mIoU etc. (``ConfusionMatrix.scores``) of ``model`` run at ``size`` (H, W; None: each frame's
    own) over ``dataset`` frames at their own resolution."""
    model.eval()
    cm = ConfusionMatrix(SEGMENTATION.num_classes)
    n = 0
    with torch.inference_mode():
        for samples, x in batches(dataset, size, device, batch_size, limit):
            labels = torch.from_numpy(np.stack([s.labels for s in samples if s.labels is not None]))
            if labels.shape[0] != len(samples):
                raise EdgepilotError("segmentation evaluation needs label PNGs for every frame", exit_code=2)
            logits = model(x)
            if logits.shape[2:] != labels.shape[1:]:
                logits = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
            cm.update(logits.argmax(1).cpu(), labels)
            n += len(samples)
    return {**cm.scores(SEGMENTATION.names), "images": n}


def train_seg(cfg: SegConfig, train_set: FrameDataset | None = None,
              val_set: FrameDataset | None = None) -> dict[str, Any]:
    """Train the segmentation net as ``cfg`` says; see ``loop.fit`` for the outputs and the summary.

    Data: ``cfg.data``'s train split and ``cfg.val_data`` (or the val split), unless datasets
    are given (e.g. a ``FolderDataset`` of your own images; ``train_set`` should produce
    samples at the network size, with ``size`` and ``augment`` set; ``val_set`` at their own size).
    """
    seed_everything(cfg.seed)
    return fit(SegTask(cfg, train_set, val_set), cfg)


def evaluate_seg(model_or_ckpt: torch.nn.Module | str | Path, data: str | Path | Sequence[str | Path] | FrameDataset,
                 split: str = "val", *, size: tuple[int, int] | None = None, batch_size: int = 16,
                 device: str = "auto", limit: int = 0) -> dict[str, Any]:
    """Segmentation scores of a model (or a ``best.pt``/``last.pt``) on datagen folders' ``split``
    (or any FrameDataset), at the labels' resolution.

    Returns {"miou", "per_class_iou" (class -> IoU, None if absent), "pixel_accuracy",
    "classes_present", "pixels", "images", "input_size"}. ``size`` (H, W) is the network input:
    by default the checkpoint's training size, or each frame's own for a bare module.
    """
    if isinstance(model_or_ckpt, torch.nn.Module):
        model = model_or_ckpt
    else:
        model, cfg = load_model(model_or_ckpt, "seg")
        size = size or (cfg.height, cfg.width)
    dev = resolve_device(device)
    dataset = data if isinstance(data, FrameDataset) else DatagenDataset(data, split)
    scores = segmentation_scores(model.to(dev), dataset, size, dev, batch_size, limit)
    return {**scores, "input_size": list(size) if size else None}
