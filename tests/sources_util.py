"""Helpers for the 2D-source tests: a camera frame over a tiny image written to disk, and exact SimScenes-style
maps of a small hand-made street scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.data.synthetic.layout import sim_depth_path, sim_semantic_path
from easyocc.labels.sources.maps import write_label_png, write_npy
from easyocc.occ3d import CLASS_IDS, FREE

CAR, PED, ROAD, SIDEWALK, BUILDING = (CLASS_IDS[n] for n in ("car", "pedestrian", "driveable_surface", "sidewalk",
                                                            "manmade"))


def make_camera(root: Path, relpath: str = "samples/CAM_FRONT/frame0.jpg", width: int = 160, height: int = 90,
                fx: float | None = None, image: np.ndarray | None = None) -> CameraFrame:
    """A CameraFrame whose image (random unless given, (H, W, 3) uint8) is written at ``root/relpath``."""
    path = Path(root) / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(image).save(path, quality=95)
    fx = width * 0.8 if fx is None else fx
    K = np.array([[fx, 0.0, (width - 1) / 2], [0.0, fx, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return CameraFrame(name=Path(relpath).parent.name, sample_data_token="sd0", image_path=path, relpath=relpath,
                       width=width, height=height, timestamp=0, K=K, ego_T_cam=np.eye(4), global_T_ego=np.eye(4))


def street_scene(width: int = 160, height: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """Exact (semantics (H, W) uint8, depth (H, W) float32 with inf for sky) of a small street: sky on top,
    buildings, a road below a sidewalk strip, one big car and one small pedestrian."""
    semantics = np.full((height, width), BUILDING, dtype=np.uint8)
    semantics[: height // 4] = FREE
    horizon = height // 2
    semantics[horizon : horizon + 4] = SIDEWALK
    semantics[horizon + 4 :] = ROAD
    semantics[horizon - 10 : horizon + 20, 20:70] = CAR
    semantics[horizon - 6 : horizon + 3, 120:124] = PED
    rows = np.arange(height, dtype=np.float32)[:, None]
    # Ground depth falls with the row below the horizon; walls and objects stand at fixed distances.
    depth = np.broadcast_to(np.where(rows > horizon, 400.0 / np.maximum(rows - horizon, 1.0), 40.0),
                            (height, width)).astype(np.float32).copy()
    depth[semantics == CAR] = 8.0
    depth[semantics == PED] = 25.0
    depth[semantics == FREE] = np.inf
    return semantics, depth


def write_sim_maps(root: Path, camera: CameraFrame, semantics: np.ndarray, depth: np.ndarray) -> None:
    write_label_png(sim_semantic_path(root, camera.relpath), semantics)
    write_npy(sim_depth_path(root, camera.relpath), depth)


def sim_scene(root: Path, relpath: str = "samples/CAM_FRONT/frame0.jpg", width: int = 160, height: int = 90):
    """A camera with its image and exact SimScenes maps under ``root``: (camera, semantics, depth)."""
    camera = make_camera(root, relpath, width, height)
    semantics, depth = street_scene(width, height)
    write_sim_maps(root, camera, semantics, depth)
    return camera, semantics, depth
