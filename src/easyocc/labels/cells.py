"""Each frame's semantic cloud, compressed into fine cells with per-class point counts.

A keyframe's six full-resolution images give 8.6 M points; 14 frames of them would be re-transformed for every
keyframe. Instead each frame is lifted once and binned into cells of ``voxel_size / divisions`` (0.1 m by default)
on the Occ3D grid's lattice in *that frame's* ego frame, one entry per (cell, class) with its point count, placed at
the centroid of its points. When the frame is the current keyframe its cells nest exactly in its voxels
(``divisions`` is a power of two), so the current frame's counts are exact. A past frame's entries are moved whole
to the current frame: a point is counted in another voxel than its own only when it and its entry's centroid (both
in one cell) lie on two sides of a voxel face there, so only points within a cell diagonal (0.17 m at 0.1 m cells)
of a face can move. Centroids rather than cell centres keep flat surfaces in place: the centroid of a wall's
points lies on the wall, so a wall parallel to a voxel face (common: streets run along the ego's axes) never
crosses it. ``divisions = 0`` keeps every point (exact, and heavy).

The kernels are numba (CPU, parallel over image rows); ``torch_backend`` has the same computation for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from easyocc.labels.buckets import count_unique
from easyocc.occ3d import OCC3D_GRID, VoxelGrid

#: The packed (cell, class) key, one int64 (also built by ``torch_backend``): class 5 bits, z 16, y 21, x 21 (63 bits,
#: keys >= 0); cell indices are stored offset by half their range.
CLASS_BITS = 5
Z_BITS = 16
XY_BITS = 21
Z_OFFSET = 1 << (Z_BITS - 1)
XY_OFFSET = 1 << (XY_BITS - 1)


@dataclass(frozen=True)
class FrameCells:
    """One frame's semantic points as weighted samples in that frame's ego frame.

    centres: (M, 3) float32 metres (cell centres, or the points themselves when uncompressed);
    classes: (M,) uint8 in 0..16; counts: (M,) uint32 points behind each entry.
    """

    centres: np.ndarray
    classes: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.centres)

    @property
    def num_points(self) -> int:
        return int(self.counts.sum(dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.centres.nbytes + self.classes.nbytes + self.counts.nbytes

    def select(self, keep: np.ndarray) -> "FrameCells":
        return FrameCells(self.centres[keep], self.classes[keep], self.counts[keep])

    @staticmethod
    def empty() -> "FrameCells":
        return FrameCells(np.zeros((0, 3), np.float32), np.zeros(0, np.uint8), np.zeros(0, np.uint32))

    @staticmethod
    def concatenate(parts: list["FrameCells"]) -> "FrameCells":
        parts = [p for p in parts if len(p)]
        if not parts:
            return FrameCells.empty()
        return FrameCells(
            np.concatenate([p.centres for p in parts]),
            np.concatenate([p.classes for p in parts]),
            np.concatenate([p.counts for p in parts]),
        )


@numba.njit(cache=True, inline="always")
def _pack(x, y, z, lower, cell, cls):
    """Packed key of the cell holding (x, y, z), or -1 when the cell index does not fit the key."""
    ix = int(np.floor((x - lower[0]) / cell))
    iy = int(np.floor((y - lower[1]) / cell))
    iz = int(np.floor((z - lower[2]) / cell))
    ix += XY_OFFSET
    iy += XY_OFFSET
    iz += Z_OFFSET
    if ix < 0 or ix >= (1 << XY_BITS) or iy < 0 or iy >= (1 << XY_BITS) or iz < 0 or iz >= (1 << Z_BITS):
        return -1
    return (((ix << XY_BITS) | iy) << Z_BITS | iz) << CLASS_BITS | cls


@numba.njit(cache=True)
def _unpack(keys, counts, sums, lower, cell):
    """Classes and centroids (mean of each entry's points, kept inside its cell) of packed keys."""
    n = keys.shape[0]
    centres = np.empty((n, 3), np.float32)
    classes = np.empty(n, np.uint8)
    index = np.empty(3, np.int64)
    for r in range(n):
        k = keys[r]
        classes[r] = k & ((1 << CLASS_BITS) - 1)
        k >>= CLASS_BITS
        index[2] = (k & ((1 << Z_BITS) - 1)) - Z_OFFSET
        k >>= Z_BITS
        index[1] = (k & ((1 << XY_BITS) - 1)) - XY_OFFSET
        index[0] = (k >> XY_BITS) - XY_OFFSET
        for a in range(3):
            lo = lower[a] + index[a] * cell
            hi = lower[a] + (index[a] + 1) * cell
            mean = np.float32(sums[r, a] / counts[r])
            # The mean of points inside the cell lies inside it; rounding must not move it across a face.
            if not np.float64(mean) >= lo:
                mean = np.nextafter(np.float32(lo), np.float32(np.inf))
            if not np.float64(mean) < hi:
                mean = np.nextafter(np.float32(hi), np.float32(-np.inf))
            centres[r, a] = mean
    return centres, classes


@numba.njit(cache=True, parallel=True)
def _image_runs(depth, semantics, keep, use_keep, K, R, t, stride, max_range, lower, cell, run_keys, run_counts,
                run_sums, n_runs):
    """Lift the pixels of one image and merge consecutive pixels of a row that fall in the same (cell, class).

    Writes, for each lifted row, its runs into ``run_keys[row, :n_runs[row]]``, ``run_counts`` (points) and
    ``run_sums`` (sum of the points' coordinates).
    """
    h, w = depth.shape
    n_rows = run_keys.shape[0]
    fx, skew, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    for row in numba.prange(n_rows):
        v = row * stride
        yr = (v - cy) / fy
        n = 0
        last = -1
        for col in range(0, (w + stride - 1) // stride):
            u = col * stride
            d = np.float64(depth[v, u])
            s = semantics[v, u]
            if not d > 0.0 or s >= 17 or (use_keep and not keep[v, u]):
                continue
            xr = (u - cx - skew * yr) / fx
            if d * np.sqrt(xr * xr + yr * yr + 1.0) > max_range:
                continue
            px, py, pz = d * xr, d * yr, d
            # Same rounding as the numpy path: transform in float64, store float32.
            x = np.float64(np.float32(R[0, 0] * px + R[0, 1] * py + R[0, 2] * pz + t[0]))
            y = np.float64(np.float32(R[1, 0] * px + R[1, 1] * py + R[1, 2] * pz + t[1]))
            z = np.float64(np.float32(R[2, 0] * px + R[2, 1] * py + R[2, 2] * pz + t[2]))
            key = _pack(x, y, z, lower, cell, s)
            if key < 0:
                continue
            if key == last:
                run_counts[row, n - 1] += 1
                run_sums[row, n - 1, 0] += x
                run_sums[row, n - 1, 1] += y
                run_sums[row, n - 1, 2] += z
            else:
                run_keys[row, n] = key
                run_counts[row, n] = 1
                run_sums[row, n, 0] = x
                run_sums[row, n, 1] = y
                run_sums[row, n, 2] = z
                n += 1
                last = key
        n_runs[row] = n


@numba.njit(cache=True, parallel=True)
def _point_keys(points, classes, lower, cell):
    n = points.shape[0]
    keys = np.empty(n, np.int64)
    for r in numba.prange(n):
        c = classes[r]
        if c >= 17:
            keys[r] = -1
        else:
            keys[r] = _pack(np.float64(points[r, 0]), np.float64(points[r, 1]), np.float64(points[r, 2]), lower, cell, c)
    return keys


@numba.njit(cache=True, parallel=True)
def _compact_runs(run_keys, run_counts, run_sums, n_runs):
    n_rows = n_runs.shape[0]
    starts = np.empty(n_rows + 1, np.int64)
    starts[0] = 0
    for row in range(n_rows):
        starts[row + 1] = starts[row] + n_runs[row]
    total = starts[n_rows]
    keys = np.empty(total, np.int64)
    counts = np.empty(total, np.uint32)
    sums = np.empty((total, 3), np.float64)
    for row in numba.prange(n_rows):
        i = starts[row]
        for j in range(n_runs[row]):
            keys[i + j] = run_keys[row, j]
            counts[i + j] = run_counts[row, j]
            for a in range(3):
                sums[i + j, a] = run_sums[row, j, a]
    return keys, counts, sums


def cell_size(divisions: int, grid: VoxelGrid = OCC3D_GRID) -> float:
    return grid.voxel_size / divisions


def _cells_from_keys(keys: np.ndarray, counts: np.ndarray, sums: np.ndarray, divisions: int, grid: VoxelGrid) -> FrameCells:
    # Buckets are 8-cell slabs along x: cells come out grouped in space, so that scattering them into the voxel
    # grid later stays within cache.
    unique, totals, position_sums = count_unique(keys, counts, sums, part_shift=CLASS_BITS + Z_BITS + XY_BITS + 3)
    centres, classes = _unpack(unique, totals, position_sums, grid.lower_array, cell_size(divisions, grid))
    return FrameCells(centres, classes, totals)


def cells_from_points(points: np.ndarray, classes: np.ndarray, divisions: int = 4, grid: VoxelGrid = OCC3D_GRID) -> FrameCells:
    """Bin a semantic cloud (e.g. labelled LiDAR) into fine cells.

    points: (N, 3) float32 metres in the frame's ego frame; classes: (N,) uint8 (values >= 17 are dropped).
    divisions: cells per voxel edge (power of two), or 0 to keep every point as its own entry.
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    classes = np.ascontiguousarray(classes, dtype=np.uint8)
    if divisions == 0:
        keep = classes < 17
        return FrameCells(points[keep], classes[keep], np.ones(int(keep.sum()), np.uint32))
    keys = _point_keys(points, classes, grid.lower_array, cell_size(divisions, grid))
    return _cells_from_keys(keys, np.ones(len(keys), np.uint32), points.astype(np.float64), divisions, grid)


def cells_from_image(
    depth: np.ndarray,
    semantics: np.ndarray,
    K: np.ndarray,
    ref_T_cam: np.ndarray,
    keep: np.ndarray | None = None,
    stride: int = 1,
    max_range: float | None = None,
    divisions: int = 4,
    grid: VoxelGrid = OCC3D_GRID,
) -> tuple[np.ndarray, np.ndarray]:
    """Lift one image and merge each row's consecutive pixels of the same (cell, class): the runs to count.

    Same pixel rules as :func:`lift.lift_image`. Returns (run keys (R,) int64, run counts (R,) uint32, run sums of
    point coordinates (R, 3) float64).
    """
    h, w = depth.shape
    n_rows, n_cols = (h + stride - 1) // stride, (w + stride - 1) // stride
    run_keys = np.empty((n_rows, n_cols), np.int64)
    run_counts = np.empty((n_rows, n_cols), np.uint32)
    run_sums = np.empty((n_rows, n_cols, 3), np.float64)
    n_runs = np.empty(n_rows, np.int64)
    use_keep = keep is not None
    _image_runs(
        np.ascontiguousarray(depth, dtype=np.float32),
        np.ascontiguousarray(semantics, dtype=np.uint8),
        np.ascontiguousarray(keep) if use_keep else np.ones((1, 1), np.bool_),
        use_keep,
        np.asarray(K, np.float64),
        np.ascontiguousarray(np.asarray(ref_T_cam, np.float64)[:3, :3]),
        np.ascontiguousarray(np.asarray(ref_T_cam, np.float64)[:3, 3]),
        stride,
        np.inf if max_range is None else float(max_range),
        grid.lower_array,
        cell_size(divisions, grid),
        run_keys,
        run_counts,
        run_sums,
        n_runs,
    )
    return _compact_runs(run_keys, run_counts, run_sums, n_runs)


def merge_runs(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], divisions: int,
               grid: VoxelGrid = OCC3D_GRID) -> FrameCells:
    """Count the runs of several images into one frame's cells."""
    if not runs:
        return FrameCells.empty()
    keys = np.concatenate([k for k, _, _ in runs])
    counts = np.concatenate([c for _, c, _ in runs])
    sums = np.concatenate([s for _, _, s in runs])
    return _cells_from_keys(keys, counts, sums, divisions, grid)
