"""The 3D stage of Easy3D-Labels, keyframe by keyframe: lift, densify over time, voxelize, free space, masks.

Two entry points:
- :func:`label_window`: pseudo-labels of the current frame from a window of :class:`~aggregate.PosedFrame` (any
  source of posed semantic clouds: camera images, labelled LiDAR through :func:`lidar_frame`);
- :class:`SceneLabeler`: walks a scene's keyframes with a 2D semantic and depth source, lifting each frame once and
  keeping a sliding window of the last ``frames + 1`` frames' cells, and writes
  ``<out>/<scene_name>/<sample_token>/labels.npz``.

What the keys of a pseudo-label mean (the README says the same):
- ``semantics``: the voted class where the voxel holds at least ``min_points`` points of the window, 17 elsewhere;
- ``mask_camera``: voxels the current keyframe's cameras observe: passed through by a pixel ray up to its depth
  (sky rays to the edge of the grid) plus every voxel holding one of the current keyframe's points;
- ``mask_lidar``: voxels whose label the pipeline is confident about: occupied (densified over the window) or
  observed free (passed through by a current ray and holding no point at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from easyocc.data.nuscenes_index import Keyframe, Scene
from easyocc.geometry import transform_points
from easyocc.labels.aggregate import PosedFrame, posed_frame_from_cloud, remove_outliers, window_passes
from easyocc.labels.backend import LabelBackend, NumbaBackend
from easyocc.labels.cells import cells_from_points
from easyocc.labels.config import LabelConfig
from easyocc.labels.lift import SemanticCloud, lift_image, resize_mask
from easyocc.labels.sources.base import DepthSource, SemanticSource, check_depth, check_semantics
from easyocc.labels.visibility import (
    FreeSpaceRays,
    auto_ray_stride,
    camera_rays,
    depth_view,
    label_masks,
    pass_through_drops,
    see_through_voxels,
    traverse,
)
from easyocc.occ3d import FREE, OCC3D_GRID, VoxelGrid, label_path, write_labels

#: The default implementation: numba's CPU kernels.
NUMBA = NumbaBackend()

@dataclass(frozen=True)
class KeyframeLabels:
    """One keyframe's pseudo-labels, each (200, 200, 16) uint8."""

    semantics: np.ndarray
    mask_lidar: np.ndarray
    mask_camera: np.ndarray

    def write(self, path: str | Path) -> None:
        write_labels(path, self.semantics, self.mask_lidar, self.mask_camera)


def label_window(
    window: Sequence[PosedFrame], config: LabelConfig, grid: VoxelGrid = OCC3D_GRID,
    backend: LabelBackend = NUMBA,
) -> KeyframeLabels:
    """Pseudo-labels of the last frame of ``window`` (the other frames, past or future, in any order, each with
    its pose; the current keyframe last).

    The window is the caller's choice (``config.frames`` and ``config.future_frames`` are applied by
    :class:`SceneLabeler`); free space comes from the current frame's rays (none when it has no rays: then nothing
    is observed free). With ``config.pass_through``, the rays of every frame that has them are counted.
    backend: who counts and votes (:func:`~easyocc.labels.backend.label_backend`; numba on the CPU by default).
    """
    rays = window[-1].rays
    traversed = traverse(rays, grid) if rays is not None else np.zeros(grid.shape, np.uint8)
    views = window[-1].views
    carved = None
    if config.carve and views and len(window) > 1:
        carved = see_through_voxels(list(views), config.carve_margin, grid)
    passes = window_passes(window, grid) if config.pass_through else None

    def drops(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pass_through_drops(*passes, ends, config.pass_through_ratio)

    semantics, total, current = backend.window_vote(window, config, grid, carved,
                                                    drops if passes is not None else None)
    mask_camera, mask_lidar = label_masks(semantics != 17, total, traversed, current)
    return KeyframeLabels(semantics, mask_lidar, mask_camera)


def lidar_frame(
    keyframe: Keyframe, points_lidar: np.ndarray, classes: np.ndarray, config: LabelConfig, grid: VoxelGrid = OCC3D_GRID
) -> PosedFrame:
    """A keyframe's labelled LiDAR scan as a :class:`PosedFrame` for :func:`label_window`.

    points_lidar: (N, 3) in the LiDAR frame; classes: (N,) uint8 Occ3D ids (17 and 255 give no point). The points
    go into the keyframe's ego frame (the LiDAR's own timestamp), and each gives a free-space ray from the sensor.
    """
    if points_lidar.ndim != 2 or points_lidar.shape[1] < 3 or classes.shape != points_lidar.shape[:1]:
        raise ValueError(f"points (N, 3) and classes (N,) expected, got {points_lidar.shape} and {classes.shape}")
    ego = transform_points(keyframe.ego_T_lidar, points_lidar[:, :3])
    keep = classes < FREE
    cloud = SemanticCloud(ego[keep], classes[keep].astype(np.uint8))
    return posed_frame_from_cloud(cloud, keyframe.global_T_ego, keyframe.ego_T_lidar[:3, 3], config.cell_divisions,
                                  config.max_range, keyframe.token, grid)


class CameraObserver:
    """Turns a keyframe's camera images into a :class:`PosedFrame` through a semantic and a depth source."""

    def __init__(
        self,
        semantic_source: SemanticSource,
        depth_source: DepthSource,
        config: LabelConfig,
        ego_masks: dict[str, np.ndarray] | None = None,
        grid: VoxelGrid = OCC3D_GRID,
        backend: LabelBackend = NUMBA,
    ):
        """backend: who lifts images into cells (:func:`~easyocc.labels.backend.label_backend`; numba by
        default)."""
        self.semantic_source = semantic_source
        self.depth_source = depth_source
        self.config = config
        self.ego_masks = ego_masks or {}
        self.grid = grid
        self.backend = backend
        self._resized_masks: dict[tuple[str, int, int], np.ndarray] = {}

    def keep_mask(self, camera: str, width: int, height: int) -> np.ndarray | None:
        if camera not in self.ego_masks:
            return None
        key = (camera, width, height)
        if key not in self._resized_masks:
            self._resized_masks[key] = resize_mask(self.ego_masks[camera], width, height)
        return self._resized_masks[key]

    def maps(self, keyframe: Keyframe, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """Checked (semantics (H, W) uint8, depth (H, W) float32) of one camera image."""
        frame = keyframe.cameras[camera]
        semantics = check_semantics(self.semantic_source.semantics(frame), frame, self.semantic_source.name)
        depth = check_depth(self.depth_source.depth(frame), frame, self.depth_source.name)
        return semantics, depth

    def observe(self, keyframe: Keyframe, with_rays: bool = True) -> PosedFrame:
        """Lift every camera of ``keyframe`` into its ego frame (cells), with free-space rays when asked."""
        cfg = self.config
        runs, points, rays, views = [], [], [], []
        for camera, frame in keyframe.cameras.items():
            semantics, depth = self.maps(keyframe, camera)
            keep = self.keep_mask(camera, frame.width, frame.height)
            ref_T_cam = keyframe.ref_T_cam(camera)
            if cfg.cell_divisions:
                runs.append(self.backend.image_runs(depth, semantics, frame.K, ref_T_cam, keep, cfg.pixel_stride,
                                                    cfg.max_range, cfg.cell_divisions, self.grid))
            else:
                points.append(lift_image(depth, semantics, frame.K, ref_T_cam, cfg.pixel_stride, cfg.max_range, keep))
            if with_rays:
                stride = cfg.ray_stride or auto_ray_stride(frame.K, ref_T_cam[:3, 3], self.grid)
                rays.append(camera_rays(depth, semantics, frame.K, ref_T_cam, stride, keep, cfg.max_range,
                                        pixel_stride=cfg.pixel_stride))
                if cfg.carve:
                    views.append(depth_view(depth, semantics, frame.K, ref_T_cam, keep))
        if cfg.cell_divisions:
            cells = self.backend.frame_cells(runs, cfg.cell_divisions, self.grid)
        else:
            cloud = SemanticCloud.concatenate(points)
            cells = cells_from_points(cloud.points, cloud.classes, 0, self.grid)
        cells = remove_outliers(cells, cfg.outlier_neighbors, cfg.outlier_std_ratio)
        return PosedFrame(cells, keyframe.global_T_ego, FreeSpaceRays.concatenate(rays) if with_rays else None,
                          keyframe.token, tuple(views) if with_rays and cfg.carve else None)


class SceneLabeler:
    """Labels the keyframes of one scene in order, each frame lifted once (a sliding window of cells)."""

    def __init__(self, observer: CameraObserver, config: LabelConfig, grid: VoxelGrid = OCC3D_GRID):
        self.observer = observer
        self.config = config
        self.grid = grid

    def labels(self, scene: Scene, wanted: Callable[[Keyframe], bool] = lambda kf: True) -> Iterator[tuple[Keyframe, KeyframeLabels]]:
        """Yield (keyframe, labels) for every keyframe of ``scene`` that ``wanted`` accepts, in time order.

        The window of keyframe t holds keyframes t - frames .. t + future_frames of the scene (fewer at its ends).
        Only the frames a wanted keyframe's window needs are lifted (a resumed scene skips the rest); a frame that
        is or will be the current one is lifted with its rays and depth views, so it is lifted once.
        """
        cfg = self.config
        keep_rays = cfg.pass_through  # other frames' rays serve only the pass-through counts
        window: dict[int, PosedFrame] = {}
        last = len(scene.keyframes) - 1
        for keyframe in scene.keyframes:
            t = keyframe.index
            if not wanted(keyframe):
                continue
            first, end = max(0, t - cfg.frames), min(last, t + cfg.future_frames)
            for old in [i for i in window if i < first]:
                del window[old]
            for i in range(first, end + 1):
                frame = window.get(i)
                if i >= t and (frame is None or frame.rays is None):
                    window[i] = self.observer.observe(scene.keyframes[i], with_rays=True)
                elif frame is None:
                    window[i] = self.observer.observe(scene.keyframes[i], with_rays=keep_rays).past(keep_rays)
            others = [window[i] for i in range(first, end + 1) if i != t]
            yield keyframe, label_window([*others, window[t]], self.config, self.grid, self.observer.backend)
            # Depth views serve only while a frame is the current one (rays too, without pass-through counts):
            # drop them to keep the window small.
            window[t] = window[t].past(keep_rays)


def label_scene(
    labeler: SceneLabeler,
    scene: Scene,
    out_root: str | Path,
    skip_existing: bool = True,
    on_keyframe: Callable[[Keyframe], None] | None = None,
) -> int:
    """Write the labels of ``scene`` under ``out_root``; returns how many keyframes were written.

    Keyframes whose ``labels.npz`` exists are skipped when ``skip_existing`` (resuming).
    """
    def wanted(kf: Keyframe) -> bool:
        return not (skip_existing and label_path(out_root, scene.name, kf.token).is_file())

    written = 0
    for keyframe, labels in labeler.labels(scene, wanted):
        labels.write(label_path(out_root, scene.name, keyframe.token))
        written += 1
        if on_keyframe is not None:
            on_keyframe(keyframe)
    return written


__all__ = [
    "KeyframeLabels",
    "LabelConfig",
    "CameraObserver",
    "SceneLabeler",
    "label_scene",
    "label_window",
    "lidar_frame",
]
