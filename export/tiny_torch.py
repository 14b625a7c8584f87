"""A tiny untrained segmentation net in plain torch, exported to a bundle with both
``model.onnx`` and ``model.pt2`` so the ort and torch backends time the same network.

Same shape as ``export.tiny``'s graph: two stride-2 3x3 convs, a 3x3 conv, a 1x1
head and a 4x nearest upsample; weights are random from a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgepilot.export.tiny import PREPROCESS, SEG_CLASSES, SEG_PALETTE
from edgepilot.export.torch_export import export_bundle
from edgepilot.runtime.errors import require


def tiny_segnet(width: int = 16, num_classes: int = len(SEG_CLASSES), seed: int = 0) -> Any:
    """image [1, 3, H, W] -> logits [1, C, H, W] (H, W multiples of 4)."""
    torch: Any = require("torch", "torch", "building torch models")
    nn = torch.nn
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),  # -> [1, w, H/2, W/2]
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),  # -> [1, w, H/4, W/4]
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, num_classes, 1),  # -> [1, C, H/4, W/4]
        nn.Upsample(scale_factor=4, mode="nearest"),  # -> [1, C, H, W]
    )


def torch_segmentation_bundle(folder: str | Path, hw: tuple[int, int] = (128, 256), width: int = 16,
                              argmax: bool = True, dynamic_hw: bool = True, seed: int = 0) -> Path:
    """Export :func:`tiny_segnet` to a bundle (ONNX + torch program); untrained."""
    torch: Any = require("torch", "torch", "building torch models")
    meta = {"name": "tiny-seg-torch", "task": "segmentation", "preprocess": PREPROCESS,
            "decoder": {"type": "class_ids" if argmax else "logits"},
            "classes": SEG_CLASSES, "palette": SEG_PALETTE, "source": {"trained": False}}
    example = torch.zeros(1, 3, *hw)
    return export_bundle(tiny_segnet(width, seed=seed), example, folder, meta, argmax=argmax, dynamic_hw=dynamic_hw)
