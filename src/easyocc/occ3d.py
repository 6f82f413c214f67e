"""The Occ3D-nuScenes contract, defined once: classes, colours, the voxel grid, and label/prediction files.

Grid: range [-40, -40, -1, 40, 40, 5.4] m, voxel 0.4 m, arrays (200, 200, 16) indexed [x, y, z] in the keyframe's
ego frame (x forward, y left, z up). The centre of voxel [i, j, k] is (i + 0.5) * 0.4 + lower.

Files:
- ground truth / pseudo-labels ``labels.npz`` with ``semantics``, ``mask_lidar``, ``mask_camera`` (uint8 200x200x16);
- predictions ``<sample_token>.npz`` with key ``pred`` (uint8 200x200x16), or the official submission's ``arr_0``;
  a folder written by ``easyocc predict`` also holds ``predictions.json``, which names the predicted samples.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from easyocc.errors import InputError
from easyocc.fileio import path_inside, read_zip_member, save_npz

CLASS_NAMES: tuple[str, ...] = (
    "others",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
    "free",
)
NUM_CLASSES = 18
FREE = 17
#: Classes 0..16: the classes averaged by the official mIoU (free is in the matrix, not in the mean).
NUM_SEMANTIC_CLASSES = 17
#: Label value that every reader and metric ignores (as in the devkit, which keeps only 0 <= gt < 18).
IGNORE = 255
CLASS_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

#: The 15 classes of OccNeRF's and GaussianOcc's "mIoU without others": 0 `others` and 12 `other_flat` dropped.
OCCNERF_15_CLASSES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)

#: Classes that move: their points come only from the current frame when labels are densified over time.
DYNAMIC_CLASSES: tuple[int, ...] = tuple(
    CLASS_IDS[n]
    for n in ("bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian", "trailer", "truck")
)

#: RGB colours, the palette of the Occ3D / SurroundOcc visualisations (free is white).
CLASS_COLORS: np.ndarray = np.array(
    [
        [0, 0, 0],  # others
        [255, 120, 50],  # barrier
        [255, 192, 203],  # bicycle
        [255, 255, 0],  # bus
        [0, 150, 245],  # car
        [0, 255, 255],  # construction_vehicle
        [200, 180, 0],  # motorcycle
        [255, 0, 0],  # pedestrian
        [255, 240, 150],  # traffic_cone
        [135, 60, 0],  # trailer
        [160, 32, 240],  # truck
        [255, 0, 255],  # driveable_surface
        [139, 137, 137],  # other_flat
        [75, 0, 75],  # sidewalk
        [150, 240, 80],  # terrain
        [230, 230, 250],  # manmade
        [0, 175, 0],  # vegetation
        [255, 255, 255],  # free
    ],
    dtype=np.uint8,
)


@dataclass(frozen=True)
class VoxelGrid:
    """An axis-aligned voxel grid in the keyframe's ego frame, arrays indexed [x, y, z]."""

    lower: tuple[float, float, float] = (-40.0, -40.0, -1.0)
    upper: tuple[float, float, float] = (40.0, 40.0, 5.4)
    voxel_size: float = 0.4

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(round((u - lo) / self.voxel_size)) for lo, u in zip(self.lower, self.upper))  # type: ignore[return-value]

    @property
    def lower_array(self) -> np.ndarray:
        return np.asarray(self.lower, dtype=np.float64)

    def centers(self, dtype=np.float32) -> np.ndarray:
        """Voxel centres in metres: (X, Y, Z, 3)."""
        axes = [
            (np.arange(n, dtype=np.float64) + 0.5) * self.voxel_size + lo for n, lo in zip(self.shape, self.lower)
        ]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(dtype)

    def to_voxel_units(self, points: np.ndarray) -> np.ndarray:
        """Metres -> continuous voxel coordinates, voxel [i, j, k] spanning [i, i+1) x [j, j+1) x [k, k+1)."""
        return (np.asarray(points, dtype=np.float64) - self.lower_array) / self.voxel_size

    def indices(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxel index of each point.

        points: (N, 3) metres.  Returns (ijk (N, 3) int64, inside (N,) bool); ijk is meaningful where inside.
        """
        ijk = np.floor(self.to_voxel_units(points)).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=1)
        return ijk, inside


#: The Occ3D-nuScenes grid: (200, 200, 16) voxels of 0.4 m.
OCC3D_GRID = VoxelGrid()
GRID_SHAPE: tuple[int, int, int] = OCC3D_GRID.shape
LABEL_KEYS = ("semantics", "mask_lidar", "mask_camera")
#: The file name of one keyframe's labels, in the Occ3D ``gts/`` layout ``<root>/<scene_name>/<sample_token>/``.
LABELS_FILE = "labels.npz"


def label_path(root: str | PathLike, scene_name: str, sample_token: str) -> Path:
    """``<root>/<scene_name>/<sample_token>/labels.npz``: where Occ3D ground truth and easyocc pseudo-labels live.
    Names that would leave ``root`` (read from a dataset's tables: untrusted) are an InputError."""
    return path_inside(root, scene_name, sample_token, what="scene name or sample token") / LABELS_FILE


def find_label_files(root: str | PathLike) -> dict[str, Path]:
    """Sample token -> ``<root>/<scene>/<token>/labels.npz``, in path order; an error naming ``root`` when there
    are none."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "labels folder not found")
    found = {p.parent.name: p for p in sorted(root.glob(f"*/*/{LABELS_FILE}"))}
    if not found:
        raise InputError(root, f"no <scene>/<sample_token>/{LABELS_FILE} files")
    return found


def prediction_path(root: str | PathLike, token: str) -> Path:
    """``<root>/<sample_token>.npz``; a token that would leave ``root`` is an InputError."""
    return path_inside(root, f"{token}.npz", what="sample token")


@dataclass(frozen=True)
class Occ3DLabels:
    """One keyframe's labels, each (200, 200, 16) uint8; masks are 0/1."""

    semantics: np.ndarray
    mask_lidar: np.ndarray | None = None
    mask_camera: np.ndarray | None = None


def _open_npz(path: Path):
    if not path.is_file():
        raise InputError(path, "file not found" if not path.exists() else "not a file")
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable npz file ({exc})") from None


def _array_from_npy_bytes(raw: bytes, writable: bool = True) -> np.ndarray:
    """Parse a whole ``.npy`` file held in memory (no pickles): a writable copy, or a read-only view of ``raw``."""
    fp = io.BytesIO(raw)
    version = np.lib.format.read_magic(fp)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(fp)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    count = int(np.prod(shape, dtype=np.int64))
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=fp.tell())
    array = array.reshape(shape, order="F" if fortran_order else "C")
    return array.copy(order="K") if writable else array


def _read_member(npz, path: Path, key: str, writable: bool = True) -> np.ndarray:
    if key not in npz.files:
        raise InputError(path, f"missing key '{key}' (has: {', '.join(npz.files) or 'nothing'})")
    try:
        # One inflate call for the whole member (CRC checked): ``npz[key]`` streams it in small chunks through
        # zlib and copies it twice, which made decoding the evaluator's bottleneck.
        member = f"{key}.npy" if f"{key}.npy" in npz.zip.namelist() else key
        return _array_from_npy_bytes(read_zip_member(npz.zip, member), writable)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, KeyError) as exc:
        raise InputError(path, f"corrupt array '{key}' ({exc})") from None


def _check_volume(path: Path, key: str, array: np.ndarray, max_value: int, allow_ignore: bool) -> np.ndarray:
    """Shape (200, 200, 16), an integer or bool dtype, values in 0..max_value (255 where allowed) -> uint8."""
    if array.shape != GRID_SHAPE:
        raise InputError(path, f"'{key}' has shape {array.shape}, expected {GRID_SHAPE}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise InputError(path, f"'{key}' has dtype {array.dtype}, expected uint8")
    if array.dtype != np.uint8:
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise InputError(path, f"'{key}' has values in [{lo}, {hi}], expected 0..{max_value}")
        array = array.astype(np.uint8)
    # Fast path (the evaluator reads thousands of files): a maximum within range proves every value valid.
    if int(array.max()) <= max_value:
        return array
    # Otherwise one pass over the bytes: a 256-bin histogram tells whether only 255 exceeds the maximum.
    counts = np.bincount(array.reshape(-1), minlength=256)
    bad = np.flatnonzero(counts[max_value + 1 :]) + max_value + 1
    if allow_ignore:
        bad = bad[bad != IGNORE]
    if bad.size:
        allowed = f"0..{max_value}" + (f" or {IGNORE} (ignored)" if allow_ignore else "")
        raise InputError(path, f"'{key}' has value {int(bad[0])}, expected {allowed}")
    return array


def read_labels(path: str | PathLike, keys: tuple[str, ...] = LABEL_KEYS, writable: bool = True) -> Occ3DLabels:
    """Read an Occ3D ``labels.npz`` (ground truth or pseudo-labels), validating what it reads.

    Only the members named in ``keys`` are decompressed (``semantics`` is always read).
    semantics: values 0..17, or 255 (ignored); masks: 0/1. ``writable=False`` returns read-only arrays and saves
    a copy of each (the evaluator reads thousands of files).
    """
    path = Path(path)
    with _open_npz(path) as npz:
        semantics = _check_volume(path, "semantics", _read_member(npz, path, "semantics", writable), FREE, True)
        masks = {
            key: _check_volume(path, key, _read_member(npz, path, key, writable), 1, False)
            for key in ("mask_lidar", "mask_camera")
            if key in keys
        }
    return Occ3DLabels(semantics=semantics, **masks)


def write_labels(
    path: str | PathLike, semantics: np.ndarray, mask_lidar: np.ndarray, mask_camera: np.ndarray
) -> None:
    """Write an Occ3D ``labels.npz`` atomically (uint8 arrays, compressed), after validating them."""
    path = Path(path)
    arrays = {
        "semantics": _check_volume(path, "semantics", np.asarray(semantics), FREE, True),
        "mask_lidar": _check_volume(path, "mask_lidar", np.asarray(mask_lidar), 1, False),
        "mask_camera": _check_volume(path, "mask_camera", np.asarray(mask_camera), 1, False),
    }
    save_npz(path, **arrays)


def read_prediction(path: str | PathLike, writable: bool = True) -> np.ndarray:
    """Read a prediction ``<sample_token>.npz``: key ``pred``, or the official submission's positional ``arr_0``.

    Returns (200, 200, 16) uint8 with values 0..17 (read-only with ``writable=False``, which saves a copy).
    """
    path = Path(path)
    with _open_npz(path) as npz:
        key = "pred" if "pred" in npz.files else "arr_0" if "arr_0" in npz.files else None
        if key is None:
            raise InputError(path, f"no 'pred' or 'arr_0' array (has: {', '.join(npz.files) or 'nothing'})")
        return _check_volume(path, key, _read_member(npz, path, key, writable), FREE, False)


def labels_as_prediction(semantics: np.ndarray) -> np.ndarray:
    """Label semantics (X, Y, Z) scored as a prediction: an ignored voxel (255) is no prediction, i.e. free.
    Returns uint8 values 0..17."""
    return np.where(semantics == IGNORE, FREE, semantics).astype(np.uint8)


def write_prediction(path: str | PathLike, pred: np.ndarray) -> None:
    """Write a prediction file with key ``pred`` (uint8 200x200x16), atomically."""
    path = Path(path)
    save_npz(path, pred=_check_volume(path, "pred", np.asarray(pred), FREE, False))


PREDICTIONS_MANIFEST = "predictions.json"
PREDICTIONS_MANIFEST_FORMAT = "easyocc-predictions/1"


def read_predictions_manifest(folder: str | PathLike) -> dict | None:
    """``<folder>/predictions.json`` written by ``easyocc predict`` (format, checkpoint, data, version, split,
    ``samples``: the predicted sample tokens, ``complete``), or None when the folder has none."""
    path = Path(folder) / PREDICTIONS_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable ({' '.join(str(exc).split())})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PREDICTIONS_MANIFEST_FORMAT:
        raise InputError(path, f"not an easyocc predictions manifest (format {PREDICTIONS_MANIFEST_FORMAT})")
    samples = manifest.get("samples")
    if not isinstance(samples, list) or not all(isinstance(t, str) for t in samples):
        raise InputError(path, "'samples' must be a list of sample tokens")
    return manifest
