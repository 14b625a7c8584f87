"""How images enter the models: RGB, NCHW, ``(x / 255 - mean) / std`` with ImageNet statistics.

``PREPROCESS`` is the same rule in a bundle's meta.json terms, so the runtime's
preprocessing feeds an exported model exactly what it was trained on.
"""

from __future__ import annotations

import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESS = {"layout": "NCHW", "color": "RGB", "resize": "stretch", "scale": 1 / 255,
              "mean": list(MEAN), "std": list(STD)}


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [B, H, W, 3] (any device) -> normalised float32 [B, 3, H, W] on the same device."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)
