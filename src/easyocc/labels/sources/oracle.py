"""The oracle: SimScenes' exact maps (what a perfect foundation model would output), optionally made noisy.

SimScenes writes, beside each image, exact z-depth (float32 .npy, ``inf`` for sky) and exact semantics (uint8
PNG of Occ3D ids, 17 for sky) at the paths :mod:`easyocc.data.synthetic.layout` gives. The oracle turns sky depth
into 0 ("no depth"), keeps sky as 17 in the semantics, and applies :mod:`.noise` when asked.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.data.synthetic.layout import sim_depth_path, sim_semantic_path
from easyocc.errors import InputError
from easyocc.labels.sources.base import DepthSource, SemanticSource, check_depth, check_semantics
from easyocc.labels.sources.maps import read_label_png, read_npy
from easyocc.labels.sources.noise import DepthNoise, SemanticNoise, add_depth_noise, add_semantic_noise, image_rng


def _settings(noise, seed: int) -> str:
    if noise.is_zero():
        return "exact"
    return ",".join(f"{k}={v:g}" for k, v in asdict(noise).items()) + f",seed={seed}"


class OracleSemantics(SemanticSource):
    """Exact SimScenes semantics under ``dataroot``, with optional :class:`SemanticNoise`."""

    name = "oracle"

    def __init__(self, dataroot: str | Path, noise: SemanticNoise | None = None, seed: int = 0):
        self.dataroot = Path(dataroot)
        self.noise = noise or SemanticNoise()
        self.seed = int(seed)

    def semantics(self, camera: CameraFrame) -> np.ndarray:
        path = sim_semantic_path(self.dataroot, camera.relpath)
        labels = check_semantics(read_label_png(path), camera, "oracle", path=path)
        if self.noise.is_zero():
            return labels
        return add_semantic_noise(labels, self.noise, image_rng(self.seed, camera.relpath, "semantics"))

    def fingerprint(self) -> str:
        return f"oracle-semantics:v1:{self.dataroot.resolve()}:{_settings(self.noise, self.seed)}"


class OracleDepth(DepthSource):
    """Exact SimScenes z-depth under ``dataroot`` (sky ``inf`` -> 0), with optional :class:`DepthNoise`."""

    name = "oracle"

    def __init__(self, dataroot: str | Path, noise: DepthNoise | None = None, seed: int = 0):
        self.dataroot = Path(dataroot)
        self.noise = noise or DepthNoise()
        self.seed = int(seed)

    def depth(self, camera: CameraFrame) -> np.ndarray:
        path = sim_depth_path(self.dataroot, camera.relpath)
        raw = read_npy(path)
        if raw.dtype.kind != "f":
            raise InputError(path, f"oracle depth has dtype {raw.dtype}, expected float32 with inf for sky")
        depth = check_depth(np.where(np.isposinf(raw), 0.0, raw), camera, "oracle", path=path)
        if self.noise.is_zero():
            return depth
        return add_depth_noise(depth, self.noise, image_rng(self.seed, camera.relpath, "depth"))

    def fingerprint(self) -> str:
        return f"oracle-depth:v1:{self.dataroot.resolve()}:{_settings(self.noise, self.seed)}"
