"""The EasyOcc model: surround images -> ResNet + FPN features -> voxel features by projection -> 3D CNN ->
18 logits per Occ3D voxel, (B, 18, 200, 200, 16) indexed [x, y, z] in the keyframe's ego frame (channel 17 = free).

The parts up to the 3D CNN's output on the lifting grid (``EasyOccModel.volume``) are what a rendering-supervised
model shares (``easyocc.models.rendering.RenderingOccModel`` subclasses this one, so both have the same state-dict
keys).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from easyocc.models.lifting import VoxelLifter
from easyocc.models.neck import FPNNeck
from easyocc.models.resnet import ResNet, load_pretrained
from easyocc.models.volume import VolumeGrid, occ3d_logits
from easyocc.models.voxel_cnn import VoxelUNet
from easyocc.occ3d import NUM_CLASSES, OCC3D_GRID, VoxelGrid

#: ImageNet statistics of torchvision's pretrained ResNets (RGB, images scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelConfig:
    """The network. Channel counts and the lifting resolution are where speed and memory are decided."""

    backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet101"
    #: A local torchvision ResNet state dict (e.g. resnet101-63fe2227.pth), loaded at the start of training.
    pretrained: str | None = None
    #: Keep the backbone's BatchNorm statistics fixed (eval mode) while training, as is usual with pretrained weights.
    freeze_backbone_bn: bool = False
    neck_channels: int = 128
    feature_channels: int = 64
    #: Stride of the feature map the voxels sample: 8 or 4.
    feature_stride: Literal[4, 8] = 8
    #: Lift and run the 3D CNN on a grid of voxels this many times larger than Occ3D's 0.4 m (same extent);
    #: the logits are upsampled trilinearly to 200 x 200 x 16. One of 1, 2, 4, 8.
    lift_downsample: Literal[1, 2, 4, 8] = 1
    volume_channels: int = 32
    #: Residual blocks per 3D U-Net level (the first level at lifting resolution, each next at half of it).
    volume_blocks: tuple[int, ...] = (1, 2, 2)
    #: Voxels closer to a camera's image plane than this (metres) do not sample it.
    min_depth: float = 0.1
    #: OccNeRF's contracted coordinates (``contracted_ratio``, 0.66667 there): the fraction of each axis's lifting
    #: cells that cover the Occ3D box; the others, half on each side, compress the unbounded space beyond it
    #: (0.66667 at full resolution: 300 x 300 x 24 cells, the inner 200 x 200 x 16 the Occ3D voxels). null: the
    #: lifting grid is the box alone (EasyOcc). Rendering sees beyond the box only with it.
    contraction: float | None = None

    def __post_init__(self):
        if not self.volume_blocks or any(b < 1 for b in self.volume_blocks):
            raise ValueError(f"volume_blocks needs at least one level, each of >= 1 block, got {list(self.volume_blocks)}")
        if not 0 < self.min_depth < math.inf:
            raise ValueError(f"min_depth must be a positive number of metres, got {self.min_depth}")
        for name in ("neck_channels", "feature_channels", "volume_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.contraction is not None and not 0.0 < self.contraction < 1.0:
            raise ValueError(f"contraction must be in (0, 1) or null, got {self.contraction}")

    @property
    def lift_grid(self) -> VolumeGrid:
        """The cells the images are lifted into and the 3D CNN runs on."""
        voxel_size = OCC3D_GRID.voxel_size * self.lift_downsample
        if self.contraction is None:
            return VolumeGrid.box(VoxelGrid(OCC3D_GRID.lower, OCC3D_GRID.upper, voxel_size))
        return VolumeGrid.contracted(voxel_size, self.contraction)


class EasyOccModel(nn.Module):
    """forward(images (B, N, 3, H, W) uint8 RGB (or float in [0, 1]), intrinsics (B, N, 3, 3) for those images,
    ego_T_cam (B, N, 4, 4) camera -> keyframe ego) -> logits (B, 18, 200, 200, 16) float32.

    H and W must be multiples of ``feature_stride`` so the feature map covers exactly the image.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = ResNet(config.backbone)
        self.neck = FPNNeck(self.backbone.stage_channels, config.neck_channels, config.feature_channels,
                            config.feature_stride)
        self.lifter = VoxelLifter(config.lift_grid, config.min_depth)
        self.voxel_cnn = VoxelUNet(config.feature_channels + 4, config.volume_channels, NUM_CLASSES,
                                   config.volume_blocks)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The 2D image encoder (ResNet + neck): the group OccNeRF trains at the lower learning rate."""
        return [*self.backbone.parameters(), *self.neck.parameters()]

    def volume_parameters(self) -> list[nn.Parameter]:
        """Everything after the lifting (the 3D CNN)."""
        return list(self.voxel_cnn.parameters())

    def load_pretrained_backbone(self) -> None:
        """Load ``config.pretrained`` (a local torchvision ResNet state dict) into the backbone, when set."""
        if self.config.pretrained:
            load_pretrained(self.backbone, self.config.pretrained)

    def train(self, mode: bool = True) -> "EasyOccModel":
        super().train(mode)
        if mode and self.config.freeze_backbone_bn:
            for module in self.backbone.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, N, 3, H, W) -> features (B, N, C, H / stride, W / stride)."""
        batch, cameras, _, height, width = images.shape
        stride = self.config.feature_stride
        if height % stride or width % stride:
            raise ValueError(f"image size {height}x{width} is not a multiple of the feature stride {stride}")
        x = images.flatten(0, 1)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = (x - self.mean) / self.std
        features = self.neck(self.backbone(x))
        return features.unflatten(0, (batch, cameras))

    def volume(self, images: torch.Tensor, intrinsics: torch.Tensor, ego_T_cam: torch.Tensor) -> torch.Tensor:
        """The 3D CNN's logits on the lifting grid: (B, 18, *config.lift_grid.shape) float32 (channel 17 = free).

        images (B, N, 3, H, W), intrinsics (B, N, 3, 3), ego_T_cam (B, N, 4, 4), as ``forward``.
        """
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must have shape (B, N, 3, H, W), got {tuple(images.shape)}")
        features = self.image_features(images)
        lifted = self.lifter(features, intrinsics, ego_T_cam, tuple(images.shape[-2:]))
        return self.voxel_cnn(lifted).float()

    def logits(self, images: torch.Tensor, intrinsics: torch.Tensor, ego_T_cam: torch.Tensor) -> torch.Tensor:
        """The volume at the Occ3D voxel centres, (B, 18, 200, 200, 16): what prediction writes (every subclass)."""
        return occ3d_logits(self.volume(images, intrinsics, ego_T_cam), self.lifter.grid)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, ego_T_cam: torch.Tensor) -> torch.Tensor:
        return self.logits(images, intrinsics, ego_T_cam)


def build_model(config: ModelConfig, load_weights: bool = True) -> EasyOccModel:
    """The model, with ``config.pretrained`` loaded into the backbone when set and ``load_weights``."""
    model = EasyOccModel(config)
    if load_weights:
        model.load_pretrained_backbone()
    return model
