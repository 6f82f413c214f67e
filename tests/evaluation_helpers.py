"""Test helpers for the evaluator: a tiny nuscenes-devkit-loadable dataroot with LiDAR keyframes only."""

from __future__ import annotations

import json
import math
from pathlib import Path

#: LIDAR_TOP mounting of the real keyframe in ../shared/realdata (calibrated_sensor.json).
LIDAR_MOUNT = (0.943713, 0.0, 1.84023)
LIDAR_ROTATION = [0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817]


def yaw_quaternion(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def write_tiny_nuscenes(root: Path, scenes: dict[str, list[tuple[float, float, float]]],
                        version: str = "v1.0-mini") -> dict[str, list[str]]:
    """Write nuScenes tables for ``scenes``: name -> one (x, y, yaw) ego pose per keyframe, in time order.

    Each keyframe has one LIDAR_TOP sample_data (no file behind it). Returns scene name -> sample tokens.
    """
    tables: dict[str, list] = {name: [] for name in (
        "category", "attribute", "visibility", "instance", "sample_annotation", "sensor", "calibrated_sensor",
        "ego_pose", "log", "map", "scene", "sample", "sample_data")}
    tables["sensor"].append({"token": "sensor-lidar", "channel": "LIDAR_TOP", "modality": "lidar"})
    tables["calibrated_sensor"].append({"token": "cs-lidar", "sensor_token": "sensor-lidar",
                                       "translation": list(LIDAR_MOUNT), "rotation": LIDAR_ROTATION,
                                       "camera_intrinsic": []})
    tables["log"].append({"token": "log0", "logfile": "", "vehicle": "v", "date_captured": "2018-01-01",
                          "location": "singapore-onenorth"})
    tables["map"].append({"token": "map0", "log_tokens": ["log0"], "category": "semantic_prior", "filename": ""})
    tokens: dict[str, list[str]] = {}
    timestamp = 1_500_000_000_000_000
    for s, (scene_name, poses) in enumerate(scenes.items()):
        names = [f"{scene_name}-kf{i:02d}" for i in range(len(poses))]
        tokens[scene_name] = names
        tables["scene"].append({"token": f"scene{s}", "log_token": "log0", "nbr_samples": len(poses),
                                "first_sample_token": names[0], "last_sample_token": names[-1],
                                "name": scene_name, "description": ""})
        for i, (x, y, yaw) in enumerate(poses):
            timestamp += 500_000
            prev_token, next_token = (names[i - 1] if i else ""), (names[i + 1] if i + 1 < len(names) else "")
            tables["sample"].append({"token": names[i], "timestamp": timestamp, "scene_token": f"scene{s}",
                                     "prev": prev_token, "next": next_token})
            tables["ego_pose"].append({"token": f"ego-{names[i]}", "timestamp": timestamp,
                                       "rotation": yaw_quaternion(yaw), "translation": [x, y, 0.0]})
            tables["sample_data"].append({
                "token": f"sd-{names[i]}", "sample_token": names[i], "ego_pose_token": f"ego-{names[i]}",
                "calibrated_sensor_token": "cs-lidar", "timestamp": timestamp, "fileformat": "pcd",
                "is_key_frame": True, "height": 0, "width": 0,
                "filename": f"samples/LIDAR_TOP/{names[i]}.pcd.bin",
                "prev": f"sd-{prev_token}" if prev_token else "", "next": f"sd-{next_token}" if next_token else ""})
    table_dir = Path(root) / version
    table_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (table_dir / f"{name}.json").write_text(json.dumps(rows))
    return tokens
