"""Voxelization: per voxel a class vote; occupied when it holds at least ``min_points`` points.

The vote is the class with the most points in the voxel (ties go to the lower class id); unoccupied voxels are 17.
With rare-class priority (ShelfOcc), a class of a given set that holds at least ``rare_min_points`` of the voxel's
points wins it instead (the one with most points among them, ties to the lower id): a traffic cone on the road
shares its voxels with many road points and would lose a plain vote.
:func:`voxelize_points` is the straightforward version on a plain point array (``np.unique``), the reference the
fast path is measured and tested against.
"""

from __future__ import annotations

import numba
import numpy as np

from easyocc.occ3d import FREE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid


@numba.njit(cache=True, parallel=True)
def _vote(counts, min_points, rare, rare_min_points, semantics, total):
    n, c = counts.shape
    for v in numba.prange(n):
        best = 0
        best_count = counts[v, 0]
        s = np.uint64(best_count)
        rare_best = -1
        rare_count = 0
        for k in range(c):
            x = counts[v, k]
            if k > 0:
                s += x
                if x > best_count:
                    best = k
                    best_count = x
            if rare[k] and x >= rare_min_points and x > rare_count:
                rare_best = k
                rare_count = x
        if rare_best >= 0:
            best = rare_best
        total[v] = s
        semantics[v] = best if s >= min_points else 17


def vote(counts: np.ndarray, min_points: int, rare_classes=(), rare_min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class vote of per-class point counts.

    counts: (X, Y, Z, 17) unsigned integers; rare_classes: classes that win a voxel holding at least
    ``rare_min_points`` of their points (empty: the plain vote). Returns semantics (X, Y, Z) uint8 (voted class
    where the voxel holds at least ``min_points`` points, 17 elsewhere) and total points per voxel (X, Y, Z) uint64.
    """
    if counts.shape[-1] != NUM_SEMANTIC_CLASSES:
        raise ValueError(f"counts must have {NUM_SEMANTIC_CLASSES} classes in the last axis, got {counts.shape}")
    flat = np.ascontiguousarray(counts).reshape(-1, NUM_SEMANTIC_CLASSES)
    semantics = np.empty(len(flat), np.uint8)
    total = np.empty(len(flat), np.uint64)
    _vote(flat, int(min_points), rare_mask(rare_classes), max(1, int(rare_min_points)), semantics, total)
    return semantics.reshape(counts.shape[:-1]), total.reshape(counts.shape[:-1])


def rare_mask(rare_classes) -> np.ndarray:
    """(17,) bool: the classes that take part in the rare-class priority."""
    mask = np.zeros(NUM_SEMANTIC_CLASSES, np.bool_)
    mask[list(rare_classes)] = True
    return mask


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
