"""Lifting pixels to semantic points: ``P_ref = ref_T_cam · [D(u, v) · K⁻¹ [u v 1]ᵀ; 1]``, each point with its class.

Which pixels give what (the same rules everywhere in the 3D stage):
- a *point* comes from a pixel that the ego mask keeps, with depth > 0 and a class in 0..16, within ``max_range``;
- 255 (ignore) or depth 0 gives no point; sky (17) gives no point but a free-space ray (see ``visibility``);
- pixels on the ego vehicle's body (dark in its mask) give nothing.

This module is the plain numpy version (used for LiDAR-checks, tests and the reference implementation); the fast
path bins the same points straight into fine cells (``cells.cells_from_image``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from easyocc.errors import InputError
from easyocc.geometry import pixel_rays
from easyocc.occ3d import FREE, IGNORE

#: Ego masks are ``<dir>/<CAMERA>_mask.png``: bright pixels are scene, dark pixels the ego vehicle's body.
EGO_MASK_SUFFIX = "_mask.png"


@dataclass(frozen=True)
class SemanticCloud:
    """Points with classes. points: (N, 3) float32 metres; classes: (N,) uint8 in 0..16."""

    points: np.ndarray
    classes: np.ndarray

    def __post_init__(self):
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {self.points.shape}")
        if self.classes.shape != self.points.shape[:1]:
            raise ValueError(f"classes must have shape ({len(self.points)},), got {self.classes.shape}")

    def __len__(self) -> int:
        return len(self.points)

    @staticmethod
    def concatenate(clouds: list["SemanticCloud"]) -> "SemanticCloud":
        if not clouds:
            return SemanticCloud(np.zeros((0, 3), np.float32), np.zeros(0, np.uint8))
        return SemanticCloud(
            np.concatenate([c.points for c in clouds]).astype(np.float32, copy=False),
            np.concatenate([c.classes for c in clouds]).astype(np.uint8, copy=False),
        )


def load_ego_masks(directory: str | Path, cameras: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read ``<directory>/<CAMERA>_mask.png`` for each camera -> {camera: (H, W) bool, True = keep the pixel}.

    Any PNG mode works (grey, RGB, RGBA): a pixel is kept when its grey level is at least 128.
    """
    from PIL import Image

    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "ego-mask folder not found")
    masks = {}
    for camera in cameras:
        path = directory / f"{camera}{EGO_MASK_SUFFIX}"
        if not path.is_file():
            raise InputError(path, f"ego mask for {camera} not found")
        try:
            with Image.open(path) as image:
                grey = np.asarray(image.convert("L"))
        except OSError as exc:
            raise InputError(path, f"not a readable image ({exc})") from None
        masks[camera] = grey >= 128
    return masks


def resize_mask(keep: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a keep-mask (H0, W0) bool to (height, width), pixel centres aligned."""
    if keep.shape == (height, width):
        return keep
    rows = np.minimum(((np.arange(height) + 0.5) * keep.shape[0] / height).astype(np.int64), keep.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * keep.shape[1] / width).astype(np.int64), keep.shape[1] - 1)
    return keep[rows[:, None], cols[None, :]]


def point_pixels(depth: np.ndarray, semantics: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: pixels that give a point (before the range limit)."""
    valid = (depth > 0) & (semantics != IGNORE) & (semantics != FREE)
    return valid if keep is None else valid & keep


def lift_image(
    depth: np.ndarray,
    semantics: np.ndarray,
    K: np.ndarray,
    ref_T_cam: np.ndarray,
    stride: int = 1,
    max_range: float | None = None,
    keep: np.ndarray | None = None,
) -> SemanticCloud:
    """Lift one camera image to semantic points in the reference frame.

    depth: (H, W) float32 z-depth in metres (0 = none); semantics: (H, W) uint8 Occ3D ids (17 sky, 255 ignore);
    K: (3, 3); ref_T_cam: (4, 4) camera -> reference frame (float64); keep: (H, W) bool ego mask or None.
    Only rows and columns 0, stride, 2*stride, ... are lifted. Returns a cloud of float32 points, row-major order.
    """
    h, w = depth.shape
    sub = (slice(None, None, stride), slice(None, None, stride))
    rays = pixel_rays(K, w, h, stride)  # (H', W', 3), z = 1
    d = depth[sub].astype(np.float64)
    valid = point_pixels(depth[sub], semantics[sub], None if keep is None else keep[sub])
    if max_range is not None:
        valid &= d * np.linalg.norm(rays, axis=-1) <= max_range
    cam_points = rays[valid] * d[valid][:, None]
    R, t = np.asarray(ref_T_cam, np.float64)[:3, :3], np.asarray(ref_T_cam, np.float64)[:3, 3]
    points = (cam_points @ R.T + t).astype(np.float32)
    return SemanticCloud(points, semantics[sub][valid].astype(np.uint8))
