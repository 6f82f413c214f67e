"""Temporal densification: the semantic clouds of other keyframes, moved into the current keyframe's ego frame.

The entry point is a list of :class:`PosedFrame` (a frame's semantic cells in its own ego frame, its global pose,
optionally its free-space rays), whatever made them: camera images lifted with depth (``pipeline``), or any labelled
point cloud with poses (LiDAR: :func:`posed_frame_from_cloud`). The other frames (past ones, and future ones when
labels are made offline) are moved by ``current_T_other = inv(global_T_current) @ global_T_other`` composed in
float64; their points of dynamic classes are left out, so moving objects come from the current frame alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numba
import numpy as np

from easyocc.geometry import relative_transform
from easyocc.labels.cells import FrameCells, cells_from_points
from easyocc.labels.lift import SemanticCloud
from easyocc.labels.visibility import DepthView, FreeSpaceRays, count_pass_throughs, rays_to_points
from easyocc.occ3d import NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid


@dataclass(frozen=True)
class PosedFrame:
    """What one keyframe's sensors saw, in its own ego frame.

    cells: the semantic points (fine cells with counts); global_T_ego: (4, 4) float64 pose of that ego frame;
    rays: its free-space rays and views: its cameras' depth (both used while the frame is the current one);
    token: the keyframe's sample token.
    """

    cells: FrameCells
    global_T_ego: np.ndarray
    rays: FreeSpaceRays | None = None
    token: str = ""
    views: tuple[DepthView, ...] | None = None

    def past(self, keep_rays: bool = False) -> "PosedFrame":
        """This frame as another frame of a window: its cells and pose (and its rays, for pass-through counts)."""
        return PosedFrame(self.cells, self.global_T_ego, self.rays if keep_rays else None, self.token)


@dataclass
class WindowCounts:
    """Points per voxel and class in the current frame. counts: (X, Y, Z, 17) uint32;
    current: (X, Y, Z) bool, voxels holding a point of the current frame."""

    counts: np.ndarray
    current: np.ndarray


def posed_frame_from_cloud(
    cloud: SemanticCloud,
    global_T_ego: np.ndarray,
    sensor_origin: np.ndarray | None = None,
    divisions: int = 4,
    max_range: float | None = None,
    token: str = "",
    grid: VoxelGrid = OCC3D_GRID,
) -> PosedFrame:
    """A frame from a plain semantic point cloud in its ego frame (e.g. labelled LiDAR).

    cloud: points (N, 3) float32 in the ego frame with classes 0..16; sensor_origin: (3,) the sensor position in the
    ego frame; with it, each point also gives a free-space ray from the sensor.
    """
    rays = None if sensor_origin is None else rays_to_points(sensor_origin, cloud, max_range)
    if max_range is not None and sensor_origin is not None:
        near = np.linalg.norm(cloud.points - np.asarray(sensor_origin, np.float32), axis=1) <= max_range
        cloud = SemanticCloud(cloud.points[near], cloud.classes[near])
    cells = cells_from_points(cloud.points, cloud.classes, divisions, grid)
    return PosedFrame(cells, np.asarray(global_T_ego, np.float64), rays, token)


@numba.njit(cache=True)
def _accumulate(centres, classes, weights, R, t, lower, voxel_size, shape, skip_class, out, seen, mark_seen,
                blocked, use_blocked):
    nx, ny, nz = shape
    for r in range(centres.shape[0]):
        c = classes[r]
        if skip_class[c]:
            continue
        x0, y0, z0 = np.float64(centres[r, 0]), np.float64(centres[r, 1]), np.float64(centres[r, 2])
        x = np.float64(np.float32(R[0, 0] * x0 + R[0, 1] * y0 + R[0, 2] * z0 + t[0]))
        y = np.float64(np.float32(R[1, 0] * x0 + R[1, 1] * y0 + R[1, 2] * z0 + t[1]))
        z = np.float64(np.float32(R[2, 0] * x0 + R[2, 1] * y0 + R[2, 2] * z0 + t[2]))
        i = int(np.floor((x - lower[0]) / voxel_size))
        j = int(np.floor((y - lower[1]) / voxel_size))
        k = int(np.floor((z - lower[2]) / voxel_size))
        if i < 0 or i >= nx or j < 0 or j >= ny or k < 0 or k >= nz:
            continue
        flat = (i * ny + j) * nz + k
        if use_blocked and blocked[flat]:
            continue
        out[flat, c] += weights[r]
        if mark_seen:
            seen[flat] = True


def accumulate_frame(
    counts: np.ndarray,
    cells: FrameCells,
    current_T_frame: np.ndarray,
    skip_classes: Sequence[int] = (),
    seen: np.ndarray | None = None,
    grid: VoxelGrid = OCC3D_GRID,
    blocked: np.ndarray | None = None,
) -> None:
    """Add one frame's points to ``counts`` (X, Y, Z, 17) uint32, in place.

    current_T_frame: (4, 4) float64; skip_classes: classes left out (dynamic ones for a past frame);
    seen: (X, Y, Z) bool, marked where a point lands, when given; blocked: (X, Y, Z) bool/uint8, voxels where
    this frame's points are dropped (see :func:`window_counts`).
    """
    if not len(cells):
        return
    skip = np.zeros(32, np.bool_)
    skip[list(skip_classes)] = True
    T = np.asarray(current_T_frame, np.float64)
    flat_counts = counts.reshape(-1, counts.shape[-1])
    flat_seen = seen.reshape(-1) if seen is not None else np.zeros(1, np.bool_)
    flat_blocked = blocked.reshape(-1).view(np.uint8) if blocked is not None else np.zeros(1, np.uint8)
    _accumulate(
        cells.centres, cells.classes, cells.counts, np.ascontiguousarray(T[:3, :3]), np.ascontiguousarray(T[:3, 3]),
        grid.lower_array, float(grid.voxel_size), grid.shape, skip, flat_counts, flat_seen, seen is not None,
        flat_blocked, blocked is not None,
    )


def window_counts(
    window: Sequence[PosedFrame],
    dynamic_classes: Sequence[int],
    grid: VoxelGrid = OCC3D_GRID,
    carved: np.ndarray | None = None,
) -> WindowCounts:
    """Counts of the current frame (the last of ``window``) and the other frames, in the current ego frame.

    window: the other frames (past and future, in any order), the current keyframe last. Other frames contribute
    static classes only, and nothing in ``carved`` ((X, Y, Z) bool/uint8: voxels the current cameras see through,
    so that other frames' points there were misplaced by depth errors, or have moved).
    """
    if not window:
        raise ValueError("window must hold at least the current frame")
    current = window[-1]
    counts = np.zeros((*grid.shape, NUM_SEMANTIC_CLASSES), np.uint32)
    seen = np.zeros(grid.shape, np.bool_)
    for frame in window[:-1]:
        current_T_frame = relative_transform(current.global_T_ego, frame.global_T_ego)
        accumulate_frame(counts, frame.cells, current_T_frame, dynamic_classes, grid=grid, blocked=carved)
    accumulate_frame(counts, current.cells, np.eye(4), (), seen, grid)
    return WindowCounts(counts, seen)


def window_passes(window: Sequence[PosedFrame], grid: VoxelGrid = OCC3D_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Weighted free-space rays crossing each voxel without ending in it, in the current frame (the last of
    ``window``): (every frame's rays, the current frame's rays), each (X, Y, Z) float64. Frames without rays add
    nothing."""
    current = window[-1]
    passes_current = np.zeros(grid.shape, np.float64)
    if current.rays is not None:
        count_pass_throughs(current.rays, grid, passes_current)
    passes_all = passes_current.copy()
    for frame in window[:-1]:
        if frame.rays is not None:
            rays = frame.rays.transformed(relative_transform(current.global_T_ego, frame.global_T_ego))
            count_pass_throughs(rays, grid, passes_all)
    return passes_all, passes_current


def drop_passed_through(counts: np.ndarray, static_drop: np.ndarray, dynamic_drop: np.ndarray,
                        dynamic_classes: Sequence[int]) -> None:
    """Zero, in place, the counts (X, Y, Z, 17) of static classes where ``static_drop`` and of dynamic classes where
    ``dynamic_drop`` (both (X, Y, Z) bool, from ``visibility.pass_through_drops``)."""
    dynamic = np.zeros(counts.shape[-1], bool)
    dynamic[list(dynamic_classes)] = True
    counts[static_drop[..., None] & ~dynamic] = 0
    counts[dynamic_drop[..., None] & dynamic] = 0


def remove_outliers(cells: FrameCells, neighbors: int, std_ratio: float) -> FrameCells:
    """Statistical outlier removal on a frame's cells: drop entries whose mean distance to their ``neighbors``
    nearest other entries exceeds the mean of that distance plus ``std_ratio`` standard deviations."""
    if neighbors <= 0 or len(cells) <= neighbors:
        return cells
    from scipy.spatial import cKDTree

    tree = cKDTree(cells.centres)
    distances, _ = tree.query(cells.centres, k=neighbors + 1, workers=-1)
    mean_distance = distances[:, 1:].mean(axis=1)
    limit = mean_distance.mean() + std_ratio * mean_distance.std()
    return cells.select(mean_distance <= limit)
