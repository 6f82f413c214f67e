"""The interface every 2D source implements, and the checks applied to what a source returns.

A semantic source gives, per camera image, an (H, W) uint8 map of Occ3D class ids: 0..16 for things and stuff,
17 (``FREE``) for sky (the ray hits nothing), and ``IGNORE`` (255) where the source is unsure.
A depth source gives an (H, W) float32 map of metric depth in metres, measured along the optical axis (z in the
camera frame, not the ray length); 0 means "no depth here" (e.g. sparse LiDAR depth). NaN or negative values are
errors, never silently dropped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from os import PathLike

import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.errors import InputError
from easyocc.occ3d import FREE, IGNORE


class SemanticSource(ABC):
    """Per-image semantics in Occ3D ids."""

    #: Short name used on the command line and in cache folders.
    name: str = "semantic"

    @abstractmethod
    def semantics(self, camera: CameraFrame) -> np.ndarray:
        """(camera.height, camera.width) uint8: 0..16 classes, 17 sky/free, 255 ignore."""

    def fingerprint(self) -> str:
        """Identifies the source and its settings; cached maps are keyed by it."""
        return self.name


class DepthSource(ABC):
    """Per-image metric depth (z along the optical axis, metres)."""

    name: str = "depth"

    @abstractmethod
    def depth(self, camera: CameraFrame) -> np.ndarray:
        """(camera.height, camera.width) float32 metres; 0 where there is no depth."""

    def fingerprint(self) -> str:
        return self.name


def check_semantics(
    semantics: np.ndarray, camera: CameraFrame, source: str, path: str | PathLike | None = None
) -> np.ndarray:
    """Validate a semantic map for ``camera``; errors name ``path`` (the map's file; default the image) and the
    source."""
    semantics = np.asarray(semantics)
    where = camera.image_path if path is None else path
    if semantics.shape != (camera.height, camera.width):
        raise InputError(where, f"{source} semantics have shape {semantics.shape}, "
                                f"expected {(camera.height, camera.width)}")
    if not np.issubdtype(semantics.dtype, np.integer):
        raise InputError(where, f"{source} semantics have dtype {semantics.dtype}, expected uint8")
    # Checked in the source's dtype: casting first would wrap 260 to 4 (car) and -1 to 255 (ignored).
    bad = ((semantics < 0) | (semantics > FREE)) & (semantics != IGNORE)
    if bad.any():
        raise InputError(where, f"{source} semantics contain value {int(semantics[bad][0])}, "
                                f"expected 0..{FREE} or {IGNORE}")
    return semantics.astype(np.uint8, copy=False)


def check_depth(depth: np.ndarray, camera: CameraFrame, source: str, path: str | PathLike | None = None) -> np.ndarray:
    """Validate a depth map for ``camera`` (finite where set, >= 0); errors name ``path`` (the map's file; default
    the image) and the source."""
    depth = np.asarray(depth)
    where = camera.image_path if path is None else path
    if depth.dtype.kind not in "fiu":
        raise InputError(where, f"{source} depth has dtype {depth.dtype}, expected a float array")
    depth = depth.astype(np.float32, copy=False)
    if depth.shape != (camera.height, camera.width):
        raise InputError(where, f"{source} depth has shape {depth.shape}, expected {(camera.height, camera.width)}")
    if np.isnan(depth).any():
        raise InputError(where, f"{source} depth contains NaN ({int(np.isnan(depth).sum())} pixels)")
    if (depth < 0).any():
        raise InputError(where, f"{source} depth contains negative values (min {float(depth.min()):.3f} m)")
    if np.isinf(depth).any():
        raise InputError(where, f"{source} depth contains infinite values; use 0 for 'no depth'")
    return depth
