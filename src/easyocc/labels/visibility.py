"""Free space and what the sensors observe: rays through the Occ3D grid, up to their depth.

A camera pixel with a depth (and a class other than sky) says the space before that depth is empty; a sky pixel says
the whole ray is empty (up to ``max_range``, or out of the grid). One ray per ``ray_stride`` x ``ray_stride`` pixels
is walked with :func:`easyocc.raycast.mark_traversed` (Amanatides-Woo); the voxel holding the depth point is marked
too. The automatic stride keeps neighbouring rays less than a voxel apart everywhere in the grid, so thinning the
rays loses almost nothing (tests compare it with every pixel's ray).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np

from easyocc.geometry import invert_transform, pixel_rays, transform_points
from easyocc.labels.lift import SemanticCloud
from easyocc.occ3d import FREE, IGNORE, OCC3D_GRID, VoxelGrid

#: How far short of its depth an ignore pixel's free-space ray stops: the diagonal of a 0.4 m voxel.
IGNORE_MARGIN = 0.4 * math.sqrt(3.0)
from easyocc.raycast import count_passes_m, mark_traversed_m


@dataclass(frozen=True)
class FreeSpaceRays:
    """Rays in a frame's ego frame. origins: (M, 3) float64 metres; directions: (M, 3) float64 unit vectors;
    ranges: (M,) float64 metres to the observed surface (inf: nothing was hit, e.g. sky);
    weights: (M,) float64 how many lifted points each ray stands for (a ray per s x s pixels, points every p-th
    pixel: (s / p)^2), what pass-through counts weigh it by; None = 1 each."""

    origins: np.ndarray
    directions: np.ndarray
    ranges: np.ndarray
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.directions)

    @property
    def ray_weights(self) -> np.ndarray:
        """(M,) float64, ones when the rays carry no weights."""
        return np.ones(len(self)) if self.weights is None else self.weights

    @staticmethod
    def concatenate(parts: list["FreeSpaceRays"]) -> "FreeSpaceRays":
        if not parts:
            return FreeSpaceRays(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
        weighted = any(p.weights is not None for p in parts)
        return FreeSpaceRays(
            np.concatenate([p.origins for p in parts]),
            np.concatenate([p.directions for p in parts]),
            np.concatenate([p.ranges for p in parts]),
            np.concatenate([p.ray_weights for p in parts]) if weighted else None,
        )

    def transformed(self, A_T_B: np.ndarray) -> "FreeSpaceRays":
        """The same rays in frame A (this object is in frame B)."""
        R = np.asarray(A_T_B, np.float64)[:3, :3]
        return FreeSpaceRays(transform_points(A_T_B, self.origins, np.float64), self.directions @ R.T, self.ranges,
                             self.weights)


@dataclass(frozen=True)
class DepthView:
    """What one current camera saw, for the see-through test of :func:`see_through_voxels`.

    K: (3, 3); cam_T_ref: (4, 4) float64 reference frame -> camera; depth: (H, W) float32 z-depth, inf for sky
    (nothing there), 0 where there is no depth or the ego body (unknown).
    """

    K: np.ndarray
    cam_T_ref: np.ndarray
    depth: np.ndarray


def depth_view(depth: np.ndarray, semantics: np.ndarray, K: np.ndarray, ref_T_cam: np.ndarray,
               keep: np.ndarray | None = None) -> DepthView:
    """A :class:`DepthView` of one camera image (depth (H, W) float32 z-depth, semantics (H, W) uint8)."""
    d = np.where(semantics == FREE, np.float32(np.inf), depth).astype(np.float32, copy=False)
    if keep is not None:
        d[~keep] = 0.0
    return DepthView(np.asarray(K, np.float64), invert_transform(ref_T_cam), d)


@numba.njit(cache=True, parallel=True)
def _see_through(K, R, t, depth, lower, voxel_size, shape, margin, out):
    nx, ny, nz = shape
    h, w = depth.shape
    for i in numba.prange(nx):
        x = lower[0] + (i + 0.5) * voxel_size
        for j in range(ny):
            y = lower[1] + (j + 0.5) * voxel_size
            for k in range(nz):
                z = lower[2] + (k + 0.5) * voxel_size
                cz = R[2, 0] * x + R[2, 1] * y + R[2, 2] * z + t[2]
                if cz <= 0.1:
                    continue
                cx = R[0, 0] * x + R[0, 1] * y + R[0, 2] * z + t[0]
                cy = R[1, 0] * x + R[1, 1] * y + R[1, 2] * z + t[1]
                u = int(np.floor((K[0, 0] * cx + K[0, 1] * cy) / cz + K[0, 2] + 0.5))
                v = int(np.floor(K[1, 1] * cy / cz + K[1, 2] + 0.5))
                if u < 0 or u >= w or v < 0 or v >= h:
                    continue
                nearest = np.inf
                for vv in range(max(v - 1, 0), min(v + 2, h)):
                    for uu in range(max(u - 1, 0), min(u + 2, w)):
                        nearest = min(nearest, depth[vv, uu])
                if nearest > cz + margin:
                    out[(i * ny + j) * nz + k] = 1


def see_through_voxels(views: list[DepthView], margin: float, grid: VoxelGrid = OCC3D_GRID) -> np.ndarray:
    """Voxels a current camera sees through: (X, Y, Z) uint8.

    A voxel is seen through when, at the pixel its centre projects to, every depth in the 3x3 neighbourhood lies
    more than ``margin`` beyond the centre's depth (sky counts as infinitely far). Testing the voxel's centre, not
    the rays, keeps surfaces seen at grazing angles: a ground voxel's centre lies on the ground, so the camera never
    sees far beyond it, although its rays cross the voxel's empty upper half.
    """
    out = np.zeros(int(np.prod(grid.shape)), np.uint8)
    for view in views:
        _see_through(view.K, np.ascontiguousarray(view.cam_T_ref[:3, :3]), np.ascontiguousarray(view.cam_T_ref[:3, 3]),
                     np.ascontiguousarray(view.depth), grid.lower_array, float(grid.voxel_size), grid.shape,
                     float(margin), out)
    return out.reshape(grid.shape)


def auto_ray_stride(K: np.ndarray, camera_position: np.ndarray | None = None, grid: VoxelGrid = OCC3D_GRID) -> int:
    """Largest pixel stride whose neighbouring rays stay within one voxel of each other inside the grid.

    Rays ``stride`` pixels apart diverge by ``stride * distance / f``; the farthest grid point from the camera
    (a top corner, about 57 m for Occ3D) bounds the distance. nuScenes' 1600x900 cameras (f ~ 1266) give 8;
    a 320x180 image gives 1.
    """
    origin = np.zeros(3) if camera_position is None else np.asarray(camera_position, np.float64)
    corners = np.array([[x, y, z] for x in (grid.lower[0], grid.upper[0]) for y in (grid.lower[1], grid.upper[1])
                        for z in (grid.lower[2], grid.upper[2])])
    far = float(np.linalg.norm(corners - origin, axis=1).max())
    focal = float(max(K[0, 0], K[1, 1]))
    return max(1, int(math.floor(grid.voxel_size * focal / far)))


@functools.lru_cache(maxsize=32)
def _unit_rays(K_bytes: bytes, width: int, height: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (H', W', 3) in the camera frame and the length (H', W') of the z = 1 rays, per camera."""
    rays = pixel_rays(np.frombuffer(K_bytes, np.float64).reshape(3, 3), width, height, stride)
    norms = np.linalg.norm(rays, axis=-1)
    unit = rays / norms[..., None]
    unit.flags.writeable = norms.flags.writeable = False
    return unit, norms


def camera_rays(
    depth: np.ndarray,
    semantics: np.ndarray,
    K: np.ndarray,
    ref_T_cam: np.ndarray,
    stride: int,
    keep: np.ndarray | None = None,
    max_range: float | None = None,
    ignore_margin: float = IGNORE_MARGIN,
    pixel_stride: int = 1,
) -> FreeSpaceRays:
    """Free-space rays of one camera image, in the reference frame.

    depth: (H, W) float32 z-depth (0 = none); semantics: (H, W) uint8. Pixels on the ego body give no ray; sky (17)
    gives an unbounded ray; a pixel with a class and depth > 0 a ray to its depth (its voxel holds its point). An
    ignore (255) pixel with depth > 0 says the space before it is empty but not what is there: its ray stops
    ``ignore_margin`` metres short (a voxel diagonal), so the unlabelled surface's voxel is never called free.
    ``max_range`` caps every ray. Rows/columns 0, stride, 2*stride, ... are used; each ray weighs
    (stride / pixel_stride)^2, the lifted points (one per ``pixel_stride`` pixels) it stands for.
    """
    h, w = depth.shape
    sub = (slice(None, None, stride), slice(None, None, stride))
    unit, norms = _unit_rays(np.ascontiguousarray(K, np.float64).tobytes(), w, h, stride)
    d, s = depth[sub], semantics[sub]
    sky = s == FREE
    valid = sky | (d > 0)
    if keep is not None:
        valid &= keep[sub]
    ranges = np.where(sky, np.inf, d.astype(np.float64) * norms - np.where(s == IGNORE, ignore_margin, 0.0))
    valid &= ranges > 0
    ranges = ranges[valid]
    if max_range is not None:
        ranges = np.minimum(ranges, max_range)
    T = np.asarray(ref_T_cam, np.float64)
    directions = unit[valid] @ T[:3, :3].T
    origins = np.broadcast_to(T[:3, 3], directions.shape)
    weights = np.full(len(ranges), (stride / pixel_stride) ** 2)
    return FreeSpaceRays(np.ascontiguousarray(origins), directions, ranges, weights)


def rays_to_points(origin: np.ndarray, cloud: SemanticCloud, max_range: float | None = None) -> FreeSpaceRays:
    """Rays from a sensor origin (3,) to each point of a cloud (e.g. a LiDAR scan), in the cloud's frame."""
    origin = np.asarray(origin, np.float64).reshape(3)
    offsets = cloud.points.astype(np.float64) - origin
    ranges = np.linalg.norm(offsets, axis=1)
    ok = ranges > 0
    directions = offsets[ok] / ranges[ok, None]
    ranges = ranges[ok] if max_range is None else np.minimum(ranges[ok], max_range)
    return FreeSpaceRays(np.broadcast_to(origin, directions.shape).copy(), directions, ranges)


def traverse(rays: FreeSpaceRays, grid: VoxelGrid = OCC3D_GRID, out: np.ndarray | None = None) -> np.ndarray:
    """Voxels the rays pass through up to their range, the voxel at the range included: (X, Y, Z) uint8 0/1."""
    if out is None:
        out = np.zeros(grid.shape, np.uint8)
    if len(rays):
        mark_traversed_m(rays.origins, rays.directions, rays.ranges, grid=grid, out=out)
    return out


def count_pass_throughs(rays: FreeSpaceRays, grid: VoxelGrid = OCC3D_GRID, out: np.ndarray | None = None) -> np.ndarray:
    """Weighted number of rays that cross each voxel without ending in it: (X, Y, Z) float64 (added to ``out``)."""
    if out is None:
        out = np.zeros(grid.shape, np.float64)
    if len(rays):
        count_passes_m(rays.origins, rays.directions, rays.ranges, rays.ray_weights, grid, out)
    return out


def pass_through_drops(
    passes_all: np.ndarray, passes_current: np.ndarray, ends: np.ndarray, ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels whose points a pass-through filter drops: (static drop, dynamic drop), each (X, Y, Z) bool.

    passes_all: (X, Y, Z) weighted rays of every frame of the window crossing the voxel; passes_current: those of
    the current frame; ends: (X, Y, Z) points in the voxel (the rays that end there). Static points go where the
    window's rays cross the voxel more than ``ratio`` of the time, passes / (passes + ends) > ratio; dynamic points
    (the current frame's own) are judged against the current frame's rays alone, since a moving object may stand
    where earlier rays passed. Computed in float64, so both label backends drop the same voxels.
    """
    ends = np.asarray(ends, np.float64)
    static = passes_all > ratio * (passes_all + ends)
    dynamic = passes_current > ratio * (passes_current + ends)
    return static, dynamic


def label_masks(
    occupied: np.ndarray, total_points: np.ndarray, traversed: np.ndarray, current_points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The two masks of a pseudo-label, (X, Y, Z) uint8 each.

    occupied: voxels with at least min_points points (all frames); total_points: points per voxel (all frames);
    traversed: voxels the current keyframe's rays pass through (depth voxel included);
    current_points: voxels holding a point of the current keyframe.
    mask_camera = traversed | current_points: what the current cameras observe.
    mask_lidar = occupied | (traversed & no point at all): the voxels whose label is confident, occupied or
    observed free; a voxel with a few points below the threshold is neither.
    """
    camera = traversed.astype(bool) | current_points
    confident = occupied | (traversed.astype(bool) & (total_points == 0))
    return camera.astype(np.uint8), confident.astype(np.uint8)

