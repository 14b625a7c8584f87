"""Building blocks shared by the models: conv-BN-ReLU, depthwise-separable conv, inverted residual.

All keep the spatial size unless ``stride`` is 2 (then H, W halve, rounding up).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """k x k conv (groups for depthwise), batch norm, optional ReLU: [B, cin, H, W] -> [B, cout, H/s, W/s]."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DSConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, each with BN and ReLU (Fast-SCNN's DSConv)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(ConvBNReLU(cin, cin, 3, stride, groups=cin), ConvBNReLU(cin, cout, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand (x t), depthwise 3x3, 1x1 project (linear);
    the input is added back when stride is 1 and channels match."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            ConvBNReLU(cin, hidden, 1),
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            ConvBNReLU(hidden, cout, 1, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def stage(cin: int, cout: int, n: int, stride: int, expand: int = 6) -> nn.Sequential:
    """``n`` inverted residuals, the first with ``stride``."""
    return nn.Sequential(*(InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expand)
                           for i in range(n)))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
