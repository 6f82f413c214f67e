"""Voxelization: per voxel a class vote; occupied when it holds at least ``min_points`` points.

The vote is the class with the most points in the voxel (ties go to the lower class id); unoccupied voxels are 17.
:func:`voxelize_points` is the straightforward version on a plain point array (``np.unique``), the reference the
fast path is measured and tested against.
"""

from __future__ import annotations

import numba
import numpy as np

from easyocc.occ3d import FREE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid


@numba.njit(cache=True, parallel=True)
def _vote(counts, min_points, semantics, total):
    n, c = counts.shape
    for v in numba.prange(n):
        best = 0
        best_count = counts[v, 0]
        s = np.uint64(best_count)
        for k in range(1, c):
            x = counts[v, k]
            s += x
            if x > best_count:
                best = k
                best_count = x
        total[v] = s
        semantics[v] = best if s >= min_points else 17


def vote(counts: np.ndarray, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Class vote of per-class point counts.

    counts: (X, Y, Z, 17) unsigned integers. Returns semantics (X, Y, Z) uint8 (voted class where the voxel holds
    at least ``min_points`` points, 17 elsewhere) and total points per voxel (X, Y, Z) uint64.
    """
    if counts.shape[-1] != NUM_SEMANTIC_CLASSES:
        raise ValueError(f"counts must have {NUM_SEMANTIC_CLASSES} classes in the last axis, got {counts.shape}")
    flat = np.ascontiguousarray(counts).reshape(-1, NUM_SEMANTIC_CLASSES)
    semantics = np.empty(len(flat), np.uint8)
    total = np.empty(len(flat), np.uint64)
    _vote(flat, int(min_points), semantics, total)
    return semantics.reshape(counts.shape[:-1]), total.reshape(counts.shape[:-1])


def count_points(points: np.ndarray, classes: np.ndarray, grid: VoxelGrid = OCC3D_GRID) -> np.ndarray:
    """Points per voxel and class with ``np.unique``: (X, Y, Z, 17) uint32.

    points: (N, 3) metres in the grid's frame; classes: (N,) uint8 0..16. Points outside the grid are dropped.
    """
    ijk, inside = grid.indices(points)
    flat = np.ravel_multi_index(ijk[inside].T, grid.shape) * NUM_SEMANTIC_CLASSES + classes[inside]
    keys, n = np.unique(flat, return_counts=True)
    counts = np.zeros(int(np.prod(grid.shape)) * NUM_SEMANTIC_CLASSES, np.uint32)
    counts[keys] = n
    return counts.reshape(*grid.shape, NUM_SEMANTIC_CLASSES)


def voxelize_points(
    points: np.ndarray, classes: np.ndarray, min_points: int, grid: VoxelGrid = OCC3D_GRID
) -> tuple[np.ndarray, np.ndarray]:
    """Semantics (X, Y, Z) uint8 and occupancy (X, Y, Z) bool of a semantic point cloud."""
    semantics, _ = vote(count_points(points, classes, grid), min_points)
    return semantics, semantics != FREE
