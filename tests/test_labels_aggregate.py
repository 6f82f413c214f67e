import numpy as np

from easyocc.geometry import invert_transform, make_transform, transform_points, yaw_rotation
from easyocc.labels.aggregate import PosedFrame, posed_frame_from_cloud, remove_outliers, window_counts
from easyocc.labels.cells import FrameCells, cells_from_image, cells_from_points, merge_runs
from easyocc.labels.config import LabelConfig
from easyocc.labels.lift import SemanticCloud, lift_image
from easyocc.labels.pipeline import label_window
from easyocc.labels.voxelize import count_points, vote, voxelize_points
from easyocc.occ3d import FREE, OCC3D_GRID

K = np.array([[150.0, 0.0, 79.5], [0.0, 150.0, 44.5], [0.0, 0.0, 1.0]])
REF_T_CAM = make_transform(yaw_rotation(0.4) @ np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [1.0, 0.3, 1.6])


def random_maps(seed, h=90, w=160):
    rng = np.random.default_rng(seed)
    # Smooth depth (a tilted surface) so neighbouring pixels share cells, plus a few sky and ignore pixels.
    vv, uu = np.mgrid[0:h, 0:w]
    depth = (5.0 + 0.2 * vv + 0.05 * uu + rng.normal(0, 0.05, (h, w))).astype(np.float32)
    semantics = np.where(uu < w // 2, 11, 15).astype(np.uint8)
    semantics[rng.random((h, w)) < 0.02] = 255
    semantics[:3] = FREE
    return depth, semantics


def sorted_entries(cells: FrameCells):
    order = np.lexsort((cells.classes, *np.round(cells.centres.T * 1000).astype(np.int64)))
    return cells.centres[order], cells.classes[order], cells.counts[order]


def test_image_cells_equal_binned_lifted_points():
    depth, semantics = random_maps(0)
    fast = merge_runs([cells_from_image(depth, semantics, K, REF_T_CAM)], 4)
    cloud = lift_image(depth, semantics, K, REF_T_CAM)
    plain = cells_from_points(cloud.points, cloud.classes, 4)
    assert fast.num_points == len(cloud) and len(fast) < len(cloud)
    for a, b in zip(sorted_entries(fast), sorted_entries(plain)):
        np.testing.assert_array_equal(a, b)


def test_current_frame_counts_are_exact():
    """The current frame's cells nest in its voxels: the counts equal those of the raw points."""
    depth, semantics = random_maps(1)
    cloud = lift_image(depth, semantics, K, REF_T_CAM)
    for divisions in (0, 2, 4, 8):
        cells = merge_runs([cells_from_image(depth, semantics, K, REF_T_CAM, divisions=divisions)], divisions) \
            if divisions else cells_from_points(cloud.points, cloud.classes, 0)
        counts = window_counts([PosedFrame(cells, np.eye(4))], ())
        np.testing.assert_array_equal(counts.counts, count_points(cloud.points, cloud.classes))
        assert counts.current.sum() == (counts.counts.sum(-1) > 0).sum()


def static_world(rng, n=20000):
    """Points 0.1 m or less from voxel centres of the grid around the origin, with static classes."""
    ijk = rng.integers([60, 60, 1], [140, 140, 10], (n, 3))
    centres = (ijk + 0.5) * 0.4 + OCC3D_GRID.lower_array
    points = centres + rng.uniform(-0.1, 0.1, (n, 3))
    return points, rng.choice([11, 13, 15, 16], n).astype(np.uint8)


def test_aggregation_is_exact_under_known_poses():
    """Frames see parts of a static world from known poses; aggregated in the current frame, every point counts in
    the voxel it was drawn in (points keep 0.1 m from voxel faces, more than a 0.1 m cell's half diagonal)."""
    rng = np.random.default_rng(2)
    global_T_current = make_transform(yaw_rotation(1.0), [1200.0, -830.0, 3.0])  # far from the origin, as in nuScenes
    world_in_current, classes = static_world(rng)
    world = transform_points(global_T_current, world_in_current, np.float64)
    frames, expected = [], np.zeros((*OCC3D_GRID.shape, 17), np.uint32)
    for f in range(5):
        global_T_ego = global_T_current @ make_transform(yaw_rotation(-0.05 * (4 - f)), [-3.0 * (4 - f), 0.5 * f, 0])
        if f == 4:
            global_T_ego = global_T_current
        seen = rng.random(len(world)) < 0.4  # each frame sees part of the world
        points = transform_points(invert_transform(global_T_ego), world[seen])
        frames.append(posed_frame_from_cloud(SemanticCloud(points, classes[seen]), global_T_ego, divisions=4))
        expected += count_points(world_in_current[seen], classes[seen])
    np.testing.assert_array_equal(window_counts(frames, ()).counts, expected)


def test_dynamic_points_of_past_frames_are_left_out():
    car = np.array([[5.0, 0.2, 0.5]], np.float32)
    frames = []
    for f in range(3):
        global_T_ego = make_transform(np.eye(3), [2.0 * f, 0, 0])
        # The car drives 3 m per frame while the ego drives 2 m: it sits at a new place in the world each time.
        points = np.concatenate([car + [1.0 * f, 0, 0], [[-6.0, 7.0, 0.1]]]).astype(np.float32)
        frames.append(posed_frame_from_cloud(SemanticCloud(points, np.array([4, 15], np.uint8)), global_T_ego))
    labels = label_window(frames, LabelConfig(min_points=1, pass_through=False))
    assert (labels.semantics == 4).sum() == 1
    assert labels.semantics[tuple(OCC3D_GRID.indices(car + [1.0 * 2, 0, 0])[0][0])] == 4
    assert (labels.semantics == 15).sum() == 3  # the static point, seen from three places, lands in three voxels
    trail = label_window(frames, LabelConfig(min_points=1, dynamic_classes=()))
    assert (trail.semantics == 4).sum() == 3


def test_lidar_cloud_entry_point_gives_occupancy_and_free_space():
    wall = np.stack(np.meshgrid(np.full(1, 10.1), np.arange(-3, 3, 0.05), np.arange(0.05, 3, 0.05), indexing="ij"), -1)
    cloud = SemanticCloud(wall.reshape(-1, 3).astype(np.float32), np.full(wall[..., 0].size, 15, np.uint8))
    frame = posed_frame_from_cloud(cloud, np.eye(4), sensor_origin=np.array([0.0, 0.0, 1.8]))
    labels = label_window([frame], LabelConfig(min_points=3))
    i_wall = OCC3D_GRID.indices(np.array([[10.1, 0, 1]]))[0][0, 0]
    assert (labels.semantics[i_wall] == 15).sum() > 50
    j, k = OCC3D_GRID.indices(np.array([[0, 0.1, 1.0]]))[0][0, 1:]
    # From 3 m on, the rays from the sensor (1.8 m up) to the wall cross the row z in [1, 1.4).
    assert labels.mask_lidar[108:i_wall, j, k].all() and (labels.semantics[108:i_wall, j, k] == FREE).all()
    assert not labels.mask_camera[i_wall + 1 :, j, k].any()  # nothing behind the wall is observed


def test_outlier_removal_drops_isolated_cells():
    rng = np.random.default_rng(3)
    dense = rng.normal(0, 0.3, (2000, 3))
    far = rng.uniform(5, 9, (10, 3))
    points = np.concatenate([dense, far]).astype(np.float32)
    cells = cells_from_points(points, np.full(len(points), 15, np.uint8), 0)
    kept = remove_outliers(cells, 8, 2.0)
    assert len(kept) >= 1900 and not (kept.centres > 4).all(axis=1).any()


def test_vote_threshold_and_ties():
    counts = np.zeros((2, 1, 1, 17), np.uint32)
    counts[0, 0, 0, [4, 11]] = [2, 2]  # a tie goes to the lower class id
    counts[1, 0, 0, 15] = 1
    semantics, total = vote(counts, 2)
    assert semantics[0, 0, 0] == 4 and semantics[1, 0, 0] == FREE and total.ravel().tolist() == [4, 1]
    points = np.array([[0.1, 0.1, 0.1], [0.15, 0.1, 0.1], [0.3, 0.3, 0.3]], np.float32)
    sem, occ = voxelize_points(points, np.array([13, 14, 14], np.uint8), 1)
    ijk = OCC3D_GRID.indices(points[:1])[0][0]
    assert sem[tuple(ijk)] == 13 and occ.sum() == 2  # 0.1 and 0.15 share a voxel (a tie), 0.3 is one layer up


def test_rare_class_priority_in_the_vote():
    counts = np.zeros((3, 1, 1, 17), np.uint32)
    counts[0, 0, 0, [8, 11]] = [3, 40]  # a cone's points in a road voxel
    counts[1, 0, 0, [1, 8, 11]] = [4, 4, 40]  # two rare classes tie: the lower id
    counts[2, 0, 0, [8, 11]] = [1, 40]  # too few cone points
    plain, _ = vote(counts, 2)
    assert plain.ravel().tolist() == [11, 11, 11]
    rare, total = vote(counts, 2, rare_classes=(1, 8), rare_min_points=2)
    assert rare.ravel().tolist() == [8, 1, 11] and total.ravel().tolist() == [43, 48, 41]
    # Occupancy still needs min_points in all.
    assert vote(counts, 50, rare_classes=(1, 8), rare_min_points=2)[0].ravel().tolist() == [FREE] * 3


def test_a_cone_beside_the_road_keeps_its_voxel():
    """A dense road patch and a thin cone standing on it: the plain vote hands the cone's voxels to the road."""
    g = np.arange(0.0, 2.0, 0.02)
    road = np.stack(np.meshgrid(10 + g, 3 + g, [0.0], indexing="ij"), -1).reshape(-1, 3)
    h = np.arange(0.0, 0.6, 0.05)
    cone = np.stack(np.meshgrid([10.81, 10.85], [3.81, 3.85], h, indexing="ij"), -1).reshape(-1, 3)
    points = np.concatenate([road, cone]).astype(np.float32)
    classes = np.concatenate([np.full(len(road), 11), np.full(len(cone), 8)]).astype(np.uint8)
    frame = posed_frame_from_cloud(SemanticCloud(points, classes), np.eye(4), divisions=0)
    cone_voxel = tuple(OCC3D_GRID.indices(np.array([[10.83, 3.83, 0.0]]))[0][0])
    above = cone_voxel[:2] + (cone_voxel[2] + 1,)
    plain = label_window([frame], LabelConfig(min_points=1, pass_through=False))
    rare = label_window([frame], LabelConfig(min_points=1, rare_priority=True, rare_min_points=3))
    assert plain.semantics[cone_voxel] == 11 and plain.semantics[above] == 8
    assert rare.semantics[cone_voxel] == 8 and rare.semantics[above] == 8
    changed = plain.semantics != rare.semantics
    assert changed.sum() == 1  # the road around it stays road
