"""The official voxel semantics, encoded independently: hand-built matrices, the devkit formula, real labels."""

import pickle

import numpy as np
import pytest

from conftest import REAL_OCC3D_LABELS, require
from easyocc.errors import InputError
from easyocc.evaluation.metrics import ConfusionMatrix, geometric_iou, per_class_iou
from easyocc.occ3d import CLASS_IDS, FREE, IGNORE, read_labels

CAR, DRIVEABLE, OTHERS, BARRIER, OTHER_FLAT = (CLASS_IDS[n] for n in ("car", "driveable_surface", "others",
                                                                       "barrier", "other_flat"))


def scores_of(gt, pred, mask=None):
    cm = ConfusionMatrix()
    cm.update(np.asarray(gt, np.uint8), np.asarray(pred, np.uint8), None if mask is None else np.asarray(mask, bool))
    return cm, cm.compute()


def devkit_miou(gts, preds, masks):
    """The Occ3D devkit's Metric_mIoU, written out: boolean-mask, bincount(18 * gt + pred), nanmean over 0..16."""
    hist = np.zeros((18, 18))
    for gt, pred, mask in zip(gts, preds, masks):
        g, p = gt[mask].astype(int), pred[mask].astype(int)
        keep = (g >= 0) & (g < 18)
        hist += np.bincount(18 * g[keep] + p[keep], minlength=324).reshape(18, 18)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return np.nanmean(iou[:17]) * 100, hist


def test_free_is_in_the_matrix_but_not_in_the_mean():
    # car: TP 2, FN 1 (free predicted on a car), FP 1 (car predicted on free) -> 2/4; driveable 1/1; free 1/3.
    cm, s = scores_of([CAR, CAR, CAR, FREE, FREE, DRIVEABLE], [CAR, CAR, FREE, CAR, FREE, DRIVEABLE])
    assert s.per_class[CAR] == pytest.approx(50.0)
    assert s.per_class[DRIVEABLE] == pytest.approx(100.0)
    assert s.per_class[FREE] == pytest.approx(100.0 / 3)
    assert s.miou == pytest.approx(75.0)  # (50 + 100) / 2: absent classes left out, free not averaged
    assert s.miou_15 == pytest.approx(75.0)
    # Occupied vs free: tp = 3 voxels occupied in both, union = 6 - 1 (free in both) -> 60.
    assert s.iou == pytest.approx(60.0)
    assert cm.hist[CAR, FREE] == 1 and cm.hist[FREE, CAR] == 1 and cm.hist.sum() == 6


def test_classes_absent_from_gt_and_prediction_are_nan_and_left_out():
    _, s = scores_of([CAR, FREE], [CAR, FREE])
    assert np.isnan(s.per_class[[c for c in range(17) if c != CAR]]).all()
    assert s.miou == 100.0
    # A class only predicted is present (IoU 0) and counts in the mean.
    _, s = scores_of([CAR, FREE], [CAR, BARRIER])
    assert s.per_class[BARRIER] == 0.0 and s.miou == pytest.approx(50.0)


def test_fifteen_class_mean_drops_others_and_other_flat():
    # others 1/2, barrier 0/1, other_flat 1, car 1 -> mIoU (17) = 62.5; mIoU_15 (barrier, car) = 50.
    _, s = scores_of([OTHERS, OTHERS, OTHER_FLAT, CAR], [OTHERS, BARRIER, OTHER_FLAT, CAR])
    assert s.per_class[OTHERS] == pytest.approx(50.0) and s.per_class[BARRIER] == 0.0
    assert s.miou == pytest.approx(62.5)
    assert s.miou_15 == pytest.approx(50.0)


def test_ignore_value_and_mask_drop_voxels():
    cm, s = scores_of([CAR, IGNORE, CAR, FREE], [CAR, CAR, FREE, CAR], mask=[1, 1, 0, 1])
    # Kept: (car, car) and (free, car); the 255 voxel and the masked-out voxel are not counted.
    assert cm.hist.sum() == 2 and cm.hist[CAR, CAR] == 1 and cm.hist[FREE, CAR] == 1
    assert s.per_class[CAR] == pytest.approx(50.0)
    assert geometric_iou(cm.hist) == pytest.approx(50.0)


def test_prediction_outside_the_classes_is_refused():
    with pytest.raises(ValueError, match="outside 0..17"):
        scores_of([CAR, CAR], [CAR, 18])


def test_empty_matrix_gives_nan_not_an_error():
    s = ConfusionMatrix().compute()
    assert np.isnan(s.miou) and np.isnan(s.miou_15) and np.isnan(s.iou)
    assert np.isnan(per_class_iou(np.zeros((18, 18), np.int64))).all()


def test_matches_the_devkit_formula_and_merging_equals_one_pass():
    rng = np.random.default_rng(3)
    gts = [rng.choice([0, 4, 11, 15, 16, 17, 17, 17, 255], size=(20, 20, 4)).astype(np.uint8) for _ in range(4)]
    preds = [np.where(rng.random(g.shape) < 0.7, np.minimum(g, 17), rng.integers(0, 18, g.shape)).astype(np.uint8)
             for g in gts]
    masks = [rng.random(g.shape) < 0.6 for g in gts]
    expected_miou, expected_hist = devkit_miou(gts, preds, masks)
    parts = [ConfusionMatrix(), ConfusionMatrix()]
    for i, (g, p, m) in enumerate(zip(gts, preds, masks)):
        parts[i % 2].update(g, p, m)
    total = parts[0].merge(parts[1])
    np.testing.assert_array_equal(total.hist, expected_hist)
    assert total.num_samples[0] == 4
    assert total.compute().miou == pytest.approx(expected_miou, abs=1e-9)


def test_input_error_survives_pickling():
    # Worker processes send errors back to the parent by pickling them.
    err = pickle.loads(pickle.dumps(InputError("/some/file.npz", "bad thing")))
    assert isinstance(err, InputError) and err.path == "/some/file.npz" and str(err) == "/some/file.npz: bad thing"


@pytest.mark.parametrize("mask", ["camera", "none", "lidar", "camera+lidar"])
def test_real_labels_against_themselves_score_100(mask):
    labels = read_labels(require(REAL_OCC3D_LABELS))
    m = {"camera": labels.mask_camera, "none": None, "lidar": labels.mask_lidar,
         "camera+lidar": labels.mask_camera & labels.mask_lidar}[mask]
    _, s = scores_of(labels.semantics, labels.semantics, m)
    assert s.miou == 100.0 and s.miou_15 == 100.0 and s.iou == 100.0


def test_real_labels_perturbed_give_the_hand_computed_scores():
    labels = read_labels(require(REAL_OCC3D_LABELS))
    sem, visible = labels.semantics, labels.mask_camera.astype(bool)
    vegetation, terrain = CLASS_IDS["vegetation"], CLASS_IDS["terrain"]
    pred = sem.copy()
    pred[sem == CAR] = FREE  # every car missed
    pred[sem == vegetation] = terrain  # vegetation mistaken for terrain
    gt_counts = np.bincount(sem[visible], minlength=18)
    present = [c for c in range(17) if gt_counts[c] > 0]
    assert gt_counts[CAR] > 0 and gt_counts[vegetation] > 0 and gt_counts[terrain] > 0
    # By hand: car 0, vegetation 0, terrain n_t / (n_t + n_veg), every other present class 1.
    iou = {c: 1.0 for c in present}
    iou[CAR] = iou[vegetation] = 0.0
    iou[terrain] = gt_counts[terrain] / (gt_counts[terrain] + gt_counts[vegetation])
    occupied = gt_counts[:17].sum()
    _, s = scores_of(sem, pred, visible)
    assert s.miou == pytest.approx(100 * np.mean(list(iou.values())), abs=1e-9)
    in15 = [c for c in present if c not in (OTHERS, OTHER_FLAT)]
    assert s.miou_15 == pytest.approx(100 * np.mean([iou[c] for c in in15]), abs=1e-9)
    assert s.iou == pytest.approx(100 * (occupied - gt_counts[CAR]) / occupied, abs=1e-9)
    assert s.per_class[FREE] == pytest.approx(100 * gt_counts[FREE] / (gt_counts[FREE] + gt_counts[CAR]))


def _all_reduce_worker(rank, world_size, init_file):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        rng = np.random.default_rng(rank)
        gt = rng.integers(0, 18, (10, 10, 4)).astype(np.uint8)
        pred = rng.integers(0, 18, (10, 10, 4)).astype(np.uint8)
        mine = ConfusionMatrix()
        mine.update(gt, pred)
        mine.all_reduce()
        expected = ConfusionMatrix()
        for r in range(world_size):
            rr = np.random.default_rng(r)
            expected.update(rr.integers(0, 18, (10, 10, 4)).astype(np.uint8),
                            rr.integers(0, 18, (10, 10, 4)).astype(np.uint8))
        np.testing.assert_array_equal(mine.hist, expected.hist)
        assert mine.num_samples[0] == world_size
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes
def test_all_reduce_sums_counts_across_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_all_reduce_worker, args=(2, str(tmp_path / "rendezvous")), nprocs=2, join=True)
