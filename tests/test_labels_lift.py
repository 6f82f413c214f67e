import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import REAL_EGO_MASKS, REAL_SAMPLE_TOKEN, require
from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex
from easyocc.errors import InputError
from easyocc.geometry import invert_transform, make_transform, project_points, transform_points, yaw_rotation
from easyocc.labels.lift import SemanticCloud, lift_image, load_ego_masks, resize_mask
from easyocc.occ3d import FREE, IGNORE

K = np.array([[200.0, 0.0, 79.5], [0.0, 210.0, 44.5], [0.0, 0.0, 1.0]])
# A camera looking along ego +y, 1.5 m up, slightly rolled: a generic rigid transform.
REF_T_CAM = make_transform(yaw_rotation(0.3) @ np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [1.2, -0.4, 1.5])


def random_maps(rng, h=90, w=160):
    depth = rng.uniform(1.0, 60.0, (h, w)).astype(np.float32)
    semantics = rng.integers(0, 17, (h, w)).astype(np.uint8)
    return depth, semantics


def test_lifting_and_projection_invert_each_other():
    rng = np.random.default_rng(0)
    depth, semantics = random_maps(rng)
    cloud = lift_image(depth, semantics, K, REF_T_CAM)
    assert len(cloud) == depth.size and cloud.points.dtype == np.float32
    uv, z = project_points(K, transform_points(invert_transform(REF_T_CAM), cloud.points, np.float64))
    vv, uu = np.mgrid[0:90, 0:160]
    np.testing.assert_allclose(uv, np.stack([uu.ravel(), vv.ravel()], 1), atol=2e-3)
    np.testing.assert_allclose(z, depth.ravel(), rtol=1e-5)
    np.testing.assert_array_equal(cloud.classes, semantics.ravel())


def test_pixel_rules_ignore_sky_zero_depth_ego_mask_range_and_stride():
    rng = np.random.default_rng(1)
    depth, semantics = random_maps(rng)
    semantics[0, :10] = IGNORE
    semantics[1, :10] = FREE
    depth[2, :10] = 0.0
    keep = np.ones_like(depth, bool)
    keep[80:, :] = False  # the ego body at the bottom of the image
    cloud = lift_image(depth, semantics, K, REF_T_CAM, keep=keep)
    assert len(cloud) == depth.size - 30 - 10 * 160
    assert not np.isin(cloud.classes, [FREE, IGNORE]).any()
    near = lift_image(depth, semantics, K, REF_T_CAM, max_range=20.0)
    ranges = np.linalg.norm(near.points - REF_T_CAM[:3, 3].astype(np.float32), axis=1)
    assert len(near) < len(cloud) and ranges.max() <= 20.0 + 1e-4
    strided = lift_image(depth, semantics, K, REF_T_CAM, stride=4)
    everything = lift_image(depth, semantics, K, REF_T_CAM)
    valid = (semantics < 17) & (depth > 0)
    on_stride = np.zeros_like(valid)
    on_stride[::4, ::4] = True
    np.testing.assert_array_equal(strided.points, everything.points[on_stride[valid]])


def test_ego_masks_load_and_resize(tmp_path):
    masks = load_ego_masks(require(REAL_EGO_MASKS), CAMERA_NAMES)
    assert masks["CAM_FRONT"].all()  # nothing of the car is seen from the front camera
    back = masks["CAM_BACK"]
    assert back.shape == (900, 1600) and 0.01 < (~back).mean() < 0.1 and (~back[850:]).any() and back[:800].all()
    small = resize_mask(back, 320, 180)
    assert small.shape == (180, 320) and abs((~small).mean() - (~back).mean()) < 0.01
    with pytest.raises(InputError, match="ego mask for CAM_FRONT not found"):
        load_ego_masks(tmp_path, ("CAM_FRONT",))


def sparse_lidar_depth(points_ref: np.ndarray, ref_T_cam: np.ndarray, K: np.ndarray, width: int, height: int):
    """Project LiDAR points (N, 3) into a camera; the nearest point per pixel gives that pixel's depth."""
    uv, z = project_points(K, transform_points(invert_transform(ref_T_cam), points_ref, np.float64))
    px = np.round(np.nan_to_num(uv, nan=-1.0)).astype(np.int64)
    ok = (z > 0.5) & (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & (px[:, 1] < height)
    depth = np.full((height, width), np.inf, np.float32)
    np.minimum.at(depth, (px[ok, 1], px[ok, 0]), z[ok].astype(np.float32))
    depth[~np.isfinite(depth)] = 0.0
    return depth


def test_real_keyframe_lifts_back_onto_its_lidar_points(real_nuscenes_root):
    keyframe = DatasetIndex(real_nuscenes_root, "v1.0-mini").keyframes[REAL_SAMPLE_TOKEN]
    scan = np.fromfile(keyframe.lidar_path, dtype=np.float32).reshape(-1, 5)[:, :3]
    lidar_ref = transform_points(keyframe.ego_T_lidar, scan)  # keyframe ego frame = the LiDAR's timestamp
    tree = cKDTree(lidar_ref)
    lifted = []
    for name, cam in keyframe.cameras.items():
        ref_T_cam = keyframe.ref_T_cam(name)
        depth = sparse_lidar_depth(lidar_ref, ref_T_cam, cam.K, cam.width, cam.height)
        cloud = lift_image(depth, np.full(depth.shape, 15, np.uint8), cam.K, ref_T_cam)
        assert len(cloud) == (depth > 0).sum() > 500
        # A lifted pixel lies on the ray through the pixel centre, at most half a pixel diagonal from its point.
        distance, _ = tree.query(cloud.points)
        z = depth[depth > 0]
        assert np.all(distance <= 0.71 * z / cam.K[0, 0] + 2e-3), name
        lifted.append(cloud)
    all_points = SemanticCloud.concatenate(lifted)
    # The six cameras see around the car: the lifted cloud spans all directions like the scan does.
    angles = np.degrees(np.arctan2(all_points.points[:, 1], all_points.points[:, 0]))
    assert np.histogram(angles, bins=12, range=(-180, 180))[0].min() > 0
