"""A generated SimScenes dataset: a real nuScenes dataroot whose images, depth, semantics, LiDAR, boxes and Occ3D
ground truth agree with each other."""

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_SIMSCENES
from easyocc import cli
from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex, split_scene_names
from easyocc.data.synthetic import layout
from easyocc.data.synthetic.agents import KINDS
from easyocc.data.synthetic.generate import SynthConfig, generate_dataset, split_scenes
from easyocc.errors import InputError
from easyocc.geometry import invert_transform, lift_depth, project_points, transform_points
from easyocc.occ3d import DYNAMIC_CLASSES, FREE, OCC3D_GRID, read_labels

VOXEL_DIAGONAL = OCC3D_GRID.voxel_size * np.sqrt(3)
CATEGORY_CLASS = {category: cls for category, cls in KINDS.values()}


@pytest.fixture(scope="module")
def index(tiny_simscenes):
    return DatasetIndex(tiny_simscenes, "v1.0-mini")


@pytest.fixture(scope="module")
def nusc(tiny_simscenes):
    from nuscenes.nuscenes import NuScenes

    return NuScenes("v1.0-mini", str(tiny_simscenes), verbose=False)


def _labels(root, kf):
    return read_labels(Path(root) / "gts" / kf.scene_name / kf.token / "labels.npz")


def _keyframes(index):
    return [kf for scene in index.scenes for kf in scene.keyframes]


# ---------------------------------------------------------------------------------------------- format
def test_devkit_loads_and_returns_boxes_in_the_camera_frame(nusc, index):
    assert len(nusc.scene) == TINY_SIMSCENES["scenes"]
    assert len(nusc.sample) == TINY_SIMSCENES["scenes"] * TINY_SIMSCENES["keyframes"]
    sample = nusc.sample[1]
    assert set(sample["data"]) == {*CAMERA_NAMES, "LIDAR_TOP"} and sample["prev"] and sample["anns"]
    kf = index.keyframes[sample["token"]]
    checked = 0
    for cam_name in CAMERA_NAMES:
        path, boxes, K = nusc.get_sample_data(sample["data"][cam_name])
        assert Path(path).is_file()
        np.testing.assert_allclose(K, kf.cameras[cam_name].K)
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            # Our own chain: global centre -> keyframe-independent camera frame through the camera's ego pose.
            cam_T_global = invert_transform(kf.cameras[cam_name].global_T_cam)
            expected = transform_points(cam_T_global, np.array([ann["translation"]]), np.float64)[0]
            np.testing.assert_allclose(box.center, expected, atol=1e-6)
            checked += 1
    assert checked > 0


def test_tables_are_consistent(nusc):
    for inst in nusc.instance:
        anns = [nusc.get("sample_annotation", inst["first_annotation_token"])]
        while anns[-1]["next"]:
            anns.append(nusc.get("sample_annotation", anns[-1]["next"]))
        assert len(anns) == inst["nbr_annotations"]
        assert anns[-1]["token"] == inst["last_annotation_token"]
        assert {a["instance_token"] for a in anns} == {inst["token"]}
        times = [nusc.get("sample", a["sample_token"])["timestamp"] for a in anns]
        assert times == sorted(times)
    names = {nusc.get("category", i["category_token"])["name"] for i in nusc.instance}
    assert names <= set(CATEGORY_CLASS) and {"vehicle.car", "human.pedestrian.adult"} <= names
    for sd in nusc.sample_data:
        sample = nusc.get("sample", sd["sample_token"])
        assert (sd["prev"] == "") == (sample["prev"] == "")
        if sd["prev"]:
            prev = nusc.get("sample_data", sd["prev"])
            assert prev["channel"] == sd["channel"] and prev["timestamp"] < sd["timestamp"]
    mask = nusc.get("map", nusc.log[0]["map_token"])["mask"]
    assert mask.mask().dtype == np.uint8 and 0 < (mask.mask() > 0).mean() < 1


def test_index_cameras_fire_before_the_lidar(index):
    for kf in _keyframes(index):
        for cam in kf.cameras.values():
            assert -50_000 < cam.timestamp - kf.timestamp <= 0
            assert (cam.width, cam.height) == TINY_SIMSCENES["image_size"]
            image = Image.open(cam.image_path)
            assert image.format == "JPEG" and image.size == (cam.width, cam.height)
    gaps = np.diff([kf.timestamp for kf in index.scenes[0].keyframes])
    assert (gaps == 500_000).all()  # 2 Hz


def test_splits_and_sidecar_files(tiny_simscenes, index):
    assert split_scene_names(tiny_simscenes, "v1.0-mini", "train") == ["scene-0001"]
    assert split_scene_names(tiny_simscenes, "v1.0-mini", "val") == ["scene-0002"]
    cam = index.scenes[0].keyframes[0].cameras["CAM_FRONT"]
    depth = np.load(layout.sim_depth_path(tiny_simscenes, cam.relpath))
    semantic = np.asarray(Image.open(layout.sim_semantic_path(tiny_simscenes, cam.relpath)))
    assert depth.dtype == np.float32 and depth.shape == (cam.height, cam.width)
    assert semantic.dtype == np.uint8 and semantic.shape == depth.shape
    assert ((semantic == FREE) == np.isinf(depth)).all() and (semantic <= FREE).all()
    assert np.isinf(depth).any() and (depth[np.isfinite(depth)] > 0).all()  # sky in the front camera
    manifest = json.loads((tiny_simscenes / "simscenes.json").read_text())
    assert manifest["complete"] and manifest["config"]["seed"] == 0


def test_split_rule():
    names = [f"s{i}" for i in range(8)]
    assert split_scenes(names[:1]) == {"train": ["s0"], "val": []}
    assert split_scenes(names[:2]) == {"train": ["s0"], "val": ["s1"]}
    assert split_scenes(names[:4])["val"] == ["s3"]
    assert split_scenes(names)["val"] == ["s6", "s7"]


# -------------------------------------------------------------------------------------------- ground truth
def test_ground_truth_scored_against_itself_is_perfect(tiny_simscenes, index, tmp_path):
    """The GT as predictions, scored by the evaluator (official mIoU with mask_camera, and RayIoU with the ray
    origins from the SimScenes tables): every score is 100."""
    from easyocc.evaluation.runner import evaluate_dirs
    from easyocc.occ3d import write_prediction

    for kf in _keyframes(index):
        labels = _labels(tiny_simscenes, kf)
        write_prediction(tmp_path / f"{kf.token}.npz", labels.semantics)
        assert labels.mask_lidar.any() and labels.mask_camera.any()
        assert (labels.semantics[:, :, :2] == FREE).all()  # below the ground
        assert (labels.mask_camera[:, :, :2] == 0).all() and (labels.mask_lidar[:, :, :2] == 0).all()
    report = evaluate_dirs(tmp_path, tiny_simscenes / "gts", mask="camera", workers=1, progress=False,
                           rayiou=True, data_root=str(tiny_simscenes), version="v1.0-mini", ray_backend="numba")
    assert report.num_samples == len(index)
    present = ~np.isnan(report.scores.per_class[:17])
    assert present.sum() >= 12
    assert report.scores.miou == 100.0 and (report.scores.per_class[:17][present] == 100.0).all()
    assert report.ray_scores.rayiou == 100.0


def test_occupied_gt_voxels_are_what_the_cameras_see(tiny_simscenes, index):
    """Project a 4x4x4 lattice of points of every occupied voxel of mask_camera into the six images: a voxel agrees
    when one of its points lands on a pixel of its class whose depth is within a voxel diagonal of the point's
    (plus half a pixel's depth change, for surfaces seen at grazing angles). The voxel centre alone is not enough:
    the centres of raised ground (kerbs are 0.15 m high) and of partly filled voxels are not visible surfaces."""
    offsets = (np.arange(4) + 0.5) / 4 * OCC3D_GRID.voxel_size - OCC3D_GRID.voxel_size / 2
    lattice = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
    centers = OCC3D_GRID.centers(np.float64)
    agreeing, total = 0, 0
    for kf in _keyframes(index):
        labels = _labels(tiny_simscenes, kf)
        visible = (labels.semantics != FREE) & (labels.mask_camera == 1)
        classes = labels.semantics[visible]
        points = (centers[visible][:, None, :] + lattice[None]).reshape(-1, 3)
        owner = np.repeat(np.arange(len(classes)), len(lattice))
        agree = np.zeros(len(classes), dtype=bool)
        seen = np.zeros(len(classes), dtype=bool)
        for name, cam in kf.cameras.items():
            semantic = np.asarray(Image.open(layout.sim_semantic_path(tiny_simscenes, cam.relpath)))
            depth = np.load(layout.sim_depth_path(tiny_simscenes, cam.relpath)).astype(np.float64)
            grad_v, grad_u = np.gradient(np.where(np.isfinite(depth), depth, np.nan))
            half_pixel = np.nan_to_num(0.5 * np.maximum(np.abs(grad_u), np.abs(grad_v)), nan=0.0)
            uv, z = project_points(cam.K, transform_points(invert_transform(kf.ref_T_cam(name)), points, np.float64))
            px = np.round(uv)
            ok = (z > 0.1) & (px[:, 0] >= 0) & (px[:, 0] < cam.width) & (px[:, 1] >= 0) & (px[:, 1] < cam.height)
            u, v = px[ok, 0].astype(int), px[ok, 1].astype(int)
            seen[owner[ok]] = True
            good = (semantic[v, u] == classes[owner[ok]]) & (np.abs(depth[v, u] - z[ok]) <= VOXEL_DIAGONAL
                                                              + half_pixel[v, u])
            agree[owner[ok][good]] = True
        # Voxels the frustum clips so that none of their points is in an image do not count.
        assert agree[seen].mean() >= 0.93, f"{kf.token}: {agree[seen].mean():.3f}"
        agreeing += agree[seen].sum()
        total += seen.sum()
    # At 160x90 the misses are far ground voxels that no pixel resolves; at 400x225 this is ~98.5 %.
    assert agreeing / total >= 0.95


def test_lifted_depth_lands_in_occupied_voxels_of_the_pixel_class(tiny_simscenes, index):
    """Every pixel's exact depth, lifted with the same K and the camera's own pose, lands on a surface: the voxel
    just behind it is occupied (moving agents excepted: cameras fire up to 45 ms before the GT's LiDAR time)."""
    same_class, total = 0, 0
    for kf in _keyframes(index)[::3]:
        labels = _labels(tiny_simscenes, kf)
        for name, cam in kf.cameras.items():
            semantic = np.asarray(Image.open(layout.sim_semantic_path(tiny_simscenes, cam.relpath))).reshape(-1)
            depth = np.load(layout.sim_depth_path(tiny_simscenes, cam.relpath))
            finite = np.isfinite(depth).reshape(-1)
            ref_T_cam = kf.ref_T_cam(name)
            pts = transform_points(ref_T_cam, lift_depth(np.where(np.isfinite(depth), depth, 0), cam.K)[finite],
                                   np.float64)
            rays = pts - ref_T_cam[:3, 3]
            ijk, inside = OCC3D_GRID.indices(pts + 0.01 * rays / np.linalg.norm(rays, axis=1, keepdims=True))
            voxel = labels.semantics[tuple(ijk[inside].T)]
            pixel = semantic[finite][inside]
            static = ~np.isin(pixel, DYNAMIC_CLASSES)
            assert (voxel[static] != FREE).mean() >= 0.999
            assert (voxel != FREE).mean() >= 0.99
            # Partly filled voxels take the class with the largest volume: a pixel may see a minority class.
            assert (voxel == pixel).mean() >= 0.9
            same_class += (voxel == pixel).sum()
            total += len(voxel)
    assert same_class / total >= 0.95


def test_lidar_points_fall_in_occupied_voxels_of_their_class(tiny_simscenes, index, nusc):
    from nuscenes.utils.geometry_utils import points_in_box

    in_box_agree, in_box_total = 0, 0
    for kf in _keyframes(index):
        labels = _labels(tiny_simscenes, kf)
        scan = np.fromfile(kf.lidar_path, dtype=np.float32).reshape(-1, 5)
        assert scan.shape[0] > 20_000 and set(np.unique(scan[:, 4])) <= set(range(32))
        point_class = np.load(layout.sim_lidar_semantic_path(tiny_simscenes, str(kf.lidar_path.relative_to(
            tiny_simscenes))))
        pts = transform_points(kf.ego_T_lidar, scan[:, :3], np.float64)
        rays = pts - kf.ego_T_lidar[:3, 3]
        # 1 mm into the surface (a ray grazing a corner can leave a solid again within a centimetre).
        ijk, inside = OCC3D_GRID.indices(pts + 0.001 * rays / np.linalg.norm(rays, axis=1, keepdims=True))
        voxel = labels.semantics[tuple(ijk[inside].T)]
        assert (voxel != FREE).mean() >= 0.9999  # the scan and the GT are both at the LiDAR timestamp: exact
        assert (voxel == point_class[inside]).mean() >= 0.95
        assert labels.mask_lidar[tuple(ijk[inside].T)].mean() >= 0.99
        # The annotation boxes give the classes too: points in a box (above the ground layer) lie in voxels of
        # the box's class.
        _, boxes, _ = nusc.get_sample_data(nusc.get("sample", kf.token)["data"]["LIDAR_TOP"])
        for box in boxes:
            cls = CATEGORY_CLASS[box.name]
            in_box = points_in_box(box, scan[:, :3].T) & inside & (pts[:, 2] >= 0.2)
            in_box_total += in_box.sum()
            in_box_agree += (labels.semantics[tuple(ijk[in_box].T)] == cls).sum()
            ann = nusc.get("sample_annotation", box.token)
            assert ann["num_lidar_pts"] >= (points_in_box(box, scan[:, :3].T) & (point_class == cls)).sum() * 0.9
    assert in_box_total > 100 and in_box_agree / in_box_total >= 0.95


def test_moving_agents_move_and_parked_ones_do_not(nusc):
    moved = {True: 0, False: 0}
    for inst in nusc.instance:
        ann = nusc.get("sample_annotation", inst["first_annotation_token"])
        if not ann["next"]:
            continue
        nxt = nusc.get("sample_annotation", ann["next"])
        step = np.linalg.norm(np.subtract(nxt["translation"], ann["translation"]))
        attrs = {nusc.get("attribute", a)["name"] for a in ann["attribute_tokens"]}
        if attrs & {"vehicle.moving", "pedestrian.moving"}:
            assert step > 0.2
            moved[True] += 1
        elif attrs & {"vehicle.parked", "pedestrian.standing"} or not attrs:
            assert step < 1e-6
            moved[False] += 1
    assert moved[True] > 3 and moved[False] > 10


# ---------------------------------------------------------------------------------- determinism, CLI
def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    config = SynthConfig(scenes=1, keyframes=2, image_size=(96, 54), seed=7)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(a, config, progress=False)
    generate_dataset(b, config, progress=False)
    generate_dataset(c, SynthConfig(scenes=1, keyframes=2, image_size=(96, 54), seed=8), progress=False)
    files = _tree(a)
    assert files == _tree(b) and len(files) > 40
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    assert (a / "v1.0-mini" / "ego_pose.json").read_bytes() != (c / "v1.0-mini" / "ego_pose.json").read_bytes()
    assert _tree(a) != _tree(c)  # other tokens and timestamps


def test_refuses_a_foreign_directory_and_regenerates_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    config = SynthConfig(scenes=1, keyframes=1, image_size=(64, 36))
    with pytest.raises(InputError, match="not empty and not a SimScenes dataset"):
        generate_dataset(foreign, config, progress=False)
    assert _tree(foreign) == ["notes.txt"]
    own = tmp_path / "own"
    generate_dataset(own, config, progress=False)
    (own / "extra.txt").write_text("kept")
    generate_dataset(own, SynthConfig(scenes=1, keyframes=2, image_size=(64, 36), seed=1), progress=False)
    assert (own / "extra.txt").exists()
    assert len(json.loads((own / "v1.0-mini" / "sample.json").read_text())) == 2


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli.main(["synth", "--out", str(out), "--scenes", "1", "--keyframes", "1", "--image-size", "64", "36",
                     "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["keyframes"] == 1 and summary["images"] == 6 and (out / "v1.0-mini" / "scene.json").is_file()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    assert cli.main(["synth", "--out", str(tmp_path / "junk"), "--quiet"]) == 2
    assert "not a SimScenes dataset" in capsys.readouterr().err
    assert cli.main(["synth", "--out", str(tmp_path / "x"), "--keyframes", "0", "--quiet"]) == 2


def test_cli_synth_config_file_then_set_then_options(tmp_path, capsys):
    """``--config`` YAML, then ``--set``, then the options, through ``easyocc.config``; each bad value one line."""
    config = tmp_path / "synth.yaml"
    config.write_text("scenes: 1\nkeyframes: 3\nimage_size: [64, 36]\nseed: 5\nsweeps: none\n")
    out = tmp_path / "ds"
    assert cli.main(["synth", "--out", str(out), "--config", str(config), "--set", "keyframes=2", "jpeg_quality=80",
                     "--seed", "6", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["keyframes"] == 2 and summary["images"] == 12
    written = json.loads((out / "simscenes.json").read_text())["config"]
    assert (written["keyframes"], written["seed"], written["jpeg_quality"], written["sweeps"]) == (2, 6, 80, "none")
    for argv, message in ((["--set", "keyframe=2"], "unknown key 'keyframe'"),
                          (["--set", "scenes=1.5"], "scenes: expected an integer"),
                          (["--config", str(config), "--set", "keyframes=0"], "at least one scene and one keyframe")):
        assert cli.main(["synth", "--out", str(tmp_path / "bad"), *argv, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "bad").exists()

def test_the_oracle_source_reads_simscenes(tiny_simscenes, index):
    from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics

    cam = index.scenes[1].keyframes[2].cameras["CAM_BACK"]
    depth = OracleDepth(tiny_simscenes).depth(cam)
    semantics = OracleSemantics(tiny_simscenes).semantics(cam)
    assert depth.shape == semantics.shape == (cam.height, cam.width)
    assert ((depth == 0) == (semantics == FREE)).all() and (depth > 0).any()
