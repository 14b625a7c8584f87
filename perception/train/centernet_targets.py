"""CenterNet training targets and losses.

Targets per image at stride ``s`` (h = H / s, w = W / s cells):
  heatmap [C, h, w]   a Gaussian per box at its centre cell (peak exactly 1), radius from
                      CornerNet's rule for IoU 0.7 with the box
  weight  [h, w]      1, and 0 over crowd boxes (no loss there either way)
  index   [K]         flat cell index y * w + x of each box centre (K = max boxes, padded)
  log_size [K, 2]     log of the box width, height in cells
  offset  [K, 2]      centre minus its cell, in cells, in [0, 1)
  mask    [K]         1 for real entries
Losses: the penalty-reduced focal loss of CenterNet on the heatmap logits
(alpha 2, beta 4, normalised by the number of boxes), L1 on log size and offset.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius (in cells) as CenterNet computes it, quirks included: the smallest of
    three cases of corners shifted so that IoU with the box stays near ``min_overlap``."""
    b1, c1 = h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _draw(heat: np.ndarray, cx: int, cy: int, radius: int) -> None:
    """Max-merge a Gaussian (sigma = diameter / 6) centred on cell (cx, cy) into ``heat`` (h, w)."""
    h, w = heat.shape
    d = 2 * radius + 1
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * (d / 6) ** 2))
    left, right, top, bottom = min(cx, radius), min(w - cx, radius + 1), min(cy, radius), min(h - cy, radius + 1)
    patch = heat[cy - top:cy + bottom, cx - left:cx + right]
    np.maximum(patch, g[radius - top:radius + bottom, radius - left:radius + right], out=patch)


def encode(boxes: np.ndarray, classes: np.ndarray, crowd: np.ndarray, hw: tuple[int, int], num_classes: int,
           stride: int, max_boxes: int) -> dict[str, np.ndarray]:
    """Targets for one image of input size ``hw`` (H, W); boxes (N, 4) xyxy input pixels."""
    h, w = hw[0] // stride, hw[1] // stride
    heat = np.zeros((num_classes, h, w), np.float32)
    weight = np.ones((h, w), np.float32)
    index = np.zeros(max_boxes, np.int64)
    log_size = np.zeros((max_boxes, 2), np.float32)
    offset = np.zeros((max_boxes, 2), np.float32)
    mask = np.zeros(max_boxes, np.float32)
    k = 0
    for b, c, is_crowd in zip(boxes / stride, classes, crowd, strict=True):
        if is_crowd:
            x0, y0 = int(np.floor(b[0])), int(np.floor(b[1]))
            weight[max(y0, 0):int(np.ceil(b[3])), max(x0, 0):int(np.ceil(b[2]))] = 0.0
            continue
        bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
        if bw <= 0 or bh <= 0 or k >= max_boxes:
            continue
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
        _draw(heat[int(c)], ix, iy, max(0, int(gaussian_radius(math.ceil(bh), math.ceil(bw)))))
        index[k], mask[k] = iy * w + ix, 1.0
        log_size[k] = np.log([bw, bh])
        offset[k] = (cx - ix, cy - iy)
        k += 1
    return {"heatmap": heat, "weight": weight, "index": index, "log_size": log_size, "offset": offset,
            "mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's focal loss from logits [B, C, h, w]; ``weight`` [B, h, w] masks cells out."""
    logits = logits.float()
    p = torch.sigmoid(logits)
    pos = target.eq(1).float()
    neg = (1 - pos) * weight.unsqueeze(1)
    pos_loss = F.logsigmoid(logits) * (1 - p) ** 2 * pos
    neg_loss = F.logsigmoid(-logits) * p ** 2 * (1 - target) ** 4 * neg
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[B, 2, h, w] at flat cells [B, K] -> [B, K, 2]."""
    b, c = x.shape[:2]
    return x.reshape(b, c, -1).gather(2, index.unsqueeze(1).expand(b, c, index.shape[1])).transpose(1, 2)


def centernet_loss(raw: tuple[torch.Tensor, torch.Tensor, torch.Tensor], t: dict[str, torch.Tensor],
                   size_weight: float = 1.0, offset_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts from ``CenterNet.raw`` outputs and batched :func:`encode` targets."""
    logits, log_size, offset = raw
    heat = focal_loss(logits, t["heatmap"], t["weight"])
    m = t["mask"].unsqueeze(2)
    n = m.sum().clamp(min=1.0) * 2
    size = (F.l1_loss(_gather(log_size.float(), t["index"]), t["log_size"], reduction="none") * m).sum() / n
    off = (F.l1_loss(_gather(offset.float(), t["index"]), t["offset"], reduction="none") * m).sum() / n
    total = heat + size_weight * size + offset_weight * off
    return total, {"heatmap": float(heat.detach()), "size": float(size.detach()), "offset": float(off.detach())}
