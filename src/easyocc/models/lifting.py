"""Voxel features from image features: project voxel centres into every camera, sample bilinearly, average over
the cameras that see the voxel (in front of the camera, inside its image).

Pixel convention (see ``easyocc.geometry``): pixel centres at integer coordinates, so a point projecting to ``uv``
is sampled at ``(uv + 0.5) / image_size * 2 - 1`` with ``grid_sample(align_corners=False)``; that normalised
coordinate addresses a feature map of any stride covering the same image extent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from easyocc.models.volume import VolumeGrid
from easyocc.occ3d import VoxelGrid


def invert_rigid(A_T_B: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4): ``B_T_A``, exact for rotation + translation."""
    R, t = A_T_B[..., :3, :3], A_T_B[..., :3, 3:]
    inverse = torch.zeros_like(A_T_B)
    inverse[..., :3, :3] = R.transpose(-1, -2)
    inverse[..., :3, 3:] = -R.transpose(-1, -2) @ t
    inverse[..., 3, 3] = 1.0
    return inverse


def project_to_image(
    points: torch.Tensor,
    cam_T_ego: torch.Tensor,
    intrinsics: torch.Tensor,
    image_size: tuple[int, int],
    min_depth: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where ego-frame points land in one camera per batch item.

    points: (P, 3) ego frame; cam_T_ego: (B, 4, 4); intrinsics: (B, 3, 3) for an image of ``image_size`` (H, W).
    Returns grid (B, P, 2) in grid_sample's normalised [-1, 1] (x, y) coordinates (0 where not visible) and
    visible (B, P) bool: depth > ``min_depth`` and the projection inside the image's extent
    (pixel coordinates in [-0.5, W - 0.5] x [-0.5, H - 0.5]).
    """
    height, width = image_size
    points_cam = points @ cam_T_ego[:, :3, :3].transpose(1, 2) + cam_T_ego[:, None, :3, 3]
    depth = points_cam[..., 2]
    in_front = depth > min_depth
    uvw = points_cam @ intrinsics.transpose(1, 2)
    uv = uvw[..., :2] / torch.where(in_front, depth, torch.ones_like(depth))[..., None]
    size = uv.new_tensor([width, height])
    grid = (uv + 0.5) / size * 2 - 1
    visible = in_front & (grid.abs() <= 1).all(dim=-1)
    return torch.where(visible[..., None], grid, torch.zeros_like(grid)), visible


class VoxelLifter(nn.Module):
    """Samples camera features at the centres of ``grid``'s cells: a plain voxel grid (``occ3d.VoxelGrid``), or any
    ``VolumeGrid``, e.g. OccNeRF's contracted grid, whose outer cells sample the images at their far-away centres.

    forward(features (B, N, C, h, w), intrinsics (B, N, 3, 3) of the network's input images of size
    ``image_size`` (H, W), ego_T_cam (B, N, 4, 4) camera -> keyframe ego) ->
    volume (B, C + 4, X, Y, Z): the mean feature over the cameras that see each voxel (0 where none does), then
    the cell centre in the grid's unit coordinates, [-1, 1] per axis (3 channels; on a plain grid the centre
    normalised over the box), and the fraction of cameras that see it, so the 3D CNN knows where along a ray, and
    how well observed, a cell is.
    """

    def __init__(self, grid: VolumeGrid | VoxelGrid, min_depth: float = 0.1):
        super().__init__()
        grid = grid if isinstance(grid, VolumeGrid) else VolumeGrid.box(grid)
        self.grid = grid
        self.min_depth = min_depth
        centers = grid.centers(torch.float32).reshape(-1, 3)
        position = grid.world_to_unit(centers).T.reshape(3, *grid.shape)
        self.register_buffer("centers", centers, persistent=False)
        self.register_buffer("position", position, persistent=False)

    def forward(
        self,
        features: torch.Tensor,
        intrinsics: torch.Tensor,
        ego_T_cam: torch.Tensor,
        image_size: tuple[int, int],
    ) -> torch.Tensor:
        batch, cameras, channels = features.shape[:3]
        if intrinsics.shape != (batch, cameras, 3, 3) or ego_T_cam.shape != (batch, cameras, 4, 4):
            raise ValueError(
                f"intrinsics {tuple(intrinsics.shape)} / ego_T_cam {tuple(ego_T_cam.shape)} do not fit "
                f"features {tuple(features.shape)}: expected ({batch}, {cameras}, 3, 3) and ({batch}, {cameras}, 4, 4)"
            )
        # Geometry and sampling in float32 (float64 if given) even under autocast: half precision would move
        # samples by pixels.
        dtype = torch.promote_types(features.dtype, torch.float32)
        centers = self.centers.to(dtype)
        with torch.autocast(device_type=features.device.type, enabled=False):
            # All cameras projected at once (B * N, P, 2): small next to the features sampled below.
            grids, visible = project_to_image(
                centers, invert_rigid(ego_T_cam.to(dtype)).flatten(0, 1), intrinsics.to(dtype).flatten(0, 1),
                image_size, self.min_depth,
            )
            grids, weights = grids.unflatten(0, (batch, cameras)), visible.to(dtype).unflatten(0, (batch, cameras))
            total = features.new_zeros((batch, channels, centers.shape[0]), dtype=dtype)
            # Sampling one camera at a time: only its (B, C, P) samples live at once (the paper grid: 160 MB
            # rather than 1 GB for six), and autograd keeps just the grids.
            for cam in range(cameras):
                sampled = F.grid_sample(
                    features[:, cam].to(dtype), grids[:, cam, None], mode="bilinear", padding_mode="border",
                    align_corners=False,
                )[:, :, 0]
                total = total + sampled * weights[:, cam, None]
            seen = weights.sum(dim=1)
            mean = total / seen.clamp(min=1.0)[:, None]
        volume = mean.reshape(batch, channels, *self.grid.shape)
        extras = torch.cat(
            [self.position.expand(batch, -1, -1, -1, -1), (seen / cameras).reshape(batch, 1, *self.grid.shape)], dim=1
        )
        return torch.cat([volume, extras.to(volume.dtype)], dim=1)
