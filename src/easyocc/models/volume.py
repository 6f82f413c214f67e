"""Where the cells of a model volume lie, and reading a volume at points (the Occ3D voxel centres among them).

A model volume is a tensor (B, C, X, Y, Z) indexed [x, y, z] in the keyframe's ego frame. Its cells are described
by a ``VolumeGrid``: an *inner* regular grid of ``voxel_size`` cells over a box (the Occ3D box by default) and,
optionally, ``outer`` cells on each side of each axis that compress the unbounded space beyond the box: OccNeRF's
contracted coordinates (``utils/vox.py``: ``world2contracted`` / ``contracted2world``).

Unit coordinates: every point maps to ``u`` in [-1, 1]^3 with cell i of an axis with n cells spanning
[-1 + 2i/n, -1 + 2(i+1)/n], i.e. ``grid_sample(align_corners=False)``'s convention (OccNeRF uses
``align_corners=True`` with cell *centres* at the ends; easyocc keeps cells whole, so the inner cells are exactly the
box's voxels). Per axis, with r = inner cells / all cells and t = r / (1 - r):

    s = t * (2 (x - lower) / (upper - lower) - 1)          (the box is |s| <= t)
    c = s                                  if |s| <= t
    c = sign(s) (1 + t - 1 / (|s| + 1 - t))    otherwise     (continuous with a continuous slope at the box face)
    u = c / (1 + t)                                           (the box is |u| <= r; u -> 1 as x -> infinity)

This is OccNeRF's formula; with its ``contracted_ratio`` 0.66667 and 300 x 300 x 24 cells, the inner 200 x 200 x 16
are the 0.4 m Occ3D voxels and the 50 / 50 / 4 outer cells per side hold everything beyond. The cell size grows as
``voxel_size * (1 + e / L)^2`` at a distance e beyond the face, L = (upper - lower) / (2 t) (20 m for x and y,
1.6 m for z with OccNeRF's settings). An axis without outer cells maps linearly, u = 2 (x - lower) / (upper - lower) - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from easyocc.occ3d import OCC3D_GRID, VoxelGrid


@dataclass(frozen=True)
class VolumeGrid:
    """The cells of a model volume: ``voxel_size`` cells over the box ``lower``..``upper`` plus ``outer[a]``
    contracted cells on each side of axis a (0 everywhere: a plain box grid, the volume ends at the box)."""

    voxel_size: float = OCC3D_GRID.voxel_size
    outer: tuple[int, int, int] = (0, 0, 0)
    lower: tuple[float, float, float] = OCC3D_GRID.lower
    upper: tuple[float, float, float] = OCC3D_GRID.upper

    def __post_init__(self):
        if len(self.outer) != 3 or any(o < 0 for o in self.outer):
            raise ValueError(f"outer must be three cell counts >= 0, got {self.outer}")
        extent = np.subtract(self.upper, self.lower) / self.voxel_size
        if np.any(np.abs(extent - np.round(extent)) > 1e-6) or np.any(np.round(extent) < 1):
            raise ValueError(f"the box {self.lower}..{self.upper} is not a whole number of {self.voxel_size} m cells")

    @classmethod
    def box(cls, grid: VoxelGrid) -> "VolumeGrid":
        """The plain grid of an ``occ3d.VoxelGrid``: its cells, nothing beyond."""
        return cls(grid.voxel_size, (0, 0, 0), tuple(grid.lower), tuple(grid.upper))

    @classmethod
    def contracted(cls, voxel_size: float, ratio: float, box: VoxelGrid = OCC3D_GRID) -> "VolumeGrid":
        """``voxel_size`` cells over ``box`` taking the fraction ``ratio`` of each axis's cells (OccNeRF's
        ``contracted_ratio``); the rest, split evenly between the two sides, compress the space beyond. The outer
        count per side is rounded, so the actual fraction (``ratios``) may differ slightly where it is not exact."""
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"the contraction ratio must be in (0, 1), got {ratio}")
        inner = np.round((np.subtract(box.upper, box.lower)) / voxel_size)
        outer = tuple(max(1, int(round(n * (1.0 / ratio - 1.0) / 2.0))) for n in inner)
        return cls(voxel_size, outer, tuple(box.lower), tuple(box.upper))  # type: ignore[arg-type]

    @property
    def inner_shape(self) -> tuple[int, int, int]:
        return tuple(int(round((u - lo) / self.voxel_size)) for lo, u in zip(self.lower, self.upper))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(n + 2 * o for n, o in zip(self.inner_shape, self.outer))  # type: ignore[return-value]

    @property
    def is_contracted(self) -> bool:
        return any(self.outer)

    @property
    def ratios(self) -> np.ndarray:
        """(3,) float64: the fraction of each axis's cells inside the box (1 for a plain axis)."""
        return np.asarray(self.inner_shape, dtype=np.float64) / np.asarray(self.shape, dtype=np.float64)

    @property
    def is_occ3d_aligned(self) -> bool:
        """Whether the inner cells are exactly the Occ3D voxels (then Occ3D logits are a slice of the volume)."""
        return (self.voxel_size == OCC3D_GRID.voxel_size and tuple(self.lower) == tuple(OCC3D_GRID.lower)
                and tuple(self.upper) == tuple(OCC3D_GRID.upper))

    def _axis_constants(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """lower, upper, t (1 on plain axes, unused there) and the contracted-axis mask, each (3,) like ``like``."""
        lower = torch.tensor(self.lower, dtype=like.dtype, device=like.device)
        upper = torch.tensor(self.upper, dtype=like.dtype, device=like.device)
        ratios = self.ratios
        contracted = torch.tensor([o > 0 for o in self.outer], device=like.device)
        t = torch.tensor(np.where(ratios < 1.0, ratios / np.maximum(1.0 - ratios, 1e-12), 1.0), dtype=like.dtype,
                         device=like.device)
        return lower, upper, t, contracted

    def world_to_unit(self, points: torch.Tensor) -> torch.Tensor:
        """points: (..., 3) metres in the ego frame -> (..., 3) unit coordinates (module docstring), same dtype.

        Points beyond the box map outside [-1, 1] on plain axes and into the outer cells on contracted ones.
        """
        lower, upper, t, contracted = self._axis_constants(points)
        if not self.is_contracted:
            return 2 * (points - lower) / (upper - lower) - 1
        # s = t (2 (x - lower) / (upper - lower) - 1) as one multiply-add (rays sample millions of points).
        slope = 2 * t / (upper - lower)
        s = torch.addcmul(-lower * slope - t, points, slope)
        inner = torch.clamp(s, -t, t)
        excess = s - inner  # sign(s) (|s| - t) beyond the box, 0 inside
        unit = (inner + excess / (excess.abs() + 1)) / (1 + t)  # = sign(s) (1 + t - 1 / (|s| + 1 - t)) / (1 + t)
        if bool(contracted.all()):
            return unit
        return torch.where(contracted, unit, s / t)

    def unit_to_world(self, unit: torch.Tensor) -> torch.Tensor:
        """The inverse of ``world_to_unit``: (..., 3) unit coordinates (|u| < 1 on contracted axes) -> metres."""
        lower, upper, t, contracted = self._axis_constants(unit)
        linear = lower + (unit + 1) / 2 * (upper - lower)
        if not self.is_contracted:
            return linear
        c = unit * (1 + t)
        magnitude = c.abs()
        s = torch.where(magnitude <= t, c, c.sign() * (t - 1 + 1 / (1 + t - magnitude).clamp_min(1e-12)))
        return torch.where(contracted, lower + (s / t + 1) / 2 * (upper - lower), linear)

    def unit_centers(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Cell centres in unit coordinates, (X, Y, Z, 3)."""
        axes = [(2 * torch.arange(n, dtype=torch.float64) + 1) / n - 1 for n in self.shape]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).to(dtype)

    def centers(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Cell centres in metres, (X, Y, Z, 3), computed in float64. On a plain grid they equal
        ``occ3d.VoxelGrid.centers`` bit for bit; outer cells' centres lie far out (OccNeRF's 300 x 300 x 24 grid:
        up to ~2 km in x and y, ~17 m up)."""
        if not self.is_contracted:
            axes = [(torch.arange(n, dtype=torch.float64) + 0.5) * self.voxel_size + lo
                    for n, lo in zip(self.shape, self.lower)]
            return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).to(dtype)
        return self.unit_to_world(self.unit_centers()).to(dtype)


def sample_volume(volume: torch.Tensor, grid: VolumeGrid, points: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of a model volume at points.

    volume: (B, C, X, Y, Z) on ``grid``; points: (P, 3) or (B, P, 3) metres in the ego frame.
    Returns (B, C, P) in the volume's dtype. Points beyond a plain grid read the nearest border cell.
    """
    if volume.shape[-3:] != grid.shape:
        raise ValueError(f"volume {tuple(volume.shape)} does not have the grid's shape {grid.shape}")
    return sample_volume_unit(volume, grid.world_to_unit(points.to(torch.promote_types(points.dtype, torch.float32))))


def sample_volume_unit(volume: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """Trilinear samples at unit coordinates: volume (B, C, X, Y, Z), unit (P, 3) or (B, P, 3) -> (B, C, P).
    Outside [-1, 1] the border cells are read."""
    unit = unit.expand(volume.shape[0], -1, -1) if unit.ndim == 2 else unit
    # grid_sample's last axis is (W, H, D) = (Z, Y, X) of this layout.
    locations = unit.flip(-1).to(volume.dtype)[:, None, None]
    return F.grid_sample(volume, locations, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0, 0]


def occ3d_logits(volume: torch.Tensor, grid: VolumeGrid) -> torch.Tensor:
    """The volume read at the 200 x 200 x 16 Occ3D voxel centres: (B, C, X, Y, Z) -> (B, C, 200, 200, 16).

    OccNeRF's eval branch (``VolumeDecoder.forward``, ``not is_train``) samples its volume trilinearly at the Occ3D
    centres; this does the same, exactly:
    - inner cells that are the Occ3D voxels (plain 200 x 200 x 16, or contracted around it such as OccNeRF's
      300 x 300 x 24): the inner block itself, no interpolation;
    - a coarser or finer plain grid of the Occ3D box: trilinear upsampling (``F.interpolate``, align_corners=False:
      the same samples as below, computed faster);
    - anything else: trilinear ``sample_volume`` at the centres.
    """
    target = OCC3D_GRID.shape
    if grid.is_occ3d_aligned:
        (ox, oy, oz), (nx, ny, nz) = grid.outer, grid.inner_shape
        return volume[:, :, ox : ox + nx, oy : oy + ny, oz : oz + nz]
    if not grid.is_contracted and tuple(grid.lower) == tuple(OCC3D_GRID.lower) \
            and tuple(grid.upper) == tuple(OCC3D_GRID.upper):
        return F.interpolate(volume, size=target, mode="trilinear", align_corners=False)
    centers = torch.from_numpy(OCC3D_GRID.centers(np.float64).reshape(-1, 3)).to(volume.device)
    return sample_volume(volume, grid, centers).unflatten(-1, target)
