"""``easyocc eval`` through ``easyocc.cli.main``: reports, protocols, masks, workers, RayIoU, and bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from easyocc.cli import main
from easyocc.evaluation import evaluate_dirs
from easyocc.evaluation.metrics import ConfusionMatrix
from easyocc.occ3d import FREE, GRID_SHAPE, IGNORE, write_labels, write_prediction
from evaluation_helpers import write_tiny_nuscenes


def make_labels(rng):
    """A plausible Occ3D sample: ground, boxes, free above; the camera mask inside the LiDAR mask."""
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 0] = rng.choice([11, 12, 13, 14], size=GRID_SHAPE[:2], p=[0.5, 0.1, 0.2, 0.2])
    for _ in range(30):
        x, y = rng.integers(0, 190, size=2)
        w, d, h = rng.integers(2, 10), rng.integers(2, 10), rng.integers(1, 8)
        sem[x:x + w, y:y + d, 1:1 + h] = rng.choice([0, 1, 4, 7, 9, 10, 15, 16])
    i, j, k = np.indices(GRID_SHAPE, sparse=True)
    radius = np.hypot(i - 100, j - 100)
    lidar = ((radius < rng.uniform(70, 100)) & (k < 12)).astype(np.uint8)
    camera = lidar & ((radius < rng.uniform(40, 70)) | (sem != FREE)).astype(np.uint8)
    return sem, lidar, camera


def perturb(sem, rng):
    """Shifted, with some boxes relabelled: a prediction that is neither perfect nor hopeless."""
    pred = np.roll(sem, 1, axis=0)
    for _ in range(20):
        x, y, z = rng.integers(0, 190), rng.integers(0, 190), rng.integers(0, 10)
        pred[x:x + 10, y:y + 10, z:z + 6] = rng.integers(0, 18)
    return pred


def write_dataset(root: Path, tokens_by_scene: dict[str, list[str]], seed: int = 0, same: bool = False):
    rng = np.random.default_rng(seed)
    arrays = {}
    for scene, tokens in tokens_by_scene.items():
        for token in tokens:
            sem, lidar, camera = make_labels(rng)
            pred = sem.copy() if same else perturb(sem, rng)
            write_labels(root / "gts" / scene / token / "labels.npz", sem, lidar, camera)
            write_prediction(root / "pred" / f"{token}.npz", pred)
            arrays[token] = (sem, lidar, camera, pred)
    return root / "pred", root / "gts", arrays


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return write_dataset(root, {"scene-0001": ["tok-a", "tok-b", "tok-c"], "scene-0002": ["tok-d"]})


@pytest.fixture
def copy_of(dataset, tmp_path):
    pred, gt, arrays = dataset
    shutil.copytree(pred, tmp_path / "pred")
    shutil.copytree(gt, tmp_path / "gts")
    return tmp_path / "pred", tmp_path / "gts", dict(arrays)


def run_eval(capsys, *args):
    code = main(["eval", "--no-progress", "--workers", "1", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def expected_scores(arrays, mask):
    cm = ConfusionMatrix()
    for sem, lidar, camera, pred in arrays.values():
        m = {"camera": camera, "none": None, "lidar": lidar, "camera+lidar": camera & lidar}[mask]
        cm.update(sem, pred, m)
    return cm.compute()


def one_error_line(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("easyocc eval: error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("mask", ["camera", "none", "lidar", "camera+lidar"])
def test_eval_reports_every_number_with_its_protocol(dataset, capsys, tmp_path, mask):
    pred, gt, arrays = dataset
    code, out, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--mask", mask, "--json", tmp_path / "r.json")
    assert code == 0
    where = {"camera": "camera mask", "none": "no mask, all voxels", "lidar": "LiDAR mask",
             "camera+lidar": "camera AND LiDAR mask"}[mask]
    assert f"Occ3D mIoU ({where}, 17 classes: others..vegetation)" in out
    assert f"mIoU_15 ({where}, 15 classes" in out and f"IoU ({where}, geometric" in out
    report = json.loads((tmp_path / "r.json").read_text())
    expected = expected_scores(arrays, mask)
    assert report["mask"] == mask and report["num_samples"] == 4
    assert report["mIoU"] == pytest.approx(expected.miou) and report["mIoU_15"] == pytest.approx(expected.miou_15)
    assert report["IoU"] == pytest.approx(expected.iou)
    assert report["per_class"]["car"] == pytest.approx(expected.per_class[4])
    assert f"{expected.miou:6.2f}" in out
    assert "rayiou" not in report


def test_masks_give_different_numbers(dataset):
    pred, gt, _ = dataset
    scores = {m: evaluate_dirs(pred, gt, mask=m, workers=1, progress=False).scores.miou for m in ("camera", "none")}
    assert scores["camera"] != scores["none"]


def test_worker_pool_merges_to_the_same_matrix(tmp_path):
    tokens = {"scene-0001": [f"t{i:02d}" for i in range(12)]}  # 8 jobs of up to 2 samples for 2 workers
    pred, gt, _ = write_dataset(tmp_path, tokens, seed=4)
    one = evaluate_dirs(pred, gt, workers=1, progress=False)
    two = evaluate_dirs(pred, gt, workers=2, progress=False)
    np.testing.assert_array_equal(one.confusion.hist, two.confusion.hist)
    assert two.num_samples == 12


def test_missing_predictions_are_an_error_unless_allowed(copy_of, capsys, tmp_path):
    pred, gt, arrays = copy_of
    (pred / "tok-b.npz").unlink()
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt)[::2])
    assert "no prediction for 1 of 4 GT samples" in line and "tok-b" in line and "--allow-missing" in line
    code, out, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--allow-missing", "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["num_samples"] == 3 and report["missing_predictions"] == 1
    del arrays["tok-b"]
    assert report["mIoU"] == pytest.approx(expected_scores(arrays, "camera").miou)
    assert "1 GT samples without prediction skipped" in out


def test_predictions_without_ground_truth_are_counted_and_ignored(copy_of, capsys, tmp_path):
    pred, gt, arrays = copy_of
    shutil.copy(pred / "tok-a.npz", pred / "stranger.npz")
    code, out, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["unmatched_predictions"] == 1 and report["num_samples"] == 4
    assert "1 predictions without GT ignored" in out


def test_ignore_value_in_ground_truth_is_not_counted(copy_of, capsys, tmp_path):
    pred, gt, arrays = copy_of
    sem, lidar, camera, p = arrays["tok-a"]
    sem = sem.copy()
    sem[:50] = IGNORE
    write_labels(gt / "scene-0001" / "tok-a" / "labels.npz", sem, lidar, camera)
    arrays = dict(arrays, **{"tok-a": (sem, lidar, camera, p)})
    code, _, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--mask", "none", "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["mIoU"] == pytest.approx(expected_scores(arrays, "none").miou)
    assert sum(map(sum, report["confusion_matrix"])) == 4 * np.prod(GRID_SHAPE) - 50 * 200 * 16


def _wrong_shape(pred, gt):
    np.savez_compressed(pred / "tok-a.npz", pred=np.zeros((200, 200, 8), np.uint8))
    return pred / "tok-a.npz", "shape (200, 200, 8)"


def _bad_class(pred, gt):
    p = np.full(GRID_SHAPE, FREE, np.uint8)
    p[3, 3, 3] = 18
    np.savez_compressed(pred / "tok-b.npz", pred=p)
    return pred / "tok-b.npz", "value 18"


def _bad_gt_value(pred, gt):
    path = gt / "scene-0001" / "tok-c" / "labels.npz"
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[0, 0, 0] = 200
    ones = np.ones(GRID_SHAPE, np.uint8)
    np.savez_compressed(path, semantics=sem, mask_lidar=ones, mask_camera=ones)
    return path, "value 200"


def _corrupt_pred(pred, gt):
    (pred / "tok-a.npz").write_bytes(b"this is not a zip file")
    return pred / "tok-a.npz", "not a readable npz"


def _corrupt_gt(pred, gt):
    path = gt / "scene-0002" / "tok-d" / "labels.npz"
    path.write_bytes(path.read_bytes()[:2000])
    return path, "npz"


def _no_pred_key(pred, gt):
    np.savez_compressed(pred / "tok-a.npz", logits=np.zeros(GRID_SHAPE, np.uint8))
    return pred / "tok-a.npz", "no 'pred' or 'arr_0'"


def _missing_mask(pred, gt):
    path = gt / "scene-0001" / "tok-a" / "labels.npz"
    np.savez_compressed(path, semantics=np.full(GRID_SHAPE, FREE, np.uint8))
    return path, "missing key 'mask_camera'"


def _no_pred_dir(pred, gt):
    shutil.rmtree(pred)
    return pred, "directory not found"


def _empty_pred_dir(pred, gt):
    shutil.rmtree(pred)
    pred.mkdir()
    return pred, "no <sample_token>.npz"


def _empty_gt_dir(pred, gt):
    shutil.rmtree(gt)
    gt.mkdir()
    return gt, "not an Occ3D gts/ tree"


def _scene_folder_as_gt(pred, gt):
    return gt / "scene-0001", "pass the gts/ folder above it"


@pytest.mark.parametrize("breaker", [_wrong_shape, _bad_class, _bad_gt_value, _corrupt_pred, _corrupt_gt,
                                     _no_pred_key, _missing_mask, _no_pred_dir, _empty_pred_dir, _empty_gt_dir,
                                     _scene_folder_as_gt])
def test_bad_input_is_one_line_naming_the_file(copy_of, capsys, breaker):
    pred, gt, _ = copy_of
    culprit, problem = breaker(pred, gt)
    gt_arg = culprit if breaker is _scene_folder_as_gt else gt
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt_arg)[::2])
    assert f"error: {culprit}: " in line and problem in line


def test_error_inside_a_worker_process_reaches_the_command_line(tmp_path, capsys):
    pred, gt, _ = write_dataset(tmp_path, {"scene-0001": [f"t{i:02d}" for i in range(8)]}, seed=2)
    (pred / "t07.npz").write_bytes(b"garbage")
    code = main(["eval", "--no-progress", "--workers", "2", "--pred", str(pred), "--gt", str(gt)])
    line = one_error_line(code, capsys.readouterr().err)
    assert str(pred / "t07.npz") in line


def test_option_errors(dataset, capsys):
    pred, gt, _ = dataset
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou")[::2])
    assert "--data" in line
    line = one_error_line(main(["eval", "--pred", str(pred), "--gt", str(gt), "--workers", "0"]),
                          capsys.readouterr().err)
    assert "--workers" in line
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou", "--data", pred,
                                    "--ray-device", "gpu")[::2])
    assert "invalid device 'gpu'" in line
    # The implementation is its own option: the old spelling says how to update.
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou", "--data", pred,
                                    "--ray-device", "numba")[::2])
    assert "--ray-backend numba" in line
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou", "--data", pred,
                                    "--ray-backend", "cuda")[::2])
    assert "unknown ray backend 'cuda'" in line


def test_config_file_then_set_then_options(dataset, capsys, tmp_path):
    """``--config`` YAML of EvalConfig fields, then ``--set``, then the options, through ``easyocc.config``."""
    pred, gt, _ = dataset
    config = tmp_path / "eval.yaml"
    config.write_text("mask: none\nworkers: 2\n")
    masks = {}
    for name, extra in (("file", []), ("set", ["--set", "mask=lidar"]), ("option", ["--set", "mask=lidar", "--mask",
                                                                                   "camera+lidar"])):
        code, _, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--config", config, *extra, "--json",
                              tmp_path / f"{name}.json")
        assert code == 0
        masks[name] = json.loads((tmp_path / f"{name}.json").read_text())["mask"]
    assert masks == {"file": "none", "set": "lidar", "option": "camera+lidar"}
    config.write_text("mask: none\nray_devise: cpu\n")
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--config", config)[::2])
    assert str(config) in line and "unknown key 'ray_devise'" in line
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--set", "rayiou=true")[::2])
    assert "--data" in line

@pytest.fixture(scope="module")
def ray_dataset(tmp_path_factory):
    """Two scenes of a tiny nuScenes dataroot, with GT and predictions for each keyframe."""
    root = tmp_path_factory.mktemp("rays")
    tokens = write_tiny_nuscenes(root / "nuscenes", {"scene-0001": [(0.0, 0.0, 0.0), (4.0, 0.5, 0.1)],
                                                     "scene-0002": [(50.0, 50.0, 1.0)]})
    return root, tokens


@pytest.mark.slow  # RayIoU of three sample sets, numba and torch
def test_rayiou_from_the_command_line(ray_dataset, capsys, tmp_path):
    root, tokens = ray_dataset
    pred, gt, _ = write_dataset(tmp_path / "same", tokens, seed=1, same=True)
    code, out, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou", "--data", root / "nuscenes",
                            "--version", "v1.0-mini", "--ray-backend", "numba", "--json", tmp_path / "same.json")
    report = json.loads((tmp_path / "same.json").read_text())
    assert code == 0 and report["rayiou"]["RayIoU"] == 100.0 and report["rayiou"]["RayIoU@1"] == 100.0
    # 2 + 2 + 1 origins x 14,040 rays, less those whose GT sees only free space.
    assert 0 < report["rayiou"]["num_rays"] <= 5 * 14040
    assert "RayIoU (SparseOcc, no mask, 17 classes" in out and "RayIoU@4" in out

    # The runner's torch path (batched in the parent) against the numba path (in the workers), on one sample.
    pred, gt, _ = write_dataset(tmp_path / "noisy", {"scene-0002": tokens["scene-0002"]}, seed=1)
    reports = {}
    for backend in ("numba", "torch"):
        code, _, _ = run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou", "--data", root / "nuscenes",
                              "--version", "v1.0-mini", "--ray-device", "cpu", "--ray-backend", backend,
                              "--json", tmp_path / f"{backend}.json")
        assert code == 0
        reports[backend] = json.loads((tmp_path / f"{backend}.json").read_text())["rayiou"]
    assert reports["numba"] == reports["torch"]  # the torch caster is the numba caster, bit for bit
    assert 0 < reports["numba"]["RayIoU"] < 100


def test_rayiou_needs_every_sample_in_the_tables(ray_dataset, capsys, tmp_path):
    root, tokens = ray_dataset
    pred, gt, _ = write_dataset(tmp_path, {"scene-0001": [tokens["scene-0001"][0], "not-a-keyframe"]}, seed=3)
    line = one_error_line(*run_eval(capsys, "--pred", pred, "--gt", gt, "--rayiou", "--data", root / "nuscenes",
                                    "--version", "v1.0-mini", "--ray-backend", "numba")[::2])
    assert "not-a-keyframe" in line and "not a keyframe" in line
