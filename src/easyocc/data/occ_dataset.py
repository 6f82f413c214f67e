"""A torch Dataset of keyframes for the EasyOcc model: six resized images, their intrinsics and camera -> ego
transforms, and (for training) the keyframe's pseudo-labels.

Images are resized (and optionally cropped) with the intrinsics kept consistent (``geometry.scale_intrinsics``,
``geometry.crop_intrinsics``). Items hold uint8 images; the model normalises them on its device.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate, default_convert

from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex, Keyframe, resolve_version, split_scene_names
from easyocc.errors import EasyOccError, InputError
from easyocc.geometry import crop_intrinsics, scale_intrinsics
from easyocc.occ3d import label_path as occ3d_label_path
from easyocc.occ3d import read_labels


@dataclass
class DataConfig:
    """Which keyframes, and how their images are prepared."""

    #: nuScenes table version under the dataroot; "auto" = the dataroot's only ``v1.0-*`` folder.
    version: str = "auto"
    split: str = "train"
    #: (height, width) every image is resized to (OccNeRF: 336 x 672).
    image_size: tuple[int, int] = (336, 672)
    #: Optional (top, left, height, width) crop of the resized image.
    crop: tuple[int, int, int, int] | None = None
    num_workers: int = 4
    #: Train without the keyframes that have no pseudo-label file (instead of stopping with an error).
    skip_missing_labels: bool = False

    def __post_init__(self):
        height, width = self.image_size
        if height < 1 or width < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.crop is not None:
            top, left, ch, cw = self.crop
            if top < 0 or left < 0 or ch < 1 or cw < 1 or top + ch > height or left + cw > width:
                raise ValueError(f"crop {self.crop} does not fit inside the resized image {self.image_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0 (0 loads in the training process), got {self.num_workers}")

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the images the network sees."""
        return tuple(self.crop[2:]) if self.crop is not None else tuple(self.image_size)  # type: ignore[return-value]


def split_keyframes(dataroot: str | Path, version: str, split: str) -> list[Keyframe]:
    """Keyframes of ``split``'s scenes (``splits.json`` or the devkit's splits), scene by scene in time order."""
    version = resolve_version(dataroot, version)
    names = split_scene_names(dataroot, version, split)
    index = DatasetIndex(dataroot, version, scene_names=names)
    return [kf for scene in index.scenes for kf in scene.keyframes]


def label_path(labels_dir: str | Path, keyframe: Keyframe) -> Path:
    """``<labels>/<scene_name>/<sample_token>/labels.npz`` (the Occ3D ``gts/`` layout)."""
    return occ3d_label_path(labels_dir, keyframe.scene_name, keyframe.token)


def _jpeg_reduction(stored_size: tuple[int, int], target_size: tuple[int, int]) -> int:
    """The largest JPEG DCT reduction (8, 4, 2; else 1) that divides the stored size exactly and still leaves at
    least the target size: decoding at it is cheap and the decoded image spans exactly the stored extent."""
    (sw, sh), (tw, th) = stored_size, target_size
    for factor in (8, 4, 2):
        if sw % factor == 0 and sh % factor == 0 and sw // factor >= tw and sh // factor >= th:
            return factor
    return 1


def load_camera_image(
    path: Path, K: np.ndarray, stored_size: tuple[int, int], config: DataConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image, resize it to ``config.image_size``, crop it; the intrinsics follow.

    K: (3, 3) for the stored image of ``stored_size`` (width, height) as the tables give it.
    Returns image (3, H, W) uint8 RGB and K (3, 3) float64 for it.
    """
    height, width = config.image_size
    try:
        with Image.open(path) as image:
            if image.size != stored_size:
                raise InputError(path, f"image is {image.size[0]}x{image.size[1]}, the tables say "
                                       f"{stored_size[0]}x{stored_size[1]}")
            factor = _jpeg_reduction(stored_size, (width, height))
            if factor > 1:
                reduced = (stored_size[0] // factor, stored_size[1] // factor)
                image.draft("RGB", reduced)  # a no-op for formats other than JPEG
                if image.size not in (reduced, stored_size):
                    raise InputError(path, f"unexpected reduced decoding size {image.size}")
            rgb = image.convert("RGB").resize((width, height), Image.BILINEAR)
    except OSError as exc:
        raise InputError(path, f"cannot read the image ({exc})") from None
    array = np.asarray(rgb)
    K = scale_intrinsics(K, width / stored_size[0], height / stored_size[1])
    if config.crop is not None:
        top, left, ch, cw = config.crop
        array = array[top : top + ch, left : left + cw]
        K = crop_intrinsics(K, left, top)
    return np.ascontiguousarray(array.transpose(2, 0, 1)), K


class OccDataset(Dataset):
    """Keyframes as model inputs.

    Item: ``images`` (N, 3, H, W) uint8, ``intrinsics`` (N, 3, 3) float32, ``ego_T_cam`` (N, 4, 4) float32
    (camera -> keyframe ego, ``Keyframe.ref_T_cam``), ``index`` int; with ``labels_dir`` also ``semantics``
    (200, 200, 16) uint8 and ``mask_camera`` (200, 200, 16) bool.
    """

    def __init__(
        self,
        keyframes: list[Keyframe],
        config: DataConfig,
        labels_dir: str | Path | None = None,
        cameras: tuple[str, ...] = CAMERA_NAMES,
    ):
        self.config = config
        self.cameras = tuple(cameras)
        self.labels_dir = None if labels_dir is None else Path(labels_dir)
        if self.labels_dir is not None:
            if not self.labels_dir.is_dir():
                raise InputError(self.labels_dir, "pseudo-label directory not found")
            keyframes = self._with_labels(keyframes)
        self.keyframes = list(keyframes)

    def _with_labels(self, keyframes: list[Keyframe]) -> list[Keyframe]:
        missing = [kf for kf in keyframes if not label_path(self.labels_dir, kf).is_file()]
        if missing and not self.config.skip_missing_labels:
            raise InputError(
                label_path(self.labels_dir, missing[0]),
                f"pseudo-label file not found ({len(missing)} of {len(keyframes)} keyframes have none; "
                "set data.skip_missing_labels=true to train without them)",
            )
        if missing:
            print(f"skipping {len(missing)} of {len(keyframes)} keyframes without pseudo-labels", file=sys.stderr)
        absent = {kf.token for kf in missing}
        return [kf for kf in keyframes if kf.token not in absent]

    def __len__(self) -> int:
        return len(self.keyframes)

    def label_file(self, i: int) -> Path:
        return label_path(self.labels_dir, self.keyframes[i])

    def __getitem__(self, i: int) -> dict:
        keyframe = self.keyframes[i]
        images, intrinsics, ego_T_cam = [], [], []
        for name in self.cameras:
            cam = keyframe.cameras[name]
            image, K = load_camera_image(cam.image_path, cam.K, (cam.width, cam.height), self.config)
            images.append(image)
            intrinsics.append(K)
            ego_T_cam.append(keyframe.ref_T_cam(name))
        item = {
            "images": torch.from_numpy(np.stack(images)),
            "intrinsics": torch.from_numpy(np.stack(intrinsics).astype(np.float32)),
            "ego_T_cam": torch.from_numpy(np.stack(ego_T_cam).astype(np.float32)),
            "index": i,
        }
        if self.labels_dir is not None:
            labels = read_labels(self.label_file(i), keys=("semantics", "mask_camera"))
            item["semantics"] = torch.from_numpy(labels.semantics)
            item["mask_camera"] = torch.from_numpy(labels.mask_camera.astype(bool))
        return item


# --- loading in worker processes -----------------------------------------------------------------------------------

class WorkerFailure:
    """An :class:`EasyOccError` raised while loading an item, carried back from a worker process as data: torch
    would turn it into a RuntimeError holding the worker's traceback."""

    def __init__(self, error: EasyOccError):
        self.error = error


class _CatchingDataset(Dataset):
    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            return self.dataset[i]
        except EasyOccError as exc:
            return WorkerFailure(exc)


def _collate(items: list):
    failure = next((item for item in items if isinstance(item, WorkerFailure)), None)
    return failure if failure is not None else default_collate(items)


def _convert(item):
    return item if isinstance(item, WorkerFailure) else default_convert(item)


class InputLoader(DataLoader):
    """A DataLoader whose items' errors (a missing label, a truncated image, ...) reach the caller as the same
    one-line :class:`EasyOccError`, from worker processes too. Takes DataLoader's keyword arguments (not
    ``collate_fn``)."""

    def __init__(self, dataset: Dataset, **kwargs):
        collate = _convert if kwargs.get("batch_size", 1) is None else _collate
        super().__init__(_CatchingDataset(dataset), collate_fn=collate, **kwargs)

    def __iter__(self):
        batches = super().__iter__()
        try:
            for batch in batches:
                if isinstance(batch, WorkerFailure):
                    raise batch.error
                yield batch
        finally:
            del batches  # shuts the worker processes down now, not when the error's traceback is freed
