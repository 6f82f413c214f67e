import pickle

import numpy as np
import pytest

from conftest import REAL_KEYFRAME, REAL_SAMPLE_TOKEN
from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex, split_scene_names
from easyocc.errors import InputError
from easyocc.geometry import invert_transform, project_points, transform_points


def test_index_reads_real_keyframe(real_nuscenes_root):
    index = DatasetIndex(real_nuscenes_root, "v1.0-mini")
    assert [s.name for s in index.scenes] == ["scene-0061"]
    kf = index.keyframes[REAL_SAMPLE_TOKEN]
    assert tuple(kf.cameras) == CAMERA_NAMES
    front = kf.cameras["CAM_FRONT"]
    assert (front.width, front.height) == (1600, 900)
    assert front.image_path.is_file() and kf.lidar_path.is_file()
    # The front camera looks forward: its optical axis (cam z) is roughly ego +x.
    assert front.ego_T_cam[:3, 2] @ np.array([1.0, 0, 0]) > 0.95
    # Each camera has its own timestamp and ego pose, distinct from the LiDAR's.
    assert front.timestamp != kf.timestamp
    assert not np.allclose(front.global_T_ego, kf.global_T_ego)
    assert pickle.loads(pickle.dumps(index.scenes))[0].keyframes[0].token == REAL_SAMPLE_TOKEN


def test_index_matches_mmdet3d_calibration(real_nuscenes_root):
    """An independent cross-check: mmdet3d's info file for the same frame has the same cam2ego and cam2img."""
    info = pickle.load(open(REAL_KEYFRAME / "mmdet3d_info.pkl", "rb"))
    kf = DatasetIndex(real_nuscenes_root, "v1.0-mini").keyframes[REAL_SAMPLE_TOKEN]
    images = info["data_list"][0]["images"] if "data_list" in info else info["images"]
    for name in CAMERA_NAMES:
        cam = kf.cameras[name]
        np.testing.assert_allclose(np.asarray(images[name]["cam2ego"]), cam.ego_T_cam, atol=1e-5)
        np.testing.assert_allclose(np.asarray(images[name]["cam2img"])[:3, :3], cam.K, atol=1e-4)


def test_lidar_points_project_into_front_camera(real_nuscenes_root):
    kf = DatasetIndex(real_nuscenes_root, "v1.0-mini").keyframes[REAL_SAMPLE_TOKEN]
    scan = np.fromfile(kf.lidar_path, dtype=np.float32).reshape(-1, 5)[:, :3]
    ego = transform_points(kf.ego_T_lidar, scan)
    cam = kf.cameras["CAM_FRONT"]
    in_cam = transform_points(invert_transform(kf.ref_T_cam("CAM_FRONT")), ego)
    uv, depth = project_points(cam.K, in_cam)
    ok = (depth > 1) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
    assert ok.sum() > 1000


def test_missing_version_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match="no nuScenes tables for version 'v1.0-trainval'"):
        DatasetIndex(tmp_path, "v1.0-trainval")


def test_split_from_splits_json(tmp_path):
    (tmp_path / "splits.json").write_text('{"train": ["a", "b"], "val": ["c"]}')
    assert split_scene_names(tmp_path, "v1.0-mini", "val") == ["c"]
    with pytest.raises(InputError, match="no split 'test'"):
        split_scene_names(tmp_path, "v1.0-mini", "test")


def test_official_split_for_mini(tmp_path):
    assert "scene-0061" in split_scene_names(tmp_path, "v1.0-mini", "train")
