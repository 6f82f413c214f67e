"""An index of keyframes over any nuScenes-format dataroot (real nuScenes or SimScenes), read with nuscenes-devkit.

Per keyframe: its scene, order and reference ego pose (``global_T_ego`` at the LIDAR_TOP timestamp: the frame of
Occ3D labels), the LiDAR scan, and per camera the image, intrinsics, ``ego_T_cam`` and ``global_T_ego`` at that
camera's own timestamp (nuScenes cameras fire at different times, each with its own ego pose).

Per keyframe camera also its neighbouring images in time (``Keyframe.neighbour(camera, offset)``, OccNeRF's frame
ids -1 and +1 by default): the camera's sample_data ``prev``/``next`` chain walked ``|offset|`` steps, which on
nuScenes and on SimScenes with sweeps reaches the 12 Hz sweeps. A neighbour is None where the chain ends (the
first and last keyframe of a scene) or where a step spans more than ``max_neighbour_step_us`` (250 ms: nuScenes'
occasional dropped frame passes, the 500 ms jump between keyframes of a dataset without sweeps does not).

The index holds plain arrays and strings, so it pickles to worker processes; the devkit object is not kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from easyocc.errors import EasyOccError, InputError
from easyocc.fileio import safe_name
from easyocc.geometry import invert_transform, make_transform

#: The six cameras in the order nuScenes-based occupancy models (BEVFormer, OccNeRF, SurroundOcc) use.
CAMERA_NAMES: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
LIDAR_NAME = "LIDAR_TOP"
#: The camera images next to each keyframe image that the index reads (OccNeRF's frame ids).
NEIGHBOUR_OFFSETS: tuple[int, ...] = (-1, 1)
#: Longest step between consecutive images of a neighbour chain: 3 periods of the 12 Hz cameras.
MAX_NEIGHBOUR_STEP_US = 250_000
#: A dataset's own train/val split of scene names (SimScenes writes one); real nuScenes uses the devkit's splits.
SPLITS_FILE = "splits.json"


@dataclass(frozen=True)
class CameraFrame:
    """One camera image (a keyframe's, or a sweep: ``is_key_frame`` False).

    K: (3, 3) float64 intrinsics for the stored image size; ego_T_cam, global_T_ego: (4, 4) float64,
    global_T_ego taken at this image's own timestamp (microseconds).
    """

    name: str
    sample_data_token: str
    image_path: Path
    relpath: str
    width: int
    height: int
    timestamp: int
    K: np.ndarray
    ego_T_cam: np.ndarray
    global_T_ego: np.ndarray
    is_key_frame: bool = True

    @property
    def global_T_cam(self) -> np.ndarray:
        return self.global_T_ego @ self.ego_T_cam


@dataclass(frozen=True)
class Keyframe:
    """One nuScenes sample (keyframe). ``global_T_ego`` is the ego pose at the LIDAR_TOP timestamp.

    ``neighbours[camera][offset]``: the image ``offset`` steps from the camera's image along its sample_data chain,
    or None (see the module docstring); read it with :meth:`neighbour`.
    """

    token: str
    scene_name: str
    index: int
    timestamp: int
    global_T_ego: np.ndarray
    lidar_path: Path
    ego_T_lidar: np.ndarray
    cameras: dict[str, CameraFrame]
    neighbours: dict[str, dict[int, CameraFrame | None]] = field(default_factory=dict)

    def neighbour(self, camera: str, offset: int) -> CameraFrame | None:
        """The image ``offset`` steps (-1: the one before) from ``camera``'s image of this keyframe, or None where
        there is none; a KeyError when the index was built without that camera or offset."""
        found = self.neighbours.get(camera, {})
        if offset not in found:
            raise KeyError(f"the index holds no neighbour {offset:+d} of {camera} (built with offsets "
                           f"{sorted(found)}); pass neighbour_offsets to DatasetIndex")
        return found[offset]

    def ref_T_cam(self, camera: str) -> np.ndarray:
        """(4, 4) camera -> this keyframe's ego frame, through the camera's own ego pose (float64)."""
        cam = self.cameras[camera]
        return invert_transform(self.global_T_ego) @ cam.global_T_cam


@dataclass
class Scene:
    name: str
    token: str
    keyframes: list[Keyframe] = field(default_factory=list)


def _table_name(nusc, table: str, record: dict, key: str, nested: bool = False) -> str:
    """``record[key]``, a name that becomes a path (scene name, sample token, file name), checked to stay inside
    its folder; an error names the table file and the row."""
    row = nusc.getind(table, record["token"])
    where = Path(nusc.table_root) / f"{table}.json"
    return safe_name(record[key], where, f"row {row} (token {record['token']!r}): {key}", nested)


class _TableReader:
    """Builds index records from the devkit's tables. A calibrated_sensor's ``ego_T_sensor`` and K are read once
    and shared, read-only, by every frame of that sensor: a pickled index stores them once."""

    def __init__(self, nusc, dataroot: Path, cameras: tuple[str, ...], offsets: tuple[int, ...], max_step_us: int):
        self.nusc, self.dataroot, self.cameras = nusc, dataroot, cameras
        self.offsets, self.max_step_us = offsets, max_step_us
        self._calibrations: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    def calibration(self, token: str, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(ego_T_sensor (4, 4), K (3, 3) or None for a sensor that is no camera) of a calibrated_sensor."""
        if token not in self._calibrations:
            cs = self.nusc.get("calibrated_sensor", token)
            ego_T_sensor = make_transform(cs["rotation"], cs["translation"])
            K = None
            if name != LIDAR_NAME:
                K = np.asarray(cs["camera_intrinsic"], dtype=np.float64)
                if K.shape != (3, 3):
                    raise InputError(Path(self.nusc.table_root) / "calibrated_sensor.json",
                                     f"row {self.nusc.getind('calibrated_sensor', token)}: camera {name} has no "
                                     "3x3 camera_intrinsic")
                K.setflags(write=False)
            ego_T_sensor.setflags(write=False)
            self._calibrations[token] = (ego_T_sensor, K)
        return self._calibrations[token]

    def global_T_ego(self, sd: dict) -> np.ndarray:
        pose = self.nusc.get("ego_pose", sd["ego_pose_token"])
        return make_transform(pose["rotation"], pose["translation"])

    def camera_frame(self, sd_token: str, name: str) -> CameraFrame:
        sd = self.nusc.get("sample_data", sd_token)
        ego_T_cam, K = self.calibration(sd["calibrated_sensor_token"], name)
        relpath = _table_name(self.nusc, "sample_data", sd, "filename", nested=True)
        return CameraFrame(
            name=name,
            sample_data_token=sd_token,
            image_path=self.dataroot / relpath,
            relpath=relpath,
            width=int(sd["width"]),
            height=int(sd["height"]),
            timestamp=int(sd["timestamp"]),
            K=K,
            ego_T_cam=ego_T_cam,
            global_T_ego=self.global_T_ego(sd),
            is_key_frame=bool(sd["is_key_frame"]),
        )

    def chain_neighbour(self, sd_token: str, offset: int) -> str | None:
        """The sample_data token ``offset`` steps along ``sd_token``'s prev/next chain; None where the chain ends
        or a step spans more than ``max_step_us``."""
        link = "next" if offset > 0 else "prev"
        sd = self.nusc.get("sample_data", sd_token)
        for _ in range(abs(offset)):
            if not sd[link]:
                return None
            step = self.nusc.get("sample_data", sd[link])
            if abs(int(step["timestamp"]) - int(sd["timestamp"])) > self.max_step_us:
                return None
            sd = step
        return sd["token"]

    def neighbours(self, sd_token: str, name: str) -> dict[int, CameraFrame | None]:
        tokens = {offset: self.chain_neighbour(sd_token, offset) for offset in self.offsets}
        return {offset: None if token is None else self.camera_frame(token, name) for offset, token in tokens.items()}

    def keyframe(self, sample: dict, scene_name: str, index: int) -> Keyframe:
        data = sample["data"]
        missing = [c for c in (LIDAR_NAME, *self.cameras) if c not in data]
        if missing:
            raise InputError(Path(self.nusc.table_root) / "sample_data.json",
                             f"sample {sample['token']!r} has no {', '.join(missing)} data")
        lidar_sd = self.nusc.get("sample_data", data[LIDAR_NAME])
        return Keyframe(
            token=_table_name(self.nusc, "sample", sample, "token"),
            scene_name=scene_name,
            index=index,
            timestamp=int(sample["timestamp"]),
            global_T_ego=self.global_T_ego(lidar_sd),
            lidar_path=self.dataroot / _table_name(self.nusc, "sample_data", lidar_sd, "filename", nested=True),
            ego_T_lidar=self.calibration(lidar_sd["calibrated_sensor_token"], LIDAR_NAME)[0],
            cameras={c: self.camera_frame(data[c], c) for c in self.cameras},
            neighbours={c: self.neighbours(data[c], c) for c in self.cameras} if self.offsets else {},
        )


#: The version ``auto`` picks among several table folders (real nuScenes ships trainval, test and mini).
PREFERRED_VERSION = "v1.0-trainval"


def resolve_version(dataroot: str | Path, version: str) -> str:
    """``version``, or for "auto" the dataroot's only ``v1.0-*`` table folder (``v1.0-trainval`` among several)."""
    if version != "auto":
        return version
    found = sorted(p.name for p in Path(dataroot).glob("v1.0-*") if p.is_dir())
    if len(found) == 1:
        return found[0]
    if PREFERRED_VERSION in found:
        return PREFERRED_VERSION
    what = f"several ({', '.join(found)})" if found else "no"
    raise InputError(dataroot, f"cannot pick the nuScenes table version: {what} v1.0-* folders; pass the version")


def _broken_table(table_dir: Path, exc: Exception) -> Path:
    """The table file a devkit failure comes from, when it can be told (else the folder)."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return Path(exc.filename)
    if isinstance(exc, json.JSONDecodeError):
        for path in sorted(table_dir.glob("*.json")):
            try:
                json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                return path
    return table_dir


def load_nuscenes(dataroot: str | Path, version: str, verbose: bool = False):
    """The devkit's ``NuScenes`` object (``version`` may be "auto"), with its failures turned into one-line
    errors naming the table file where it can be told."""
    from nuscenes.nuscenes import NuScenes

    dataroot = Path(dataroot)
    if not dataroot.is_dir():
        raise InputError(dataroot, "dataroot not found" if not dataroot.exists() else "dataroot is not a folder")
    version = resolve_version(dataroot, version)
    table_dir = dataroot / version
    if not table_dir.is_dir():
        found = sorted(p.name for p in dataroot.glob("v1.0-*"))
        hint = f" (found: {', '.join(found)})" if found else ""
        raise InputError(table_dir, f"no nuScenes tables for version '{version}'{hint}")
    try:
        return NuScenes(version=version, dataroot=str(dataroot), verbose=verbose)
    except (AssertionError, KeyError, FileNotFoundError, ValueError, TypeError, IndexError, AttributeError,
            UnicodeDecodeError) as exc:
        where = _broken_table(table_dir, exc)
        raise InputError(where, f"nuscenes-devkit cannot load the tables ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]})") from None


class DatasetIndex:
    """Scenes and keyframes of a nuScenes-format dataroot, in time order; per keyframe camera, its neighbouring
    images at ``neighbour_offsets`` (none when empty).

    >>> index = DatasetIndex("data/simscenes", "v1.0-mini")        # doctest: +SKIP
    >>> kf = index.scenes[0].keyframes[0]; kf.cameras["CAM_FRONT"].K  # doctest: +SKIP
    """

    def __init__(
        self,
        dataroot: str | Path,
        version: str = "v1.0-trainval",
        cameras: tuple[str, ...] = CAMERA_NAMES,
        scene_names: list[str] | None = None,
        verbose: bool = False,
        neighbour_offsets: tuple[int, ...] = NEIGHBOUR_OFFSETS,
        max_neighbour_step_us: int = MAX_NEIGHBOUR_STEP_US,
    ):
        if 0 in neighbour_offsets:
            raise ValueError("neighbour offset 0 is the keyframe's own image (Keyframe.cameras)")
        self.dataroot = Path(dataroot)
        self.cameras = tuple(cameras)
        self.neighbour_offsets = tuple(neighbour_offsets)
        nusc = load_nuscenes(self.dataroot, version, verbose)
        self.version = version = nusc.version
        reader = _TableReader(nusc, self.dataroot, self.cameras, self.neighbour_offsets, max_neighbour_step_us)
        wanted = None if scene_names is None else set(scene_names)
        self.scenes: list[Scene] = []
        for rec in sorted(nusc.scene, key=lambda r: r["name"]):
            if wanted is not None and rec["name"] not in wanted:
                continue
            scene = Scene(name=_table_name(nusc, "scene", rec, "name"), token=rec["token"])
            token = rec["first_sample_token"]
            while token:
                sample = nusc.get("sample", token)
                scene.keyframes.append(reader.keyframe(sample, scene.name, len(scene.keyframes)))
                token = sample["next"]
            self.scenes.append(scene)
        if wanted is not None:
            unknown = wanted - {s.name for s in self.scenes}
            if unknown:
                raise InputError(self.dataroot / version, f"unknown scene(s): {', '.join(sorted(unknown))}")
        self.keyframes: dict[str, Keyframe] = {kf.token: kf for s in self.scenes for kf in s.keyframes}

    def __len__(self) -> int:
        return len(self.keyframes)

    def scene_of(self, token: str) -> Scene:
        name = self.keyframes[token].scene_name
        return next(s for s in self.scenes if s.name == name)

    def split(self, split: str) -> list[Scene]:
        """Scenes of a split ('train', 'val', ...), from the dataset's splits.json or the devkit's splits."""
        names = set(split_scene_names(self.dataroot, self.version, split))
        return [s for s in self.scenes if s.name in names]


def split_scene_names(dataroot: str | Path, version: str, split: str) -> list[str]:
    """Scene names of ``split``: ``<dataroot>/splits.json`` when present (SimScenes), else nuScenes' official
    splits (``train``/``val`` mean ``mini_train``/``mini_val`` for v1.0-mini)."""
    path = Path(dataroot) / SPLITS_FILE
    if path.is_file():
        try:
            splits = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"invalid JSON ({exc})") from None
        if not isinstance(splits, dict):
            raise InputError(path, "expected a mapping of split name -> list of scene names")
        if split not in splits:
            raise InputError(path, f"no split '{split}' (has: {', '.join(map(str, splits))})")
        names = splits[split]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(path, f"split '{split}' must be a list of scene names")
        return list(names)
    from nuscenes.utils.splits import create_splits_scenes

    official = create_splits_scenes()
    if resolve_version(dataroot, version).endswith("mini") and split in ("train", "val"):
        split = f"mini_{split}"
    if split not in official:
        raise EasyOccError(f"unknown split '{split}' (known: {', '.join(sorted(official))})")
    return list(official[split])
