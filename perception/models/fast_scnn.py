"""Fast-SCNN (Poudel et al., 2019) for real-time segmentation, with detail heads at 1/4 and 1/2.

  image [B, 3, H, W]
  -> learning to downsample: conv s2 ([B, 32, H/2, W/2]), DSConv s2 ([B, 48, H/4, W/4]),
     both kept for the detail heads, DSConv s2                 -> [B, 64, H/8, W/8]
  -> global feature extractor: inverted residuals to 1/32 and a pyramid pooling
     module                                                    -> [B, 128, H/32, W/32]
  -> feature fusion: the global branch upsampled x4, added to the 1/8 branch
                                                               -> [B, 128, H/8, W/8]
  -> classifier: two DSConvs at 1/8, then (``head_stride`` 4 or 2) detail fusions with
     the 1/4 and 1/2 features of the first layers             -> [B, 32, H/2, W/2]
  -> 1x1 conv to logits, bilinear upsample                     -> [B, C, H, W]

Why full-resolution logits: the runtime decodes a segmentation output at the
model's own resolution (``SegmentationDecoder``), the loss and mIoU are taken at
the label resolution, and thin classes (poles, lane lines: 1-3 px wide at
128x256) do not survive a 1/8 grid; an argmax exported into the graph keeps the
per-frame cost on the host at one byte per pixel. Why the detail fusions (an
addition to the paper, as BiSeNet's detail path or DeepLabV3+'s decoder):
bilinear upsampling of 1/8 logits places a 1-2 px pole only to within a cell of
8 px; the shallow 1/4 and 1/2 features still know where the edges are. They add
~20k parameters and, at 128x256, cost a third of the training throughput (65 -> 43
images/s on two CPU cores, batch 16); ``head_stride=8`` is the paper's head.

Why ``dense_convs`` (the shipped INT8-first layout, with ``head_stride=4``): onnxruntime's
INT8 CPU kernels (U8S8, VNNI) gain most on dense convolutions and run depthwise 3x3s slower
than FP32 (``benchmarks/profile_int8_ops.py`` on the earlier, paper-layout bundle: all 16 of
its depthwise convs lost in INT8, ``benchmarks/results/int8_ops_seg.json`` at commit 1c80af3),
so a depthwise-separable net gains little from INT8. With it, the two stride-2 downsampling
DSConvs and the 1/4 detail fusion's DSConv are dense 3x3 convs, the design move of the nets
built for int8 accelerators (EfficientNet-EdgeTPU's fused-MBConv, MobileDets): FP32 gets
slower, INT8 faster. ``benchmarks/seg_layouts_int8.py`` times the layouts with random weights
(``benchmarks/results/seg_layouts_int8.json``).

H and W must be multiples of 128: the global branch is at 1/32 and its pyramid
pools into 1, 2 and 4 bins (adaptive pooling exports to ONNX only for sizes that
divide evenly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgepilot.perception.models.blocks import ConvBNReLU, DSConv, stage


@dataclass(frozen=True, slots=True)
class FastSCNNConfig:
    """Hyper-parameters; the defaults are the paper's widths (1.15 M parameters with 11 classes)."""

    num_classes: int = 11
    head_stride: int = 2  # 2: fuse the 1/4 and 1/2 features before the classifier; 4: 1/4 only; 8: the paper's
    pool_bins: tuple[int, ...] = (1, 2, 4)
    dense_convs: bool = False  # dense 3x3s for the downsampling DSConvs and the detail mixes (INT8-first)


class PyramidPooling(nn.Module):
    """Average-pool into b x b bins, 1x1 conv to c/4 each, upsample, concat with the input, 1x1 conv."""

    def __init__(self, channels: int, bins: tuple[int, ...]) -> None:
        super().__init__()
        inner = channels // 4
        self.bins = bins
        self.branches = nn.ModuleList(ConvBNReLU(channels, inner, 1) for _ in bins)
        self.project = ConvBNReLU(channels + inner * len(bins), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pooled = [F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear",
                                align_corners=False) for b, branch in zip(self.bins, self.branches, strict=True)]
        return self.project(torch.cat([x, *pooled], dim=1))  # [B, c + c/4 * n, h, w] -> [B, c, h, w]


class FeatureFusion(nn.Module):
    """Low-resolution global features upsampled onto the 1/8 branch: dwconv + 1x1 each side, add, ReLU."""

    def __init__(self, high: int, low: int, out: int) -> None:
        super().__init__()
        self.low = nn.Sequential(ConvBNReLU(low, low, 3, groups=low), ConvBNReLU(low, out, 1, relu=False))
        self.high = ConvBNReLU(high, out, 1, relu=False)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.interpolate(low, size=high.shape[2:], mode="bilinear", align_corners=False)
        return F.relu(self.high(high) + self.low(low))


class DetailFusion(nn.Module):
    """Coarse features upsampled onto finer, shallow ones: 1x1 conv each side, add, ReLU, DSConv."""

    def __init__(self, coarse: int, fine: int, out: int, dense: bool = False) -> None:
        super().__init__()
        self.coarse = ConvBNReLU(coarse, out, 1, relu=False)
        self.fine = ConvBNReLU(fine, out, 1, relu=False)
        self.mix: nn.Module = ConvBNReLU(out, out, 3) if dense else DSConv(out, out)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(self.coarse(coarse), size=fine.shape[2:], mode="bilinear", align_corners=False)
        return self.mix(F.relu(y + self.fine(fine)))  # [B, out, h_fine, w_fine]


class FastSCNN(nn.Module):
    """image [B, 3, H, W] (normalised RGB) -> logits [B, C, H, W]."""

    def __init__(self, cfg: FastSCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FastSCNNConfig()
        if cfg.head_stride not in (2, 4, 8):
            raise ValueError(f"head_stride must be 2, 4 or 8, got {cfg.head_stride}")
        self.down_half = ConvBNReLU(3, 32, 3, 2)
        self.down_quarter: nn.Module = ConvBNReLU(32, 48, 3, 2) if cfg.dense_convs else DSConv(32, 48, 2)
        self.down_eighth: nn.Module = ConvBNReLU(48, 64, 3, 2) if cfg.dense_convs else DSConv(48, 64, 2)
        self.global_features = nn.Sequential(
            stage(64, 64, 3, 2), stage(64, 96, 3, 2), stage(96, 128, 3, 1),
            PyramidPooling(128, cfg.pool_bins),
        )
        self.fusion = FeatureFusion(64, 128, 128)
        self.classifier = nn.Sequential(DSConv(128, 128), DSConv(128, 128))
        width = {8: 128, 4: 64, 2: 32}[cfg.head_stride]
        dense = cfg.dense_convs
        self.detail4 = DetailFusion(128, 48, 64, dense) if cfg.head_stride <= 4 else None
        self.detail2 = DetailFusion(64, 32, 32, dense) if cfg.head_stride == 2 else None
        self.logits = nn.Conv2d(width, cfg.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        half = self.down_half(x)  # [B, 32, H/2, W/2]
        quarter = self.down_quarter(half)  # [B, 48, H/4, W/4]
        eighth = self.down_eighth(quarter)  # [B, 64, H/8, W/8]
        context = self.global_features(eighth)  # [B, 128, H/32, W/32]
        y = self.classifier(self.fusion(eighth, context))  # [B, 128, H/8, W/8]
        if self.detail4 is not None:
            y = self.detail4(y, quarter)  # [B, 64, H/4, W/4]
        if self.detail2 is not None:
            y = self.detail2(y, half)  # [B, 32, H/2, W/2]
        y = self.logits(y)  # [B, C, H/s, W/s]
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)  # [B, C, H, W]
