"""RayIoU: SparseOcc's rays and origins, the casting against a brute-force reference, numba == torch, the metric."""

import math
import pickle

import numpy as np
import pytest

from conftest import REAL_KEYFRAME, REAL_OCC3D_LABELS, REAL_SAMPLE_TOKEN, require
from easyocc.data.nuscenes_index import DatasetIndex
from easyocc.evaluation import rayiou
from easyocc.evaluation.rayiou import RayHits, RayIoU, cast_rays, cast_rays_torch
from easyocc.occ3d import CLASS_IDS, FREE, VoxelGrid, read_labels
from evaluation_helpers import LIDAR_MOUNT, write_tiny_nuscenes

SMALL_GRID = VoxelGrid(lower=(-8.0, -8.0, -1.0), upper=(8.0, 8.0, 2.2), voxel_size=0.4)  # 40 x 40 x 8


def test_lidar_rays_are_sparseocc_s_39_pitches_by_360_azimuths():
    pitches = rayiou.lidar_pitch_angles()
    assert len(pitches) == 39
    assert pitches[0] == pytest.approx(-math.pi / 4) and pitches[9] == pytest.approx(-(math.pi / 2 - math.atan(10)))
    assert 0.21 <= pitches[-1] < 0.23 and pitches[-2] < 0.21  # extrapolated just past the LiDAR's upper edge
    np.testing.assert_allclose(np.diff(pitches[9:]), math.atan(10) - math.atan(9), rtol=1e-9)
    rays = rayiou.lidar_ray_directions()
    assert rays.shape == (14040, 3) and rays.dtype == np.float32 and rayiou.RAYS_PER_ORIGIN == 14040
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-6)
    # Pitch-major, azimuth 0..359 degrees counter-clockwise from +x.
    np.testing.assert_allclose(rays[0], [math.cos(math.pi / 4), 0, -math.sin(math.pi / 4)], atol=1e-7)
    np.testing.assert_allclose(np.degrees(np.arctan2(rays[:360, 1], rays[:360, 0])) % 360, np.arange(360), atol=1e-4)


def test_depth_is_where_the_ray_leaves_the_first_occupied_voxel():
    grid = SMALL_GRID
    sem = np.full(grid.shape, FREE, np.uint8)
    sem[25, 20, 4] = CLASS_IDS["car"]
    origin = np.array([[0.2, 0.2, 0.8]])  # voxel (20.5, 20.5, 4.5)
    hits = cast_rays(sem, sem, origin, np.array([[1.0, 0, 0], [-1.0, 0, 0]], np.float32), grid)
    # +x: the car voxel spans x in [2.0, 2.4) m; dvr reports its exit, 2.4 - 0.2 = 2.2 m.
    assert hits.gt_label[0] == CLASS_IDS["car"] and hits.gt_depth[0] == pytest.approx(2.2, abs=1e-5)
    # -x meets nothing: the last voxel inside the grid (free) and the grid exit, 8.2 m away.
    assert hits.gt_label[1] == FREE and hits.gt_depth[1] == pytest.approx(8.2, abs=1e-5)


def structured_grid(rng, shape):
    """Ground, a few boxes of object classes, a little noise: (X, Y, Z) uint8."""
    sem = np.full(shape, FREE, np.uint8)
    sem[:, :, 0] = rng.choice([11, 13, 14], size=shape[:2], p=[0.6, 0.2, 0.2])
    for _ in range(12):
        x, y = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        w, d, h = rng.integers(1, 5, size=3)
        sem[x:x + w, y:y + d, 1:1 + h] = rng.choice([1, 4, 7, 10, 15, 16])
    noise = rng.random(shape) < 0.01
    sem[noise] = rng.integers(0, 17, noise.sum())
    return sem


def brute_force_hits(pred, gt, origins_m, directions, grid):
    """Reference casting without a traversal: the entry/exit parameters of every voxel along every ray (slab
    test over the whole grid); the hit is the occupied voxel entered first, its depth where the ray leaves it; a
    ray that meets nothing reports the voxel it leaves the grid from. Rays are the reference's float32 rays."""
    scale, lower = float(np.float32(grid.voxel_size)), grid.lower_array
    labels = {"pred": [], "gt": []}
    depths = {"pred": [], "gt": []}
    for origin in origins_m:
        o = ((origin - lower) / scale).astype(np.float32).astype(np.float64)
        for direction in directions:
            e = ((direction.astype(np.float64) + origin - lower) / scale).astype(np.float32).astype(np.float64)
            d = (e - o) / np.linalg.norm(e - o)
            t_in, t_out = [], []
            for axis, n in enumerate(grid.shape):
                lo, hi = np.arange(n, dtype=np.float64), np.arange(1, n + 1, dtype=np.float64)
                if d[axis] != 0:
                    a, b = (lo - o[axis]) / d[axis], (hi - o[axis]) / d[axis]
                    t_in.append(np.minimum(a, b)), t_out.append(np.maximum(a, b))
                else:
                    inside = (lo <= o[axis]) & (o[axis] < hi)
                    t_in.append(np.where(inside, -np.inf, np.inf)), t_out.append(np.where(inside, np.inf, -np.inf))
            enter = np.maximum(np.maximum(t_in[0][:, None, None], t_in[1][None, :, None]), t_in[2][None, None, :])
            leave = np.minimum(np.minimum(t_out[0][:, None, None], t_out[1][None, :, None]), t_out[2][None, None, :])
            crossed = leave > np.maximum(enter, 0.0)
            for name, sem in (("pred", pred), ("gt", gt)):
                candidates = crossed & (sem != FREE)
                if candidates.any():
                    entries = np.where(candidates, enter, np.inf)
                    voxel = np.unravel_index(np.argmin(entries), sem.shape)
                else:
                    voxel = np.unravel_index(np.argmax(np.where(crossed, leave, -np.inf)), sem.shape)
                labels[name].append(sem[voxel])
                depths[name].append(leave[voxel] * scale)
    return RayHits(np.array(labels["pred"], np.uint8), np.array(depths["pred"], np.float32),
                   np.array(labels["gt"], np.uint8), np.array(depths["gt"], np.float32))


def test_casting_equals_brute_force_reference_on_random_grids():
    rng = np.random.default_rng(11)
    gt = structured_grid(rng, SMALL_GRID.shape)
    pred = np.where(rng.random(gt.shape) < 0.97, gt, rng.integers(0, 18, gt.shape)).astype(np.uint8)
    pred = np.roll(pred, 1, axis=1)
    origins = np.array([[0.37, -0.61, 1.84], [-3.13, 2.29, 1.52]])
    directions = rayiou.lidar_ray_directions()[::17]
    fast = cast_rays(pred, gt, origins, directions, SMALL_GRID)
    slow = brute_force_hits(pred, gt, origins, directions, SMALL_GRID)
    np.testing.assert_array_equal(fast.gt_label, slow.gt_label)
    np.testing.assert_array_equal(fast.pred_label, slow.pred_label)
    np.testing.assert_allclose(fast.gt_depth, slow.gt_depth, atol=1e-4)
    np.testing.assert_allclose(fast.pred_depth, slow.pred_depth, atol=1e-4)
    # Both outcomes occur: hits (downward rays) and misses (upward rays leave the 8-voxel-high grid).
    assert 200 < (fast.gt_label != FREE).sum() < len(fast.gt_label) and (fast.pred_label != fast.gt_label).any()
    m_fast, m_slow = RayIoU(), RayIoU()
    m_fast.update(fast), m_slow.update(slow)
    np.testing.assert_allclose(m_fast.compute().per_class, m_slow.compute().per_class, equal_nan=True)


@pytest.mark.slow  # 14,040 rays x 8 origins, twice
def test_torch_lockstep_caster_equals_numba_bit_for_bit():
    rng = np.random.default_rng(5)
    gt = structured_grid(rng, SMALL_GRID.shape)
    pred = np.roll(gt, -1, axis=0)
    origins = [np.array([[0.37, -0.61, 1.84], [-3.13, 2.29, 1.52]]), np.array([[1.0, 1.0, 1.84]])]
    # Include an origin outside the grid in z: dvr truncates and walks until it has left the grid.
    origins.append(np.array([[2.0, -1.0, 3.5]]))
    directions = rayiou.lidar_ray_directions()[::5]
    batch = cast_rays_torch(np.stack([pred] * 3), np.stack([gt] * 3), origins, directions, grid=SMALL_GRID)
    for sample, o in enumerate(origins):
        expected = cast_rays(pred, gt, o, directions, grid=SMALL_GRID)
        got = batch[sample]
        for field in ("pred_label", "pred_depth", "gt_label", "gt_depth"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)


def test_identical_prediction_scores_100_and_a_shift_lowers_it_plausibly():
    gt = read_labels(require(REAL_OCC3D_LABELS), keys=("semantics",)).semantics
    origins = np.array([[LIDAR_MOUNT[0], 0.0, LIDAR_MOUNT[2]], [10.0, 5.0, 1.84], [-10.0, -5.0, 1.84]])

    def score(pred):
        metric = RayIoU()
        metric.update_sample(pred, gt, origins)
        return metric.compute()

    same = score(gt.copy())
    assert same.rayiou == 100.0 and (same.at_threshold == 100.0).all()
    scores = []
    for shift in (1, 2):
        pred = np.full_like(gt, FREE)
        pred[shift:] = gt[:-shift]  # the whole scene moved `shift` voxels (0.4 m each) forward
        scores.append(score(pred))
    one, two = scores
    # Most surfaces stay within 1 m and keep their class; thresholds order the scores.
    assert 60.0 < one.rayiou < 95.0 and two.rayiou < one.rayiou - 5.0
    for s in scores:
        assert s.at_threshold[0] <= s.at_threshold[1] <= s.at_threshold[2]


def test_ray_counts_follow_the_reference_definition():
    car, road, free = CLASS_IDS["car"], CLASS_IDS["driveable_surface"], FREE
    hits = RayHits(
        pred_label=np.array([car, car, road, car, free, road, car], np.uint8),
        pred_depth=np.array([10.0, 13.0, 5.0, 20.0, 30.0, 7.0, 3.0], np.float32),
        gt_label=np.array([car, car, road, road, road, free, 255], np.uint8),
        gt_depth=np.array([10.5, 10.0, 5.0, 20.0, 8.0, 7.0, 3.0], np.float32),
    )
    metric = RayIoU()
    metric.update(hits)
    # Kept: every ray but the one whose GT sees only free space (ray 5). Ray 6 ends on a GT 255 voxel: as in
    # SparseOcc it is kept, counts for no GT class, and its predicted car is a false positive.
    assert metric.num_rays[0] == 6
    assert metric.gt_count[car] == 2 and metric.gt_count[road] == 3 and metric.gt_count.sum() == 5
    assert metric.pred_count[car] == 4 and metric.pred_count[road] == 1 and metric.pred_count[free] == 1
    # car TP: ray 0 at every threshold (0.5 m), ray 1 only at 4 m (3 m). road TP: ray 2 (0 m).
    np.testing.assert_array_equal(metric.true_positive[:, car], [1, 1, 2])
    np.testing.assert_array_equal(metric.true_positive[:, road], [1, 1, 1])
    s = metric.compute()
    car_iou = np.array([1, 1, 2]) / (2 + 4 - np.array([1, 1, 2]))
    road_iou = 1 / (3 + 1 - 1)
    np.testing.assert_allclose(s.per_class[:, car], 100 * car_iou)
    np.testing.assert_allclose(s.at_threshold, 100 * (car_iou + road_iou) / 2)
    assert s.rayiou == pytest.approx(s.at_threshold.mean())
    merged = pickle.loads(pickle.dumps(metric)).merge(metric)
    np.testing.assert_array_equal(merged.true_positive, 2 * metric.true_positive)


def test_ignored_gt_stops_the_ray_and_a_prediction_there_is_a_false_positive():
    """SparseOcc (loaders/ray_metrics.py): 255 is not free, so it ends the GT ray; the ray is kept; the predicted
    class along it is counted, the GT class is none: a false positive for a class, nothing for free."""
    grid = SMALL_GRID
    gt = np.full(grid.shape, FREE, np.uint8)
    gt[25, 20, 4] = 255  # +x: unlabelled
    gt[15, 20, 4] = CLASS_IDS["car"]  # -x: a car
    origin = np.array([[0.2, 0.2, 0.8]])
    directions = np.array([[1.0, 0, 0], [-1.0, 0, 0]], np.float32)
    predictions = {"car on the 255 voxel": np.where(gt == FREE, FREE, CLASS_IDS["car"]).astype(np.uint8),
                   "free on the 255 voxel": np.where(gt == 255, FREE, gt).astype(np.uint8)}
    scores = {}
    for name, pred in predictions.items():
        for cast in (cast_rays, lambda *a: cast_rays_torch(*a)[0]):
            hits = cast(pred, gt, origin, directions, grid)
            assert list(hits.gt_label) == [255, CLASS_IDS["car"]]
            assert hits.gt_depth[0] == pytest.approx(2.2, abs=1e-5)  # stopped where it leaves the 255 voxel
            metric = RayIoU()
            metric.update(hits)
            assert metric.num_rays[0] == 2 and metric.gt_count.sum() == 1
            scores.setdefault(name, []).append(metric.compute().per_class[:, CLASS_IDS["car"]])
    np.testing.assert_allclose(scores["car on the 255 voxel"], 50.0)  # TP 1 / (GT 1 + predicted 2 - TP 1)
    np.testing.assert_allclose(scores["free on the 255 voxel"], 100.0)


def test_origin_of_the_real_keyframe_is_its_lidar_mounting(real_nuscenes_root):
    import pickle as pkl

    index = DatasetIndex(real_nuscenes_root, "v1.0-mini", cameras=())
    origins = rayiou.lidar_origins(index, REAL_SAMPLE_TOKEN)
    # Independent check: mmdetection3d's info file for this frame (lidar2ego translation).
    with open(require(REAL_KEYFRAME / "mmdet3d_info.pkl"), "rb") as f:
        info = pkl.load(f)["data_list"][0]
    assert info["token"] == REAL_SAMPLE_TOKEN
    np.testing.assert_allclose(origins, np.asarray(info["lidar_points"]["lidar2ego"])[None, :3, 3], atol=1e-6)


def test_origins_of_a_scene_are_its_keyframes_lidar_positions_filtered_and_subsampled(tmp_path):
    # Twelve keyframes driving along global +y (yaw 90 degrees), 5 m apart: in the ego frame the others are
    # ahead (+x) or behind (-x), at x = mount_x + 5 (j - i), y = mount_y.
    poses = [(100.0, 200.0 + 5.0 * j, math.pi / 2) for j in range(12)]
    other = [(0.0, 0.0, 0.0), (3.0, 0.0, 0.0)]
    tokens = write_tiny_nuscenes(tmp_path, {"scene-a": poses, "scene-b": other})
    index = DatasetIndex(tmp_path, "v1.0-mini", cameras=())
    mx, my, mz = LIDAR_MOUNT

    # First keyframe: x = mx + 5 j; |x| < 39 keeps j = 0..7 (8 origins, no subsampling).
    first = rayiou.lidar_origins(index, tokens["scene-a"][0])
    np.testing.assert_allclose(first, [[mx + 5 * j, my, mz] for j in range(8)], atol=1e-4)
    # Keyframe 6: all twelve are within 39 m; round(linspace(0, 11, 8)) keeps j = 0, 2, 3, 5, 6, 8, 9, 11.
    middle = rayiou.lidar_origins(index, tokens["scene-a"][6])
    np.testing.assert_allclose(middle, [[mx + 5 * (j - 6), my, mz] for j in (0, 2, 3, 5, 6, 8, 9, 11)], atol=1e-4)
    # Other scenes never contribute.
    np.testing.assert_allclose(rayiou.lidar_origins(index, tokens["scene-b"][1]), [[mx - 3, my, mz], [mx, my, mz]],
                               atol=1e-4)
