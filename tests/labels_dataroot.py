"""A nuScenes-format dataroot of toy-world scenes for the label-command tests: the devkit tables, SimScenes-layout
exact maps (what the oracle source reads), splits.json and Occ3D-style GT from the toy world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from easyocc.data.synthetic.layout import sim_depth_path, sim_semantic_path
from easyocc.geometry import matrix_to_quaternion
from easyocc.labels import toyworld
from easyocc.labels.sources.maps import write_label_png, write_npy
from easyocc.occ3d import write_labels

VERSION = "v1.0-mini"


def _pose_row(token: str, T: np.ndarray, timestamp: int) -> dict:
    return {"token": token, "timestamp": timestamp, "rotation": matrix_to_quaternion(T[:3, :3]).tolist(),
            "translation": T[:3, 3].tolist()}


def write_toy_dataroot(root: Path, world: toyworld.ToyWorld, scenes: list, splits: dict | None = None) -> Path:
    """Write ``scenes`` (from ``toyworld.make_scene``) under ``root``; returns ``root``."""
    tables = {name: [] for name in ("scene", "sample", "sample_data", "calibrated_sensor", "ego_pose", "sensor",
                                    "log", "map", "category", "attribute", "visibility", "instance",
                                    "sample_annotation")}
    cameras = list(scenes[0].keyframes[0].cameras)
    for channel in ["LIDAR_TOP", *cameras]:
        tables["sensor"].append({"token": f"sensor-{channel}", "channel": channel,
                                 "modality": "lidar" if channel == "LIDAR_TOP" else "camera"})
    tables["log"].append({"token": "log0", "logfile": "", "vehicle": "toy", "date_captured": "2026-01-01",
                          "location": "toy"})
    tables["map"].append({"token": "map0", "log_tokens": ["log0"], "category": "semantic_prior", "filename": ""})
    for scene in scenes:
        tokens = [kf.token for kf in scene.keyframes]
        tables["scene"].append({"token": scene.token, "log_token": "log0", "nbr_samples": len(tokens),
                                "first_sample_token": tokens[0], "last_sample_token": tokens[-1], "name": scene.name,
                                "description": "toy"})
        for i, kf in enumerate(scene.keyframes):
            tables["sample"].append({"token": kf.token, "timestamp": kf.timestamp, "scene_token": scene.token,
                                     "prev": tokens[i - 1] if i else "", "next": tokens[i + 1] if i + 1 < len(tokens) else ""})
            lidar = f"{kf.token}-LIDAR_TOP"
            tables["ego_pose"].append(_pose_row(lidar, kf.global_T_ego, kf.timestamp))
            tables["calibrated_sensor"].append({"token": lidar, "sensor_token": "sensor-LIDAR_TOP",
                                                "translation": [0.0, 0.0, 1.8], "rotation": [1.0, 0, 0, 0],
                                                "camera_intrinsic": []})
            tables["sample_data"].append({"token": lidar, "sample_token": kf.token, "ego_pose_token": lidar,
                                          "calibrated_sensor_token": lidar, "timestamp": kf.timestamp,
                                          "fileformat": "pcd", "is_key_frame": True, "height": 0, "width": 0,
                                          "filename": f"samples/LIDAR_TOP/{kf.token}.pcd.bin", "prev": "", "next": ""})
            for cam in kf.cameras.values():
                sd = cam.sample_data_token
                tables["ego_pose"].append(_pose_row(sd, cam.global_T_ego, cam.timestamp))
                tables["calibrated_sensor"].append({"token": sd, "sensor_token": f"sensor-{cam.name}",
                                                    "translation": cam.ego_T_cam[:3, 3].tolist(),
                                                    "rotation": matrix_to_quaternion(cam.ego_T_cam[:3, :3]).tolist(),
                                                    "camera_intrinsic": cam.K.tolist()})
                tables["sample_data"].append({"token": sd, "sample_token": kf.token, "ego_pose_token": sd,
                                              "calibrated_sensor_token": sd, "timestamp": cam.timestamp,
                                              "fileformat": "jpg", "is_key_frame": True, "height": cam.height,
                                              "width": cam.width, "filename": cam.relpath, "prev": "", "next": ""})
                depth, semantics = toyworld.render(world, cam, kf.index)
                write_npy(sim_depth_path(root, cam.relpath), np.where(depth > 0, depth, np.inf).astype(np.float32))
                write_label_png(sim_semantic_path(root, cam.relpath), semantics)
            gt = toyworld.ground_truth_occupancy(world, kf)
            ones = np.ones(gt.shape, np.uint8)
            write_labels(root / "gts" / scene.name / kf.token / "labels.npz", gt, ones, ones)
    (root / VERSION).mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(rows))
    names = [s.name for s in scenes]
    (root / "splits.json").write_text(json.dumps(splits or {"train": names, "val": []}))
    return root


def toy_scenes(count: int = 3, keyframes: int = 3, width: int = 64, height: int = 36) -> list:
    """Scenes named toy-0.. with the ego at different places of the street (their tokens differ)."""
    scenes = []
    for s in range(count):
        scene = toyworld.make_scene(f"toy-{s}", keyframes, width, height)
        scenes.append(scene)
    return scenes
