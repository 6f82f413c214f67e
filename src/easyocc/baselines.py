"""Trivial baselines a trained model must beat: all free, and the majority class of each height."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from easyocc.occ3d import FREE, GRID_SHAPE, NUM_CLASSES, Occ3DLabels


def all_free(shape: tuple[int, int, int] = GRID_SHAPE) -> np.ndarray:
    """(X, Y, Z) uint8 volume of free space."""
    return np.full(shape, FREE, dtype=np.uint8)


def height_class_counts(labels: Iterable[Occ3DLabels], use_camera_mask: bool = True) -> np.ndarray:
    """Class histogram of each height layer: (Z, 18) int64, over the (camera-visible) voxels of ``labels``."""
    counts = np.zeros((GRID_SHAPE[2], NUM_CLASSES), dtype=np.int64)
    for lab in labels:
        sem = lab.semantics
        keep = sem < NUM_CLASSES
        if use_camera_mask and lab.mask_camera is not None:
            keep &= lab.mask_camera.astype(bool)
        z = np.broadcast_to(np.arange(sem.shape[2]), sem.shape)[keep]
        counts += np.bincount(z * NUM_CLASSES + sem[keep], minlength=counts.size).reshape(counts.shape)
    return counts


def majority_per_height(counts: np.ndarray, shape: tuple[int, int, int] = GRID_SHAPE) -> np.ndarray:
    """(X, Y, Z) uint8 volume holding, at each height, that layer's most frequent class (free if no data)."""
    layer_class = np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), FREE).astype(np.uint8)
    return np.broadcast_to(layer_class, shape).copy()
