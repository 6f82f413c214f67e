"""A tiny analytic world for testing and benchmarking the 3D stage without files: boxes on a ground plane, seen
by six nuScenes-like cameras on an ego vehicle driving along +x, rendered to exact depth and semantics.

It builds :class:`~easyocc.data.nuscenes_index.Scene` objects (poses, intrinsics; no images on disk) and a 2D source
pair (:class:`ToySemantics`, :class:`ToyDepth`) that render on demand, so the pipeline runs end to end in memory.
Boxes may move (a box's position at keyframe ``t`` is ``min + t * velocity``), to test the dynamic-class filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from easyocc.data.nuscenes_index import CAMERA_NAMES, CameraFrame, Keyframe, Scene
from easyocc.geometry import make_transform, scale_intrinsics, yaw_rotation
from easyocc.labels.sources.base import DepthSource, SemanticSource
from easyocc.occ3d import CLASS_IDS, FREE

#: nuScenes' CAM_FRONT intrinsics at 1600x900 (a real calibration, used by every toy camera).
NUSCENES_K = np.array([[1266.417, 0.0, 816.267], [0.0, 1266.417, 491.507], [0.0, 0.0, 1.0]])
NUSCENES_SIZE = (1600, 900)
#: Camera yaw (degrees, about the ego z axis) and mounting position in the ego frame, roughly nuScenes' rig.
CAMERA_RIG: dict[str, tuple[float, tuple[float, float, float]]] = {
    "CAM_FRONT": (0.0, (1.7, 0.0, 1.5)),
    "CAM_FRONT_RIGHT": (-55.0, (1.5, -0.5, 1.5)),
    "CAM_FRONT_LEFT": (55.0, (1.5, 0.5, 1.5)),
    "CAM_BACK": (180.0, (0.0, 0.0, 1.5)),
    "CAM_BACK_LEFT": (110.0, (1.0, 0.7, 1.5)),
    "CAM_BACK_RIGHT": (-110.0, (1.0, -0.7, 1.5)),
}
# Camera axes (x right, y down, z forward) in a forward-looking ego frame (x forward, y left, z up).
_EGO_R_CAM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
SKY_DISTANCE = 200.0


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the world frame: lower (3,), upper (3,) metres, an Occ3D class, a velocity (3,)
    in metres per keyframe."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    cls: int
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class ToyWorld:
    """Ground z = 0 (driveable surface, sidewalk where |y| > ``road_half_width``) and boxes."""

    boxes: list[Box] = field(default_factory=list)
    road_half_width: float = 6.0

    def box_arrays(self, keyframe_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower (B, 3), upper (B, 3), classes (B,)) at a keyframe."""
        if not self.boxes:
            return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.uint8)
        shift = np.array([b.velocity for b in self.boxes], np.float64) * keyframe_index
        lower = np.array([b.lower for b in self.boxes], np.float64) + shift
        upper = np.array([b.upper for b in self.boxes], np.float64) + shift
        return lower, upper, np.array([b.cls for b in self.boxes], np.uint8)


def street(length: float = 120.0, seed: int = 0, moving_car: bool = True) -> ToyWorld:
    """A street along +x: buildings and trees on both sides, parked cars, and one car driving along."""
    rng = np.random.default_rng(seed)
    boxes = []
    x = -40.0
    while x < length:
        w = rng.uniform(6, 14)
        for side in (-1, 1):
            y0 = side * rng.uniform(10, 14)
            boxes.append(Box((x, min(y0, y0 + side * 8), 0.0), (x + w, max(y0, y0 + side * 8), rng.uniform(4, 9)),
                             CLASS_IDS["manmade"]))
        x += w + rng.uniform(2, 6)
    for xt in np.arange(-30, length, 17.0):
        side = rng.choice([-1, 1])
        boxes.append(Box((xt, side * 8.0 - 0.6, 0.0), (xt + 1.2, side * 8.0 + 0.6, 3.0), CLASS_IDS["vegetation"]))
    for xc in np.arange(-20, length, 23.0):
        boxes.append(Box((xc, -5.5, 0.0), (xc + 4.5, -3.7, 1.6), CLASS_IDS["car"]))
    if moving_car:
        boxes.append(Box((8.0, 1.0, 0.0), (12.5, 2.8, 1.6), CLASS_IDS["car"], velocity=(2.0, 0.0, 0.0)))
    return ToyWorld(boxes)


@numba.njit(cache=True, parallel=True)
def _render(origin, R, K, width, height, lower, upper, classes, road_half_width, sky, depth, semantics):
    fx, cx, fy, cy = K[0, 0], K[0, 2], K[1, 1], K[1, 2]
    for v in numba.prange(height):
        for u in range(width):
            rc0, rc1 = (u - cx) / fx, (v - cy) / fy
            # Direction with camera z = 1, so the ray parameter is the z-depth.
            d0 = R[0, 0] * rc0 + R[0, 1] * rc1 + R[0, 2]
            d1 = R[1, 0] * rc0 + R[1, 1] * rc1 + R[1, 2]
            d2 = R[2, 0] * rc0 + R[2, 1] * rc1 + R[2, 2]
            best = sky
            cls = 17
            if d2 < 0.0:
                t = -origin[2] / d2
                if t < best:
                    best = t
                    y = origin[1] + t * d1
                    cls = 11 if abs(y) <= road_half_width else 13
            for b in range(lower.shape[0]):
                t0, t1 = 0.0, best
                for a, da in ((0, d0), (1, d1), (2, d2)):
                    if da == 0.0:
                        if origin[a] < lower[b, a] or origin[a] > upper[b, a]:
                            t0, t1 = 1.0, 0.0
                    else:
                        ta = (lower[b, a] - origin[a]) / da
                        tb = (upper[b, a] - origin[a]) / da
                        if ta > tb:
                            ta, tb = tb, ta
                        t0 = max(t0, ta)
                        t1 = min(t1, tb)
                if t0 <= t1 and t0 > 0.0 and t0 < best:
                    best = t0
                    cls = classes[b]
            if cls == 17:
                depth[v, u] = 0.0
            else:
                depth[v, u] = best
            semantics[v, u] = cls


def render(world: ToyWorld, camera: CameraFrame, keyframe_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (depth (H, W) float32, semantics (H, W) uint8) of one camera; sky: depth 0, class 17."""
    lower, upper, classes = world.box_arrays(keyframe_index)
    T = camera.global_T_cam
    depth = np.empty((camera.height, camera.width), np.float32)
    semantics = np.empty((camera.height, camera.width), np.uint8)
    _render(np.ascontiguousarray(T[:3, 3]), np.ascontiguousarray(T[:3, :3]), np.asarray(camera.K, np.float64),
            camera.width, camera.height, lower, upper, classes, world.road_half_width, SKY_DISTANCE, depth, semantics)
    return depth, semantics


def make_scene(
    name: str = "toy-0",
    num_keyframes: int = 6,
    width: int = 320,
    height: int = 180,
    speed: float = 4.0,
    yaw_rate: float = 0.0,
    cameras: tuple[str, ...] = CAMERA_NAMES,
    camera_time_offsets: bool = False,
) -> Scene:
    """A scene whose ego drives ``speed`` metres per keyframe along +x (turning ``yaw_rate`` rad per keyframe).

    Cameras share the keyframe's ego pose, unless ``camera_time_offsets``: then each camera gets its own ego pose
    a little ahead along the path, as nuScenes' cameras fire at their own timestamps.
    """
    K = scale_intrinsics(NUSCENES_K, width / NUSCENES_SIZE[0], height / NUSCENES_SIZE[1])
    scene = Scene(name=name, token=f"{name}-token")
    for t in range(num_keyframes):
        pose = _ego_pose(t, speed, yaw_rate)
        cams = {}
        for c, cam in enumerate(cameras):
            yaw, position = CAMERA_RIG[cam]
            ego_T_cam = make_transform(yaw_rotation(np.radians(yaw)) @ _EGO_R_CAM, position)
            cam_pose = _ego_pose(t + 0.01 * (c + 1), speed, yaw_rate) if camera_time_offsets else pose
            cams[cam] = CameraFrame(name=cam, sample_data_token=f"{name}-{t}-{cam}", image_path=Path(f"{name}/{t}/{cam}.jpg"),
                                    relpath=f"samples/{cam}/{name}-{t}.jpg", width=width, height=height,
                                    timestamp=t * 500_000 + c, K=K, ego_T_cam=ego_T_cam, global_T_ego=cam_pose)
        scene.keyframes.append(Keyframe(token=f"{name}-kf{t:03d}", scene_name=name, index=t, timestamp=t * 500_000,
                                        global_T_ego=pose, lidar_path=Path(""), ego_T_lidar=np.eye(4), cameras=cams))
    return scene


def _ego_pose(t: float, speed: float, yaw_rate: float) -> np.ndarray:
    yaw = yaw_rate * t
    if yaw_rate == 0.0:
        position = (speed * t, 0.0, 0.0)
    else:  # an arc of radius speed / yaw_rate
        r = speed / yaw_rate
        position = (r * np.sin(yaw), r * (1.0 - np.cos(yaw)), 0.0)
    return make_transform(yaw_rotation(yaw), position)


def _keyframe_index(camera: CameraFrame) -> int:
    return int(camera.sample_data_token.split("-")[-2])


class ToySemantics(SemanticSource):
    """Exact semantics of a :class:`ToyWorld`."""

    name = "toy"

    def __init__(self, world: ToyWorld):
        self.world = world

    def semantics(self, camera: CameraFrame) -> np.ndarray:
        return render(self.world, camera, _keyframe_index(camera))[1]


class ToyDepth(DepthSource):
    """Exact depth of a :class:`ToyWorld` (0 for sky)."""

    name = "toy"

    def __init__(self, world: ToyWorld):
        self.world = world

    def depth(self, camera: CameraFrame) -> np.ndarray:
        return render(self.world, camera, _keyframe_index(camera))[0]


def ground_truth_occupancy(world: ToyWorld, keyframe: Keyframe, grid=None) -> np.ndarray:
    """(X, Y, Z) uint8 class of each voxel of the keyframe's grid whose centre is inside a box or the ground layer
    (z in [-0.2, 0.2)), 17 elsewhere: a coarse reference for sanity checks."""
    from easyocc.occ3d import OCC3D_GRID

    grid = grid or OCC3D_GRID
    centres = grid.centers(np.float64)
    T = keyframe.global_T_ego
    out = np.full(grid.shape, FREE, np.uint8)
    k_ground = int(np.floor((0.0 - grid.lower[2]) / grid.voxel_size))  # the layer holding z in [-0.2, 0.2)
    ground_world = centres[:, :, k_ground] @ T[:3, :3].T + T[:3, 3]
    out[:, :, k_ground] = np.where(np.abs(ground_world[..., 1]) <= world.road_half_width, 11, 13)
    ego_T_world = np.linalg.inv(T)
    lower, upper, classes = world.box_arrays(keyframe.index)
    for lo, up, c in zip(lower, upper, classes):
        corners = np.array([[x, y, z] for x in (lo[0], up[0]) for y in (lo[1], up[1]) for z in (lo[2], up[2])])
        ego = corners @ ego_T_world[:3, :3].T + ego_T_world[:3, 3]
        first = np.clip(np.floor((ego.min(0) - grid.lower_array) / grid.voxel_size).astype(int), 0, grid.shape)
        last = np.clip(np.ceil((ego.max(0) - grid.lower_array) / grid.voxel_size).astype(int) + 1, 0, grid.shape)
        if np.any(last <= first):
            continue
        block = tuple(slice(a, b) for a, b in zip(first, last))
        world_pts = centres[block] @ T[:3, :3].T + T[:3, 3]
        inside = np.all((world_pts >= lo) & (world_pts < up), axis=-1)
        out[block][inside] = c
    return out
