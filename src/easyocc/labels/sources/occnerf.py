"""The 2D semantic labels OccNeRF released (made with Grounded-SAM), read as Occ3D ids.

Files: ``<occnerf_dir>/samples/CAM_*/<image stem>_mask.bin``, raw int8 (H, W) with no header (900x1600 for
nuScenes), where ``occnerf_dir`` is their ``nuscenes_semantic`` folder. Their ids 0..16 map to Occ3D by their own
table; -1 marks pixels no mask covered ("uncertain"). OccNeRF indexes its table with -1 and so, by accident,
turns those pixels into 17 (free, like sky); here they become 255 (ignored), as intended.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.errors import InputError
from easyocc.fileio import map_path
from easyocc.labels.sources.base import SemanticSource, check_semantics
from easyocc.occ3d import CLASS_IDS, IGNORE

#: OccNeRF's label id -> Occ3D class (REFERENCE.md 1.5: sedan, highway, bus, truck, terrain, tree, sidewalk,
#: bicycle, barrier, person, building, motorcycle, crane, trailer, cone, sky).
OCCNERF_CLASSES: tuple[str, ...] = (
    "others", "car", "driveable_surface", "bus", "truck", "terrain", "vegetation", "sidewalk", "bicycle",
    "barrier", "pedestrian", "manmade", "motorcycle", "construction_vehicle", "trailer", "traffic_cone", "free",
)
UNCERTAIN = -1
_INVALID = 254  # marks raw values outside -1..16 in the lookup table


def _lookup_table() -> np.ndarray:
    """256 entries indexed by the raw byte (int8 viewed as uint8): Occ3D id, IGNORE for -1, _INVALID else."""
    table = np.full(256, _INVALID, dtype=np.uint8)
    table[: len(OCCNERF_CLASSES)] = [CLASS_IDS[name] for name in OCCNERF_CLASSES]
    table[UNCERTAIN & 0xFF] = IGNORE
    return table


OCCNERF_TO_OCC3D = _lookup_table()


def occnerf_to_occ3d(raw: np.ndarray) -> np.ndarray:
    """raw: int8 OccNeRF ids (-1..16), any shape -> uint8 Occ3D ids of the same shape (uncertain -> 255)."""
    return OCCNERF_TO_OCC3D[np.asarray(raw, dtype=np.int8).view(np.uint8)]


class OccNeRFSemantics(SemanticSource):
    """OccNeRF's released Grounded-SAM labels under ``occnerf_dir`` (their ``nuscenes_semantic`` folder)."""

    name = "occnerf"

    def __init__(self, occnerf_dir: str | Path):
        self.root = Path(occnerf_dir)

    def path(self, camera: CameraFrame) -> Path:
        return map_path(self.root, camera.relpath, "_mask.bin")

    def semantics(self, camera: CameraFrame) -> np.ndarray:
        path = self.path(camera)
        if not path.is_file():
            raise InputError(path, "file not found (OccNeRF labels exist for train-split keyframes only)")
        expected = camera.height * camera.width
        size = path.stat().st_size
        if size != expected:
            raise InputError(path, f"has {size} bytes, expected {expected} (raw int8 {camera.height}x{camera.width})")
        labels = occnerf_to_occ3d(np.fromfile(path, dtype=np.int8).reshape(camera.height, camera.width))
        bad = labels == _INVALID
        if bad.any():
            raw = int(np.fromfile(path, dtype=np.int8).reshape(labels.shape)[bad][0])
            raise InputError(path, f"contains label {raw}, expected -1..{len(OCCNERF_CLASSES) - 1}")
        return check_semantics(labels, camera, "occnerf", path=path)

    def fingerprint(self) -> str:
        return f"occnerf:v1:{self.root.resolve()}"
