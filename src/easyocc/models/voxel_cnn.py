"""The 3D CNN: a small U-Net over the lifted voxel volume, ending in per-voxel class logits.

Channels double at each stride-2 level, so the widest layers run where the volume is 8x or 64x smaller, and the
full-resolution volume (200 x 200 x 16 in the paper setting) only sees the narrowest ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3d_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock3d(nn.Module):
    """Two 3x3x3 convolutions with an identity shortcut; shape-preserving (B, C, X, Y, Z)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3d_bn_relu(channels, channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))), inplace=True)


class VoxelUNet(nn.Module):
    """forward(volume (B, in_channels, X, Y, Z)) -> logits (B, num_classes, X, Y, Z).

    Encoder: a stem at full resolution, then ``len(blocks)`` - 1 stride-2 stages doubling the channels, each with
    ``blocks[i]`` residual blocks; decoder: trilinear upsampling, a 1x1x1 projection, the skip added, one residual
    block per level. Any grid size works (odd sizes are upsampled to the skip's exact size). The 1x1x1 projection
    runs at the coarse level, before the upsampling, where it costs 8x less.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, blocks: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        widths = [channels * 2**level for level in range(len(blocks))]
        self.stem = conv3d_bn_relu(in_channels, widths[0])
        self.down = nn.ModuleList()
        for level, count in enumerate(blocks):
            entry = nn.Identity() if level == 0 else conv3d_bn_relu(widths[level - 1], widths[level], stride=2)
            self.down.append(nn.Sequential(entry, *(ResidualBlock3d(widths[level]) for _ in range(count))))
        self.up_projection = nn.ModuleList(
            nn.Sequential(nn.Conv3d(widths[level + 1], widths[level], 1, bias=False), nn.BatchNorm3d(widths[level]))
            for level in range(len(blocks) - 1)
        )
        self.up_block = nn.ModuleList(ResidualBlock3d(widths[level]) for level in range(len(blocks) - 1))
        self.head = nn.Conv3d(widths[0], num_classes, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        x = self.stem(volume)
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for level in reversed(range(len(self.up_projection))):
            skip = skips.pop()
            x = F.interpolate(self.up_projection[level](x), size=skip.shape[-3:], mode="trilinear", align_corners=False)
            x = self.up_block[level](F.relu(skip + x, inplace=True))
        return self.head(x)
