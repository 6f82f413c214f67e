"""Occ3D-like samples for the evaluation benchmarks: a road scene on the (200, 200, 16) grid, its visibility
masks from casting rays, and a prediction with the errors a real model makes.

Not SimScenes (the project's synthetic dataset): only arrays with realistic structure and compressibility
(ground layer, buildings, vegetation, vehicles, pedestrians, mostly free; masks that follow occlusion).
"""

from __future__ import annotations

import numpy as np

from easyocc.occ3d import CLASS_IDS, FREE, GRID_SHAPE, OCC3D_GRID
from easyocc.raycast import mark_traversed_m

X, Y, Z = GRID_SHAPE
C = CLASS_IDS
LIDAR_ORIGIN = np.array([0.94, 0.0, 1.84])


def _box(sem, rng, cls, size_xy, height, z0=1):
    sx, sy = size_xy
    x, y = rng.integers(0, X - sx), rng.integers(0, Y - sy)
    sem[x : x + sx, y : y + sy, z0 : z0 + height] = cls


def scene(rng: np.random.Generator) -> np.ndarray:
    """(200, 200, 16) uint8 semantics of a street: road along x, sidewalks, buildings, trees, traffic."""
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    road_half = rng.integers(12, 25)
    walk = rng.integers(6, 12)
    y = np.abs(np.arange(Y) - Y // 2 + rng.integers(-10, 10))
    ground = np.where(y < road_half, C["driveable_surface"], np.where(y < road_half + walk, C["sidewalk"], C["terrain"]))
    patches = rng.random((X // 20, Y // 20)) < 0.15  # coarse patches of other_flat in the terrain
    ground = np.where(np.kron(patches, np.ones((20, 20), bool)) & (ground[None, :] == C["terrain"]), C["other_flat"], ground)
    sem[:, :, 0] = np.broadcast_to(ground, (X, Y))
    bumps = rng.random((X, Y)) < 0.05  # uneven ground
    sem[:, :, 1][bumps] = sem[:, :, 0][bumps]
    for side in (-1, 1):  # building fronts beyond the sidewalks
        edge = Y // 2 + side * (road_half + walk + rng.integers(2, 10))
        for x0 in range(0, X, int(rng.integers(20, 40))):
            depth, height = int(rng.integers(8, 30)), int(rng.integers(6, 16))
            y0, y1 = sorted((edge, edge + side * depth))
            sem[x0 : x0 + int(rng.integers(10, 30)), max(y0, 0) : min(y1, Y), 1:height] = C["manmade"]
    for _ in range(rng.integers(10, 30)):  # trees
        _box(sem, rng, C["vegetation"], rng.integers(3, 8, 2), int(rng.integers(4, 12)), z0=2)
    for cls, count, size, height in (("car", 15, (11, 5), 4), ("truck", 3, (20, 7), 8), ("pedestrian", 12, (1, 1), 4),
                                     ("barrier", 6, (8, 1), 3), ("traffic_cone", 5, (1, 1), 2), ("bus", 1, (28, 7), 9),
                                     ("bicycle", 3, (4, 1), 3), ("others", 4, (2, 2), 3)):
        for _ in range(rng.integers(0, count + 1)):
            _box(sem, rng, C[cls], size, height)
    clutter = rng.integers(0, [X, Y, 6], size=(3000, 3))  # poles, bushes, small things
    sem[clutter[:, 0], clutter[:, 1], clutter[:, 2] + 1] = rng.choice([C["manmade"], C["vegetation"], C["others"]], 3000)
    sem[95:105, 97:103, 1:5] = FREE  # the ego vehicle's footprint is free
    return sem


def masks(sem: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mask_lidar, mask_camera) uint8: voxels that rays from the roof reach, up to the first occupied voxel."""
    occupied = sem != FREE
    # Calibrated to the real Occ3D sample: ~9% / ~7% of voxels, ~20-30 KB compressed each.
    pitch = rng.uniform(-0.55, 0.21, 30_000)
    yaw = rng.uniform(-np.pi, np.pi, 30_000)
    directions = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)
    lidar = mark_traversed_m(LIDAR_ORIGIN, directions, 22.0, occupied)
    camera_dirs = directions[np.abs(yaw) < 2.9]  # a blind wedge behind, like the camera rig's gaps
    camera = mark_traversed_m(LIDAR_ORIGIN, camera_dirs, 18.0, occupied) & lidar
    # Scattered far returns, as accumulated LiDAR sweeps leave them.
    far = rng.integers(0, [X, Y, Z], size=(6000, 3))
    lidar[far[:, 0], far[:, 1], far[:, 2]] = 1
    camera[far[:3000, 0], far[:3000, 1], far[:3000, 2]] = 1
    return lidar, camera


def prediction(sem: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible model output: objects shifted a voxel, thick ground, class confusions, some ghosts."""
    pred = sem.copy()
    objects = (sem != FREE) & (np.arange(Z) >= 1)[None, None, :]
    shift = rng.integers(-1, 2, size=2)
    moved = np.roll(np.where(objects, sem, FREE), tuple(shift), axis=(0, 1))
    pred[objects] = FREE
    pred = np.where(moved != FREE, moved, pred)
    pred[:, :, 1] = np.where((pred[:, :, 1] == FREE) & (rng.random((X, Y)) < 0.3), sem[:, :, 0], pred[:, :, 1])
    for _ in range(40):  # blobs of the wrong class
        x, y, z = rng.integers(0, X - 8), rng.integers(0, Y - 8), rng.integers(0, Z - 3)
        region = pred[x : x + 8, y : y + 8, z : z + 3]
        region[region != FREE] = rng.integers(0, 17)
    for _ in range(20):  # ghost objects in free space
        _box(pred, rng, int(rng.integers(0, 17)), rng.integers(1, 6, 2), int(rng.integers(1, 4)))
    return pred


def sample(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(semantics, mask_lidar, mask_camera, prediction) of one synthetic keyframe."""
    rng = np.random.default_rng(seed)
    sem = scene(rng)
    lidar, camera = masks(sem, rng)
    return sem, lidar, camera, prediction(sem, rng)


__all__ = ["sample", "scene", "masks", "prediction", "LIDAR_ORIGIN", "OCC3D_GRID"]
