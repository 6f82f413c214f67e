"""A torch Dataset of keyframes for the occupancy models: six resized images, their intrinsics and camera -> ego
transforms, and for training the keyframe's pseudo-labels and/or what a rendering model's 2D losses read
(``RenderTargets``: the neighbouring source images of each camera, their poses relative to it, 2D semantic and
depth maps at the render size).

Images are resized (and optionally cropped) with the intrinsics kept consistent (``geometry.scale_intrinsics``,
``geometry.crop_intrinsics``). Items hold uint8 images; the model normalises them on its device.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate, default_convert

from easyocc.data.nuscenes_index import (
    CAMERA_NAMES,
    NEIGHBOUR_OFFSETS,
    CameraFrame,
    DatasetIndex,
    Keyframe,
    resolve_version,
    split_scene_names,
)
from easyocc.errors import EasyOccError, InputError
from easyocc.geometry import crop_intrinsics, relative_transform, resample_nearest, scale_intrinsics
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


class SemanticMaps(Protocol):
    """A 2D semantic source (``easyocc.labels.sources``): (height, width) uint8 Occ3D ids of a camera image, 17
    sky, 255 unknown."""

    def semantics(self, camera: CameraFrame) -> np.ndarray: ...


class DepthMaps(Protocol):
    """A 2D depth source: (height, width) float32 z-depth in metres of a camera image, 0 = none."""

    def depth(self, camera: CameraFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class RenderTargets:
    """What a rendering model's 2D losses read for every keyframe camera, besides its own image.

    size: (H, W) the render resolution; sources: whether to load the neighbouring images at ``offsets`` (the
    photometric loss's source frames, ``Keyframe.neighbour``); semantics / depth: 2D sources whose maps are
    read at the render size (None: not loaded).
    """

    size: tuple[int, int]
    sources: bool = True
    offsets: tuple[int, ...] = NEIGHBOUR_OFFSETS
    semantics: SemanticMaps | None = None
    depth: DepthMaps | None = None

    def __post_init__(self):
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"the render size must be (H, W) >= 1, got {self.size}")


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
    if config.crop is not None:
        top, left, ch, cw = config.crop
        array = array[top : top + ch, left : left + cw]
    return np.ascontiguousarray(array.transpose(2, 0, 1)), network_intrinsics(K, stored_size, config)


def network_intrinsics(K: np.ndarray, stored_size: tuple[int, int], config: DataConfig) -> np.ndarray:
    """(3, 3) intrinsics of a stored image of ``stored_size`` (width, height) -> those of the network's image
    (resized to ``config.image_size``, then cropped by ``config.crop``), float64."""
    height, width = config.image_size
    K = scale_intrinsics(K, width / stored_size[0], height / stored_size[1])
    if config.crop is not None:
        top, left = config.crop[:2]
        K = crop_intrinsics(K, left, top)
    return K


class OccDataset(Dataset):
    """Keyframes as model inputs.

    Item: ``images`` (N, 3, H, W) uint8, ``intrinsics`` (N, 3, 3) float32, ``ego_T_cam`` (N, 4, 4) float32
    (camera -> keyframe ego, ``Keyframe.ref_T_cam``), ``index`` int; with ``labels_dir`` also ``semantics``
    (200, 200, 16) uint8 and ``mask_camera`` (200, 200, 16) bool.

    With ``render`` (``RenderTargets``, render size h x w, S source offsets):
    ``render_intrinsics`` (N, 3, 3) float32, the network intrinsics scaled to h x w; with ``render.sources``:
    ``source_images`` (N, S, 3, H, W) uint8 (the neighbouring images, prepared like the keyframe's),
    ``source_intrinsics`` (N, S, 3, 3) float32, ``source_T_cam`` (N, S, 4, 4) float32 (keyframe camera -> source
    camera, composed through the global frame in float64), ``source_valid`` (N, S) bool (False where the camera has
    no such neighbour, at a scene's ends: then the image is zeros, the pose the identity, and the losses leave the
    source out); with ``render.semantics``: ``semantics_2d`` (N, h, w) uint8 (Occ3D ids, 17 sky, 255 unknown);
    with ``render.depth``: ``depth_2d`` (N, h, w) float32 (z-depth in metres, 0 = none). The 2D maps are read at the
    centres of the render pixels (nearest pixel of the source's map at the stored image size).
    """

    def __init__(
        self,
        keyframes: list[Keyframe],
        config: DataConfig,
        labels_dir: str | Path | None = None,
        cameras: tuple[str, ...] = CAMERA_NAMES,
        render: RenderTargets | None = None,
    ):
        self.config = config
        self.cameras = tuple(cameras)
        self.render = render
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

    def render_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """(3, 3) network-image intrinsics -> the same camera's at the render size."""
        (height, width), (render_h, render_w) = self.config.input_size, self.render.size
        return scale_intrinsics(K, render_w / width, render_h / height)

    def semantics_2d(self, i: int) -> np.ndarray:
        """(N, h, w) uint8: the 2D semantic maps of keyframe ``i``'s cameras at the render pixels."""
        keyframe = self.keyframes[i]
        return np.stack([self._render_map(self.render.semantics.semantics(keyframe.cameras[name]), keyframe, name)
                         for name in self.cameras])

    def _render_map(self, values: np.ndarray, keyframe: Keyframe, name: str) -> np.ndarray:
        cam = keyframe.cameras[name]
        network_K = network_intrinsics(cam.K, (cam.width, cam.height), self.config)
        return resample_nearest(values, cam.K, self.render_intrinsics(network_K), self.render.size)

    def count_sources(self) -> tuple[int, int]:
        """(neighbouring images found, wanted) over all keyframes, cameras and offsets of ``render``."""
        found = sum(kf.neighbour(name, offset) is not None for kf in self.keyframes for name in self.cameras
                    for offset in self.render.offsets)
        return found, len(self.keyframes) * len(self.cameras) * len(self.render.offsets)

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
        if self.render is not None:
            item.update(self._render_item(keyframe, intrinsics, images[0].shape))
            if self.render.semantics is not None:
                item["semantics_2d"] = torch.from_numpy(self.semantics_2d(i))
            if self.render.depth is not None:
                item["depth_2d"] = torch.from_numpy(np.stack([
                    self._render_map(self.render.depth.depth(keyframe.cameras[name]), keyframe, name)
                    for name in self.cameras]).astype(np.float32))
        return item

    def _render_item(self, keyframe: Keyframe, intrinsics: list[np.ndarray], image_shape: tuple) -> dict:
        """render_intrinsics and, with ``render.sources``, the source images, intrinsics, poses and validity."""
        item = {"render_intrinsics": torch.from_numpy(
            np.stack([self.render_intrinsics(K) for K in intrinsics]).astype(np.float32))}
        if not self.render.sources:
            return item
        images, source_K, poses, valid = [], [], [], []
        for name, K in zip(self.cameras, intrinsics):
            cam = keyframe.cameras[name]
            for offset in self.render.offsets:
                source = keyframe.neighbour(name, offset)
                if source is None:
                    images.append(np.zeros(image_shape, dtype=np.uint8))
                    source_K.append(K)
                    poses.append(np.eye(4))
                    valid.append(False)
                    continue
                image, K_source = load_camera_image(source.image_path, source.K, (source.width, source.height),
                                                    self.config)
                images.append(image)
                source_K.append(K_source)
                poses.append(relative_transform(source.global_T_cam, cam.global_T_cam))
                valid.append(True)
        shape = (len(self.cameras), len(self.render.offsets))
        item["source_images"] = torch.from_numpy(np.stack(images)).unflatten(0, shape)
        item["source_intrinsics"] = torch.from_numpy(np.stack(source_K).astype(np.float32)).unflatten(0, shape)
        item["source_T_cam"] = torch.from_numpy(np.stack(poses).astype(np.float32)).unflatten(0, shape)
        item["source_valid"] = torch.tensor(valid).view(shape)
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
