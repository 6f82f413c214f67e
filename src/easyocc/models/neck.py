"""An FPN-like neck: the four ResNet stages merged top-down into one feature map at stride 8 (or 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FPNNeck(nn.Module):
    """Lateral 1x1 convolutions, top-down bilinear upsampling and sums, then a 3x3 output block.

    forward([C2, C3, C4, C5]) -> (N, out_channels, ceil(H / stride), ceil(W / stride)), stride 8 or 4.
    """

    def __init__(self, stage_channels: tuple[int, ...], channels: int, out_channels: int, stride: int = 8):
        super().__init__()
        if stride not in (4, 8):
            raise ValueError(f"neck stride must be 4 or 8, got {stride}")
        self.first_stage = 0 if stride == 4 else 1  # C2 has stride 4, C3 stride 8
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in stage_channels[self.first_stage :])
        self.output = nn.Sequential(conv_bn_relu(channels, channels), conv_bn_relu(channels, out_channels))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        features = features[self.first_stage :]
        merged = self.lateral[-1](features[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            # size= rather than scale_factor=2: odd stage sizes (336 / 16 = 21 -> 11) still line up.
            merged = lateral(feature) + F.interpolate(merged, size=feature.shape[-2:], mode="bilinear", align_corners=False)
        return self.output(merged)
