"""An on-disk cache around any 2D source, so that rerunning the 3D stage does not rerun the foundation models.

Layout: ``<cache_dir>/<source name>-<hash of the source's fingerprint>/`` holds ``fingerprint.txt`` (the full
fingerprint, for people) and one file per image, keyed by the image's relpath:

- semantics: ``<relpath without extension>.png``, 8-bit PNG of Occ3D ids (lossless);
- depth: ``<relpath without extension>.npy``, float16 metres (relative precision 2^-11, about 5 cm at 100 m,
  far below any model's error and the 0.4 m voxel; no range limit below 65 km). A miss returns the float16-rounded
  map too, so a first run and a rerun give identical labels.

Other settings (thresholds, noise, seed, weights) give another fingerprint and so another folder: stale entries
are never read. A hit is used only if it reads back, has the image's shape and is not older than the image;
anything else is recomputed and overwritten. Files are written atomically, so parallel workers are safe.
Keys are relpaths, unique in nuScenes; two SimScenes datasets may share relpaths, so give each its own cache.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.errors import InputError
from easyocc.fileio import atomic_write, map_path
from easyocc.labels.sources.base import DepthSource, SemanticSource, check_depth, check_semantics
from easyocc.labels.sources.maps import read_label_png, read_npy, write_label_png, write_npy

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)


def cache_folder(cache_dir: str | Path, name: str, fingerprint: str) -> Path:
    """``<cache_dir>/<name>-<16 hex digits of sha256(fingerprint)>``."""
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{name}-{digest}"


class _CacheFolder:
    """One source's folder: its fingerprint note, entry paths, freshness and hit/miss counts."""

    def __init__(self, cache_dir: str | Path, name: str, fingerprint: str, suffix: str):
        self.root = cache_folder(cache_dir, name, fingerprint)
        self.fingerprint = fingerprint
        self.suffix = suffix
        self.hits = 0
        self.misses = 0

    def entry(self, camera: CameraFrame) -> Path:
        return map_path(self.root, camera.relpath, self.suffix)

    def fresh(self, path: Path, camera: CameraFrame) -> bool:
        """The entry exists and is not older than the image it was made from (when the image exists)."""
        if not path.is_file():
            return False
        try:
            return path.stat().st_mtime_ns >= camera.image_path.stat().st_mtime_ns
        except FileNotFoundError:  # no image to compare with (e.g. a source that reads only its own maps)
            return True

    def get(self, camera: CameraFrame, read, compute, write) -> np.ndarray:
        """The entry for ``camera`` if it is fresh and ``read(path)`` accepts it, else ``compute()``, stored with
        ``write(path, map)``."""
        path = self.entry(camera)
        if self.fresh(path, camera):
            try:
                value = read(path)
                self.hits += 1
                return value
            except InputError as exc:
                log.warning("recomputing a bad cache entry: %s", exc)
        value = compute()
        write(path, value)
        self.misses += 1
        note = self.root / "fingerprint.txt"
        if not note.is_file():
            with atomic_write(note, "w") as handle:
                handle.write(self.fingerprint + "\n")
        return value


class CachedSemantics(SemanticSource):
    """``source`` with its maps cached under ``cache_dir`` as 8-bit PNGs."""

    def __init__(self, source: SemanticSource, cache_dir: str | Path):
        self.source = source
        self.name = source.name
        self.folder = _CacheFolder(cache_dir, source.name, source.fingerprint(), ".png")

    def semantics(self, camera: CameraFrame) -> np.ndarray:
        return self.folder.get(
            camera,
            read=lambda path: check_semantics(read_label_png(path), camera, f"cached {self.name}", path=path),
            compute=lambda: check_semantics(self.source.semantics(camera), camera, self.name),
            write=write_label_png,
        )

    def fingerprint(self) -> str:
        return self.source.fingerprint()


class CachedDepth(DepthSource):
    """``source`` with its maps cached under ``cache_dir`` as float16 .npy."""

    def __init__(self, source: DepthSource, cache_dir: str | Path):
        self.source = source
        self.name = source.name
        self.folder = _CacheFolder(cache_dir, source.name, source.fingerprint(), ".npy")

    def depth(self, camera: CameraFrame) -> np.ndarray:
        return self.folder.get(
            camera,
            read=lambda path: check_depth(read_npy(path), camera, f"cached {self.name}", path=path),
            compute=lambda: as_float16_precision(check_depth(self.source.depth(camera), camera, self.name)),
            write=lambda path, depth: write_npy(path, depth.astype(np.float16)),
        )

    def fingerprint(self) -> str:
        # The cache rounds depth to float16, which moves a few voxels: labels made with and without it differ, so
        # their manifests must too (a resumed folder never mixes them). The cache folder is keyed by the source's
        # own fingerprint.
        return f"{self.source.fingerprint()}+float16-cache"


def as_float16_precision(depth: np.ndarray) -> np.ndarray:
    """(H, W) float32 rounded to what the float16 cache stores (clipped to float16's range), still float32."""
    return np.minimum(depth, FLOAT16_MAX).astype(np.float16).astype(np.float32)
