"""Ray-query supervision (QueryOcc's idea): the model's logits read at points along the cameras' rays, no voxel labels.

A keyframe's 2D maps (metric z-depth and semantics per camera, the sources ``easyocc labels`` reads) say, for each
pixel, that the space along its ray is empty up to the surface and that the surface, just behind the lifted point,
holds the pixel's class. So, per sampled pixel:

- **free** queries: ``free_per_ray`` points along the ray, one uniform sample in each of as many equal bins between
  ``near`` and ``free_margin + free_margin_relative x distance`` before the surface point (depth errors grow with
  distance, so the margin may too), target 17 (free). A sky pixel (17) is free along its whole ray;
- **occupied** queries: ``occupied_per_ray`` points uniformly within ``behind`` metres behind the surface point,
  target the pixel's class (0..16). Unlabelled pixels (255) give free queries only; pixels without depth nothing.

Every query lies inside the Occ3D box (rays are clipped where they leave it: the volume is scored there).
:func:`sample_ray_queries` draws them (pure, torch, any device); :class:`RayQueryLoss` reads a model volume at them
trilinearly (``models.volume.sample_volume``) and returns a weighted cross-entropy. Queries are drawn per step, so
every pixel's ray is seen over the epochs, not only the voxel centres a label would give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from easyocc.occ3d import FREE, IGNORE, NUM_CLASSES, OCC3D_GRID, VoxelGrid

if TYPE_CHECKING:
    from easyocc.models.volume import VolumeGrid


@dataclass
class RayQueryConfig:
    """How ray queries are drawn and weighed (``loss.ray_queries`` in the training config)."""

    #: Weight of the term in the training objective (0 = off).
    weight: float = 0.0
    #: Pixels drawn per camera image per step (uniformly, with replacement, among all its pixels).
    rays_per_image: int = 1024
    #: Free queries per ray (stratified between ``near`` and the free limit).
    free_per_ray: int = 4
    #: Occupied queries per ray with a surface (behind the lifted point).
    occupied_per_ray: int = 2
    #: Free queries start this far from the camera (metres along the ray).
    near: float = 0.5
    #: Free queries stop this far before the surface point: metres plus a share of the ray's distance.
    free_margin: float = 0.4
    free_margin_relative: float = 0.05
    #: Occupied queries lie within this many metres behind the surface point.
    behind: float = 0.3
    #: Weights of the free and the occupied queries in the mean.
    free_weight: float = 1.0
    occupied_weight: float = 1.0
    #: Class weights of the occupied queries: none, or the pseudo loss's 1/sqrt(frequency) of the training labels.
    class_weighting: Literal["none", "labels"] = "none"

    def __post_init__(self):
        counts = (self.rays_per_image, self.free_per_ray, self.occupied_per_ray)
        if self.rays_per_image < 1 or min(counts[1:]) < 0 or sum(counts[1:]) == 0:
            raise ValueError("ray_queries: rays_per_image must be >= 1 and free_per_ray + occupied_per_ray >= 1")
        lengths = (self.near, self.free_margin, self.free_margin_relative, self.behind)
        if not all(0 <= x < math.inf for x in lengths) or self.free_margin_relative >= 1:
            raise ValueError("ray_queries: near, free_margin, behind must be >= 0 and free_margin_relative in [0, 1)")
        weights = (self.weight, self.free_weight, self.occupied_weight)
        if not all(0 <= w < math.inf for w in weights):
            raise ValueError("ray_queries: weights must be >= 0")

    @property
    def queries_per_ray(self) -> int:
        return self.free_per_ray + self.occupied_per_ray


@dataclass
class RayQueries:
    """Queries of one keyframe (or a batch: a leading B axis). points: (P, 3) float32 metres in the keyframe's ego
    frame; targets: (P,) int64 class 0..17, IGNORE for unused slots; weights: (P,) float32 (0 for unused slots)."""

    points: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor

    @staticmethod
    def stack(items: list["RayQueries"]) -> "RayQueries":
        return RayQueries(*(torch.stack([getattr(q, k) for q in items]) for k in ("points", "targets", "weights")))


def box_exit_distance(origins: torch.Tensor, directions: torch.Tensor, box: VoxelGrid = OCC3D_GRID) -> torch.Tensor:
    """Distance along each ray to where it leaves the box (slab test); 0 for a ray that starts outside it.

    origins: (..., 3), directions: (..., 3) unit vectors, same dtype. Returns (...).
    """
    lower = torch.tensor(box.lower, dtype=origins.dtype, device=origins.device)
    upper = torch.tensor(box.upper, dtype=origins.dtype, device=origins.device)
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t_exit = torch.maximum((lower - origins) / safe, (upper - origins) / safe).amin(-1)
    inside = ((origins >= lower) & (origins <= upper)).all(-1)
    return torch.where(inside, t_exit.clamp_min(0.0), torch.zeros_like(t_exit))


def pixel_rays(intrinsics: torch.Tensor, ego_T_cam: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """Rays through pixels (u, v) (integer pixel centres, OpenCV), computed in float64.

    intrinsics: (N, 3, 3); ego_T_cam: (N, 4, 4); u, v: (N, R). Returns origins (N, R, 3), unit directions (N, R, 3)
    in the ego frame and cos (N, R), the direction's component along the optical axis (z-depth = distance x cos).
    """
    K_inv = torch.linalg.inv(intrinsics.double())
    pixels = torch.stack([u.double(), v.double(), torch.ones_like(u, dtype=torch.float64)], -1)  # (N, R, 3)
    cam = pixels @ K_inv.transpose(-1, -2)
    norms = cam.norm(dim=-1)
    T = ego_T_cam.double()
    directions = (cam / norms[..., None]) @ T[:, :3, :3].transpose(-1, -2)
    return T[:, None, :3, 3].expand_as(directions), directions, cam[..., 2] / norms


def sample_ray_queries(
    depth: torch.Tensor,
    semantics: torch.Tensor,
    intrinsics: torch.Tensor,
    ego_T_cam: torch.Tensor,
    config: RayQueryConfig,
    generator: torch.Generator | None = None,
    box: VoxelGrid = OCC3D_GRID,
) -> RayQueries:
    """Free and occupied queries of one keyframe's cameras.

    depth: (N, H, W) float z-depth in metres (0 = none); semantics: (N, H, W) Occ3D ids (17 sky, 255 unlabelled);
    intrinsics: (N, 3, 3) for maps of that size (OpenCV: pixel centres at integer coordinates); ego_T_cam: (N, 4, 4)
    camera -> the keyframe's ego frame (through the window's poses for another keyframe's cameras).
    generator: draws pixels and positions (on ``depth``'s device). Returns :class:`RayQueries` with
    P = N x rays_per_image x queries_per_ray slots, free slots first in each ray.
    """
    if depth.ndim != 3 or semantics.shape != depth.shape or intrinsics.shape[-2:] != (3, 3):
        raise ValueError(f"depth and semantics (N, H, W) and intrinsics (N, 3, 3) expected, got {tuple(depth.shape)}, "
                         f"{tuple(semantics.shape)}, {tuple(intrinsics.shape)}")
    n, h, w = depth.shape
    device = depth.device
    R, F_, O = config.rays_per_image, config.free_per_ray, config.occupied_per_ray
    pixels = torch.randint(0, h * w, (n, R), generator=generator, device=device)
    origins, directions, cosines = pixel_rays(intrinsics, ego_T_cam, pixels % w, pixels // w)
    z = depth.reshape(n, h * w).gather(1, pixels).double()
    cls = semantics.reshape(n, h * w).gather(1, pixels).long()
    distance = z / cosines  # along the ray
    sky = cls == FREE
    has_surface = (z > 0) & ~sky & (cls != IGNORE)
    exit_distance = box_exit_distance(origins, directions, box)

    # Free: stratified between near and the free limit (sky: the box's edge).
    limit = torch.where(sky, exit_distance,
                        distance - config.free_margin - config.free_margin_relative * distance).clamp(max=exit_distance)
    free_ok = (sky | (z > 0)) & (limit > config.near)
    bins = torch.rand((n, R, F_), generator=generator, device=device, dtype=torch.float64)
    bins = (torch.arange(F_, device=device, dtype=torch.float64) + bins) / max(F_, 1)
    free_t = config.near + bins * (limit - config.near).clamp_min(0.0)[..., None]

    # Occupied: within `behind` metres behind the surface point, inside the box.
    occupied_t = distance[..., None] + config.behind * torch.rand((n, R, O), generator=generator, device=device,
                                                                  dtype=torch.float64)
    occupied_ok = has_surface[..., None] & (occupied_t < exit_distance[..., None])

    t = torch.cat([free_t, occupied_t], -1)  # (N, R, Q)
    points = origins[:, :, None] + t[..., None] * directions[:, :, None]
    valid = torch.cat([free_ok[..., None].expand(-1, -1, F_), occupied_ok], -1)
    targets = torch.cat([torch.full((n, R, F_), FREE, device=device, dtype=torch.long),
                         cls[..., None].expand(-1, -1, O)], -1)
    weights = torch.cat([torch.full((n, R, F_), config.free_weight, device=device),
                         torch.full((n, R, O), config.occupied_weight, device=device)], -1)
    targets = torch.where(valid, targets, torch.full_like(targets, IGNORE))
    weights = torch.where(valid, weights, torch.zeros_like(weights))
    points = torch.where(valid[..., None], points, torch.zeros_like(points))
    return RayQueries(points.reshape(-1, 3).float(), targets.reshape(-1), weights.reshape(-1).float())


class RayQueryLoss(nn.Module):
    """forward(volume (B, 18, X, Y, Z) logits on ``grid``, queries (points (B, P, 3), targets, weights (B, P))) ->
    {"loss": weighted cross-entropy over the queries, "ray_free": mean CE of the free queries, "ray_occupied": of the
    occupied ones (both detached)}, in float32 or wider."""

    def __init__(self, config: RayQueryConfig, class_weights: np.ndarray | None = None):
        super().__init__()
        self.config = config
        if config.class_weighting == "labels" and class_weights is None:
            raise ValueError("ray_queries.class_weighting 'labels' needs the training labels' class weights")
        weights = torch.ones(NUM_CLASSES) if config.class_weighting == "none" else torch.as_tensor(class_weights)
        self.register_buffer("class_weights", weights.float(), persistent=False)

    def forward(self, volume: torch.Tensor, grid: VolumeGrid, queries: RayQueries) -> dict[str, torch.Tensor]:
        # Imported here: LossConfig holds a RayQueryConfig, and the OccNeRF drop-in (losses.occnerf -> losses.pseudo)
        # must import without the rest of easyocc's models.
        from easyocc.models.volume import sample_volume

        logits = sample_volume(volume, grid, queries.points)  # (B, 18, P)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        targets = queries.targets.long()
        labelled = targets != IGNORE
        safe = torch.where(labelled, targets, torch.zeros_like(targets))
        ce = F.cross_entropy(logits, safe, reduction="none")  # (B, P)
        weights = queries.weights.to(ce.dtype) * self.class_weights.to(ce.dtype)[safe] * labelled
        total = weights.sum()
        loss = (weights * ce).sum() / total.clamp_min(1e-12) if bool(total > 0) else logits.sum() * 0.0
        free = labelled & (targets == FREE)
        occupied = labelled & (targets != FREE)

        def mean(selected: torch.Tensor) -> torch.Tensor:
            return (ce * selected).sum().detach() / selected.sum().clamp_min(1)

        return {"loss": loss, "ray_free": mean(free), "ray_occupied": mean(occupied)}
