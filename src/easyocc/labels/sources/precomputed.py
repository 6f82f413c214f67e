"""Precomputed 2D maps on disk, one file per image, keyed by the image's relpath (the ``npy`` source).

Depth: ``<depth_dir>/<relpath without extension>.npy`` (float, metres, z along the optical axis; ``inf`` is read
as "no depth", like SimScenes' sky) or ``.png`` (16-bit, millimetres, 0 = no depth).
Semantics: ``<semantics_dir>/<relpath without extension>.png`` (8-bit Occ3D ids) or ``.npy`` (integer ids).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.errors import InputError
from easyocc.fileio import map_path
from easyocc.labels.sources.base import DepthSource, SemanticSource, check_depth, check_semantics
from easyocc.labels.sources.maps import read_depth_png, read_label_png, read_npy


def _find(root: Path, camera: CameraFrame, suffixes: tuple[str, str], what: str) -> Path:
    """The first of ``<root>/<relpath stem><suffix>`` that exists; an error naming the first one otherwise."""
    candidates = [map_path(root, camera.relpath, suffix) for suffix in suffixes]
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(candidates[0], f"no precomputed {what} for this image (nor {candidates[1].name})")


class PrecomputedDepth(DepthSource):
    """Depth maps under ``depth_dir`` (.npy float metres or 16-bit .png millimetres)."""

    name = "npy"

    def __init__(self, depth_dir: str | Path):
        self.root = Path(depth_dir)

    def depth(self, camera: CameraFrame) -> np.ndarray:
        path = _find(self.root, camera, (".npy", ".png"), "depth map")
        if path.suffix == ".png":
            return check_depth(read_depth_png(path), camera, "npy", path=path)
        raw = read_npy(path)
        if raw.dtype.kind != "f":
            raise InputError(path, f"depth .npy has dtype {raw.dtype}, expected float metres")
        return check_depth(np.where(np.isposinf(raw), 0.0, raw), camera, "npy", path=path)

    def fingerprint(self) -> str:
        return f"npy-depth:v1:{self.root.resolve()}"


class PrecomputedSemantics(SemanticSource):
    """Semantic maps under ``semantics_dir`` (8-bit .png or integer .npy of Occ3D ids)."""

    name = "npy"

    def __init__(self, semantics_dir: str | Path):
        self.root = Path(semantics_dir)

    def semantics(self, camera: CameraFrame) -> np.ndarray:
        path = _find(self.root, camera, (".png", ".npy"), "semantic map")
        labels = read_label_png(path) if path.suffix == ".png" else read_npy(path)
        if labels.dtype.kind not in "iu":
            raise InputError(path, f"semantics have dtype {labels.dtype}, expected integer Occ3D ids")
        return check_semantics(labels, camera, "npy", path=path)

    def fingerprint(self) -> str:
        return f"npy-semantics:v1:{self.root.resolve()}"
