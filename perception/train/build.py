"""Models from configs and checkpoints, and the meta.json entries an exported bundle needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from edgepilot.perception.classes import DETECTION, SEGMENTATION
from edgepilot.perception.models.centernet import CenterNet, CenterNetConfig, decoder_meta
from edgepilot.perception.models.fast_scnn import FastSCNN, FastSCNNConfig
from edgepilot.perception.preprocess import PREPROCESS
from edgepilot.perception.train import checkpoint
from edgepilot.perception.train.config import DetConfig, SegConfig, TrainConfig, from_dict
from edgepilot.runtime.errors import EdgepilotError


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """A freshly initialised model for ``cfg`` (SegConfig: Fast-SCNN; DetConfig: CenterNet)."""
    if isinstance(cfg, SegConfig):
        return FastSCNN(FastSCNNConfig(num_classes=SEGMENTATION.num_classes, head_stride=cfg.head_stride,
                                        dense_convs=cfg.dense_convs))
    if isinstance(cfg, DetConfig):
        return CenterNet(CenterNetConfig(num_classes=DETECTION.num_classes, neck=cfg.neck, head=cfg.head))
    raise EdgepilotError(f"no model for config {type(cfg).__name__}", exit_code=2)


def load_model(path: str | Path, task: str | None = None) -> tuple[torch.nn.Module, TrainConfig]:
    """(model in eval mode on the CPU, its training config) from ``best.pt`` or ``last.pt``."""
    ck = checkpoint.load(path)
    if task is not None and ck.get("task") != task:
        raise EdgepilotError(f"{path} is a {ck.get('task')!r} checkpoint, not {task!r}", exit_code=2)
    cfg = from_dict(str(ck["task"]), json.loads(ck["config"]))
    model = build_model(cfg)
    model.load_state_dict(ck["model"])
    return model.eval(), cfg


def bundle_meta(cfg: TrainConfig, *, argmax: bool = False, score_threshold: float = 0.3) -> dict[str, Any]:
    """What only training knows of a bundle's meta.json: name, task, preprocess, decoder,
    classes, palette, output names (export fills in shapes, opset, files and hashes).

    ``argmax`` (segmentation): the graph ends in an argmax to uint8 class ids, as
    ``export_bundle(..., argmax=True)`` builds it.
    """
    if isinstance(cfg, SegConfig):
        out = "class_ids" if argmax else "logits"
        return {"name": "fast-scnn", "task": "segmentation", "preprocess": PREPROCESS,
                "decoder": {"type": out, "output": out}, "classes": list(SEGMENTATION.names),
                "palette": SEGMENTATION.palette.tolist(), "outputs": [{"name": out}],
                "source": {"trained": True}}
    if isinstance(cfg, DetConfig):
        return {"name": "centernet", "task": "detection", "preprocess": PREPROCESS,
                "decoder": decoder_meta(score_threshold, cfg.max_detections), "classes": list(DETECTION.names),
                "palette": DETECTION.palette.tolist(),
                "outputs": [{"name": n} for n in ("heatmap", "size", "offset")], "source": {"trained": True}}
    raise EdgepilotError(f"no bundle meta for config {type(cfg).__name__}", exit_code=2)
