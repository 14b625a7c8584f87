"""Detection: training task, ``train_det`` and ``evaluate_det``.

CenterNet targets are built per sample at the network input size (stride 4);
AP comes from pycocotools on the dataset's own resolution, detections decoded
with the runtime decoder's rule (3x3 peaks, top ``max_detections``) and scaled
back from the network input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgepilot.perception.classes import DETECTION
from edgepilot.perception.data.datasets import DatagenDataset, FrameDataset, Sample
from edgepilot.perception.metrics.detection import FrameBoxes, coco_ap
from edgepilot.perception.models.centernet import STRIDE, decode
from edgepilot.perception.preprocess import to_input
from edgepilot.perception.train.build import build_model, load_model
from edgepilot.perception.train.centernet_targets import centernet_loss, encode
from edgepilot.perception.train.config import DetConfig
from edgepilot.perception.train.eval_data import batches, eval_dataset, seed_everything
from edgepilot.perception.train.loop import Batch, fit, resolve_device


class DetTask:
    """CenterNet on datagen folders' vehicle boxes (label PNGs are not read)."""

    name, metric = "det", "map50"

    def __init__(self, cfg: DetConfig, train_set: FrameDataset | None = None,
                 val_set: FrameDataset | None = None) -> None:
        self.cfg = cfg
        self.model = build_model(cfg)
        self.train_set: FrameDataset = train_set if train_set is not None else DatagenDataset(
            cfg.data, "train", (cfg.height, cfg.width), cfg.augment, cfg.seed, labels=False)
        self.val_set: FrameDataset = val_set if val_set is not None else eval_dataset(
            cfg.val_data, cfg.data, labels=False)

    def collate(self, samples: list[Sample]) -> Batch:
        hw = samples[0].image.shape[:2]
        targets = [encode(s.boxes, s.classes, s.crowd, hw, DETECTION.num_classes, STRIDE, self.cfg.max_boxes)
                   for s in samples]
        out = {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}
        out["image"] = torch.from_numpy(np.stack([s.image for s in samples]))
        return out

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        raw = model.raw(to_input(batch["image"]))  # type: ignore[operator]
        return centernet_loss(raw, batch, self.cfg.size_weight, self.cfg.offset_weight)

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        c = self.cfg
        return detection_scores(model, self.val_set, (c.height, c.width), device, min_size=c.min_size,
                                score_threshold=c.score_threshold, max_detections=c.max_detections,
                                limit=c.val_limit)


def detection_scores(model: torch.nn.Module, dataset: FrameDataset, size: tuple[int, int] | None,
                     device: torch.device, *, min_size: float, score_threshold: float = 0.01,
                     max_detections: int = 100, batch_size: int = 16, limit: int = 0) -> dict[str, Any]:
    """COCO AP (``coco_ap``) of ``model`` run at ``size`` (None: each frame's own) over ``dataset``."""
    model.eval()
    frames: list[FrameBoxes] = []
    with torch.inference_mode():
        for samples, x in batches(dataset, size, device, batch_size, limit):
            heatmap, box_size, offset = model(x)
            dets = decode(heatmap, box_size, offset, max_detections, score_threshold)
            in_h, in_w = x.shape[2:]
            for s, (boxes, scores, cls) in zip(samples, dets, strict=True):
                h, w = s.image.shape[:2]
                scale = np.array([w / in_w, h / in_h, w / in_w, h / in_h], np.float32)
                frames.append(FrameBoxes(h, w, s.boxes, s.classes, s.crowd, boxes.float().cpu().numpy() * scale,
                                         scores.float().cpu().numpy(), cls.cpu().numpy()))
    return coco_ap(frames, DETECTION.names, min_size)


def train_det(cfg: DetConfig, train_set: FrameDataset | None = None,
              val_set: FrameDataset | None = None) -> dict[str, Any]:
    """Train the detector as ``cfg`` says; see ``loop.fit`` for the outputs and the summary.

    Data: ``cfg.data``'s train split and ``cfg.val_data`` (or the val split), unless datasets
    are given (e.g. a ``FolderDataset`` of your own images; ``train_set`` should produce
    samples at the network size, with ``size`` and ``augment`` set; ``val_set`` at their own size).
    """
    seed_everything(cfg.seed)
    return fit(DetTask(cfg, train_set, val_set), cfg)


def evaluate_det(model_or_ckpt: torch.nn.Module | str | Path, data: str | Path | Sequence[str | Path] | FrameDataset,
                 split: str = "val", *, size: tuple[int, int] | None = None, min_size: float | None = None,
                 score_threshold: float = 0.01, max_detections: int = 100, batch_size: int = 16,
                 device: str = "auto", limit: int = 0) -> dict[str, Any]:
    """Vehicle AP of a model (or a ``best.pt``/``last.pt``) on datagen folders' ``split`` (or any
    FrameDataset), boxes at the dataset's resolution.

    Returns {"map50", "map50_95", "per_class_ap", "per_class_ap50_95", "map50_all", "map50_95_all",
    "images", "gt_boxes", "detections", "input_size", "min_size"}. ``min_size`` (fraction of the image
    height; default the checkpoint's, else DetConfig's) sets the smallest box that counts.
    """
    if isinstance(model_or_ckpt, torch.nn.Module):
        model, cfg = model_or_ckpt, DetConfig()
    else:
        loaded, trained = load_model(model_or_ckpt, "det")
        assert isinstance(trained, DetConfig)
        model, cfg = loaded, trained
        size = size or (cfg.height, cfg.width)
    ms = cfg.min_size if min_size is None else min_size
    dev = resolve_device(device)
    dataset = data if isinstance(data, FrameDataset) else DatagenDataset(data, split, labels=False)
    scores = detection_scores(model.to(dev), dataset, size, dev, min_size=ms, score_threshold=score_threshold,
                              max_detections=max_detections, batch_size=batch_size, limit=limit)
    return {**scores, "input_size": list(size) if size else None, "min_size": ms}
