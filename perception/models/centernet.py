"""A light anchor-free center-heatmap detector (CenterNet, Zhou et al., 2019) at stride 4.

  image [B, 3, H, W]
  -> stem: conv s2, DSConv s2                        -> c4  [B, 24, H/4, W/4]
  -> inverted-residual stages                        -> c8  [B, 32, H/8, W/8]
                                                        c16 [B, 64, H/16, W/16]
                                                        c32 [B, 96, H/32, W/32]
  -> top-down neck (FPN-like: 1x1 laterals, x2 bilinear upsample, add, DSConv)
                                                     -> [B, 64, H/4, W/4]
  -> three heads (dw 3x3, 1x1, ReLU, 1x1):
       heatmap [B, C, H/4, W/4]  sigmoid of the class logits (focal loss on the logits)
       size    [B, 2, H/4, W/4]  box width, height in cells (exp of the regressed log size)
       offset  [B, 2, H/4, W/4]  sub-cell centre offset in cells

``forward`` returns what is exported and what the runtime's ``centernet``
decoder reads (:func:`decoder_meta`); peaks are taken later by a 3x3 max-pool,
so there is no NMS in the graph. ``raw`` returns the logits and log sizes the
losses want. H and W must be multiples of 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgepilot.perception.models.blocks import ConvBNReLU, DSConv, stage

STRIDE = 4
OUTPUT_NAMES = ("heatmap", "size", "offset")
LOG_SIZE_MAX = 6.0  # exp(6) = 403 cells: clamps the exported size, never reached by real boxes


@dataclass(frozen=True, slots=True)
class CenterNetConfig:
    """Hyper-parameters; the defaults give ~0.5 M parameters."""

    num_classes: int = 1
    neck: int = 64  # channels of the stride-4 feature map
    head: int = 64  # hidden channels of each head
    prior: float = 0.05  # initial heatmap probability (CenterNet's bias init)


def _head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(ConvBNReLU(cin, cin, 3, groups=cin), nn.Conv2d(cin, hidden, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, cout, 1))


class CenterNet(nn.Module):
    """image [B, 3, H, W] (normalised RGB) -> (heatmap, size, offset) at stride 4."""

    def __init__(self, cfg: CenterNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CenterNetConfig()
        self.stem = nn.Sequential(ConvBNReLU(3, 16, 3, 2), DSConv(16, 24, 2))
        self.s8 = stage(24, 32, 2, 2, expand=4)
        self.s16 = stage(32, 64, 3, 2, expand=4)
        self.s32 = stage(64, 96, 3, 2, expand=4)
        n = cfg.neck
        self.lateral = nn.ModuleList(ConvBNReLU(c, n, 1, relu=False) for c in (24, 32, 64, 96))
        self.smooth = nn.ModuleList(DSConv(n, n) for _ in range(3))
        self.heatmap = _head(n, cfg.head, cfg.num_classes)
        self.size = _head(n, cfg.head, 2)
        self.offset = _head(n, cfg.head, 2)
        last = self.heatmap[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, -math.log((1 - cfg.prior) / cfg.prior))

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(heatmap logits [B, C, h, w], log size in cells [B, 2, h, w], offset [B, 2, h, w])."""
        c4 = self.stem(x)  # [B, 24, H/4, W/4]
        c8 = self.s8(c4)  # [B, 32, H/8, W/8]
        c16 = self.s16(c8)  # [B, 64, H/16, W/16]
        c32 = self.s32(c16)  # [B, 96, H/32, W/32]
        feats = (c4, c8, c16, c32)
        y = self.lateral[3](c32)
        for k in (2, 1, 0):  # 1/32 -> 1/16 -> 1/8 -> 1/4, [B, neck, ...]
            skip = self.lateral[k](feats[k])
            y = self.smooth[k](F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False) + skip)
        return self.heatmap(y), self.size(y), self.offset(y)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, log_size, offset = self.raw(x)
        return torch.sigmoid(logits), torch.exp(log_size.clamp(max=LOG_SIZE_MAX)), offset


def decoder_meta(score_threshold: float = 0.3, max_detections: int = 100) -> dict[str, Any]:
    """The ``decoder`` entry of a bundle's meta.json for this model's outputs."""
    return {"type": "centernet", "heatmap": "heatmap", "size": "size", "offset": "offset",
            "stride": STRIDE, "size_units": "cells", "heatmap_activation": "none",
            "score_threshold": score_threshold, "max_detections": max_detections}


def decode(heatmap: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, max_detections: int = 100,
           score_threshold: float = 0.01) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``forward`` outputs -> per image (boxes [N, 4] x1 y1 x2 y2 input pixels, scores [N], classes [N]).

    The runtime's ``CenterNetDecoder`` rule, batched on the device: 3x3 local maxima of
    the heatmap at or above ``score_threshold``, the top ``max_detections`` by score.
    """
    b, c, h, w = heatmap.shape
    peaks = heatmap * (heatmap == F.max_pool2d(heatmap, 3, 1, 1)).to(heatmap.dtype)  # [B, C, h, w]
    scores, flat = peaks.reshape(b, -1).topk(min(max_detections, c * h * w))  # [B, K]
    cls, cell = flat // (h * w), flat % (h * w)
    ys, xs = (cell // w).to(heatmap.dtype), (cell % w).to(heatmap.dtype)
    wh = size.reshape(b, 2, -1).gather(2, cell.unsqueeze(1).expand(b, 2, cell.shape[1])) * STRIDE  # [B, 2, K]
    off = offset.reshape(b, 2, -1).gather(2, cell.unsqueeze(1).expand(b, 2, cell.shape[1]))
    cx, cy = (xs + off[:, 0]) * STRIDE, (ys + off[:, 1]) * STRIDE
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], dim=2)
    out = []
    for i in range(b):
        keep = scores[i] >= score_threshold
        out.append((boxes[i][keep], scores[i][keep], cls[i][keep]))
    return out
