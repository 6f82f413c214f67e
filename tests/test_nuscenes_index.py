import json
import pickle
import shutil

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


def test_neighbours_on_a_real_layout(real_nuscenes_root, tmp_path):
    """The real keyframe with a CAM_FRONT sweep row 83 ms before it, as nuScenes' tables hold sweeps (file under
    sweeps/, is_key_frame false, its own ego pose), and one 400 ms after it (a gap: no neighbour)."""
    root = tmp_path / "real"
    shutil.copytree(real_nuscenes_root, root)
    tables = root / "v1.0-mini"
    sample_data = json.loads((tables / "sample_data.json").read_text())
    poses = json.loads((tables / "ego_pose.json").read_text())
    front = next(sd for sd in sample_data if sd["filename"].startswith("samples/CAM_FRONT/"))
    pose = next(p for p in poses if p["token"] == front["ego_pose_token"])
    added = []
    for token, step in (("sweep-before", -83_320), ("sweep-far-after", 400_000)):
        stamp = front["timestamp"] + step
        filename = f"sweeps/CAM_FRONT/n015-2018-07-24-11-22-45+0800__CAM_FRONT__{stamp}.jpg"
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / front["filename"], root / filename)
        added.append(dict(front, token=token, ego_pose_token=token, timestamp=stamp, is_key_frame=False,
                          filename=filename, prev=front["token"] if step > 0 else "",
                          next=front["token"] if step < 0 else ""))
        poses.append(dict(pose, token=token, timestamp=stamp,
                          translation=list(np.add(pose["translation"], [step * 1e-5, 0.0, 0.0]))))
    front["prev"], front["next"] = "sweep-before", "sweep-far-after"
    (tables / "sample_data.json").write_text(json.dumps(sample_data + added))
    (tables / "ego_pose.json").write_text(json.dumps(poses))

    kf = DatasetIndex(root, "v1.0-mini").keyframes[REAL_SAMPLE_TOKEN]
    before = kf.neighbour("CAM_FRONT", -1)
    cam = kf.cameras["CAM_FRONT"]
    assert before.timestamp == cam.timestamp - 83_320 and not before.is_key_frame and cam.is_key_frame
    assert before.relpath.startswith("sweeps/CAM_FRONT/") and before.image_path.is_file()
    np.testing.assert_allclose(before.global_T_ego[:3, 3] - cam.global_T_ego[:3, 3], [-0.8332, 0.0, 0.0],
                               atol=1e-9)
    np.testing.assert_array_equal(before.K, cam.K)
    np.testing.assert_array_equal(before.ego_T_cam, cam.ego_T_cam)
    assert kf.neighbour("CAM_FRONT", 1) is None  # 400 ms: more than a dropped frame
    assert all(kf.neighbour(name, o) is None for name in CAMERA_NAMES[1:] for o in (-1, 1))


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
