import numpy as np

from easyocc.geometry import make_transform, scale_intrinsics, yaw_rotation
from easyocc.labels import toyworld
from easyocc.labels.visibility import auto_ray_stride, camera_rays, label_masks, traverse
from easyocc.occ3d import FREE, OCC3D_GRID


def dense_walk(origin, direction, length, step=0.01):
    """Voxels met by sampling a ray every centimetre up to ``length`` metres (an independent reference)."""
    t = np.arange(0.0, length + step, step)
    t[-1] = min(t[-1], length)
    ijk, inside = OCC3D_GRID.indices(origin + t[:, None] * direction)
    return ijk[inside]


def toy_camera(width=64, height=36):
    scene = toyworld.make_scene(num_keyframes=1, width=width, height=height, cameras=("CAM_FRONT_LEFT",))
    keyframe = scene.keyframes[0]
    world = toyworld.street(seed=4)
    cam = keyframe.cameras["CAM_FRONT_LEFT"]
    depth, semantics = toyworld.render(world, cam, 0)
    return keyframe, cam, depth, semantics


def test_free_space_agrees_with_ray_traversal():
    keyframe, cam, depth, semantics = toy_camera()
    assert (semantics == FREE).any() and (depth > 0).any()
    rays = camera_rays(depth, semantics, cam.K, keyframe.ref_T_cam(cam.name), stride=1)
    assert len(rays) == depth.size
    traversed = traverse(rays)
    expected = np.zeros(OCC3D_GRID.shape, bool)
    for r in range(0, len(rays)):
        length = min(rays.ranges[r], 120.0)
        ijk = dense_walk(rays.origins[r], rays.directions[r], length)
        expected[tuple(ijk.T)] = True
    # Dense sampling misses at most a voxel clipped by less than a centimetre at a corner.
    differ = traversed.astype(bool) != expected
    assert differ.sum() <= 0.002 * expected.sum() and expected.sum() > 2000


def test_automatic_ray_stride_loses_almost_nothing():
    nuscenes = toyworld.NUSCENES_K
    assert auto_ray_stride(nuscenes) == 8
    assert auto_ray_stride(scale_intrinsics(nuscenes, 0.2)) == 1
    keyframe, cam, depth, semantics = toy_camera(800, 450)
    ref_T_cam = keyframe.ref_T_cam(cam.name)
    stride = auto_ray_stride(cam.K, ref_T_cam[:3, 3])
    assert stride == 4
    every = traverse(camera_rays(depth, semantics, cam.K, ref_T_cam, 1)).astype(bool)
    thinned = traverse(camera_rays(depth, semantics, cam.K, ref_T_cam, stride)).astype(bool)
    assert not (thinned & ~every).any()
    assert (every & ~thinned).sum() <= 0.02 * every.sum()


def test_camera_rays_rules():
    K = np.array([[50.0, 0, 9.5], [0, 50.0, 4.5], [0, 0, 1]])
    ref_T_cam = make_transform(yaw_rotation(0.0) @ np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [0, 0, 1.5])
    depth = np.full((10, 20), 8.0, np.float32)
    semantics = np.full((10, 20), 15, np.uint8)
    semantics[0] = FREE  # sky: unbounded, whatever its depth
    depth[1] = 0.0  # no depth: no ray
    semantics[2] = 255  # ignore with a depth: a free-space ray stopping a voxel diagonal short
    keep = np.ones((10, 20), bool)
    keep[9] = False  # ego body: no ray
    rays = camera_rays(depth, semantics, K, ref_T_cam, 1, keep, max_range=None)
    assert len(rays) == 200 - 40
    assert np.isinf(rays.ranges[:20]).all() and np.isfinite(rays.ranges[20:]).all()
    np.testing.assert_allclose(np.linalg.norm(rays.directions, axis=1), 1.0)
    u = np.arange(20)
    row2 = 8.0 * np.sqrt(((u - 9.5) / 50) ** 2 + ((2 - 4.5) / 50) ** 2 + 1)
    np.testing.assert_allclose(rays.ranges[20:40], row2 - 0.4 * np.sqrt(3))  # row 2: ignore pixels
    row3 = 8.0 * np.sqrt(((u - 9.5) / 50) ** 2 + ((3 - 4.5) / 50) ** 2 + 1)
    np.testing.assert_allclose(rays.ranges[40:60], row3)
    capped = camera_rays(depth, semantics, K, ref_T_cam, 1, keep, max_range=5.0)
    assert capped.ranges.max() == 5.0


def test_mask_definitions():
    occupied = np.array([1, 0, 0, 0, 0], bool)
    total = np.array([3, 1, 0, 0, 0], np.uint64)
    traversed = np.array([1, 1, 1, 0, 0], np.uint8)
    current = np.array([1, 1, 0, 0, 1], bool)
    camera, lidar = label_masks(occupied, total, traversed, current)
    assert camera.tolist() == [1, 1, 1, 0, 1]  # passed through, or holding a current point
    assert lidar.tolist() == [1, 0, 1, 0, 0]  # occupied, or passed through with no point at all


def test_see_through_keeps_grazing_ground_and_surfaces():
    """Voxels in front of a wall are seen through; the wall's voxels, the ground's (seen at a grazing angle) and
    what lies behind the wall are not."""
    from easyocc.labels.visibility import depth_view, see_through_voxels

    K = np.array([[100.0, 0, 99.5], [0, 100.0, 49.5], [0, 0, 1]])
    ref_T_cam = make_transform(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [0, 0, 1.5])  # looks along +x
    vv, uu = np.mgrid[0:100, 0:200]
    ray_z = -(vv - 49.5) / 100.0  # ego z of the ray direction per unit depth
    ground = np.where(ray_z < 0, 1.5 / np.maximum(-ray_z, 1e-9), np.inf)
    depth = np.minimum(ground, 20.1).astype(np.float32)  # a wall at x = 20.1 m, the ground z = 0 before it
    semantics = np.where(ground < 20.1, 11, 15).astype(np.uint8)
    carved = see_through_voxels([depth_view(depth, semantics, K, ref_T_cam)], margin=0.4)
    i = lambda x: int((x + 40) / 0.4)  # noqa: E731
    j, k_ground, k_air = 100, 2, 5  # y = 0; z in [-0.2, 0.2) holds the ground, z in [1, 1.4) is air
    assert carved[i(5):i(19), j, k_air].all()  # air in front of the wall
    assert not carved[i(20.1), j, k_air] and not carved[i(25), j, k_air]  # the wall, and behind it
    assert not carved[i(5):i(19.5), j, k_ground].any()  # the ground, although rays graze its voxels


def test_carving_drops_past_points_the_current_cameras_see_through():
    from easyocc.labels.aggregate import PosedFrame, posed_frame_from_cloud
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.lift import SemanticCloud, lift_image
    from easyocc.labels.pipeline import label_window
    from easyocc.labels.visibility import depth_view

    K = np.array([[100.0, 0, 99.5], [0, 100.0, 49.5], [0, 0, 1]])
    ref_T_cam = make_transform(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [0, 0, 1.5])
    depth = np.full((100, 200), 20.1, np.float32)  # a wall 20.1 m ahead filling the view
    semantics = np.full((100, 200), 15, np.uint8)
    wall = lift_image(depth, semantics, K, ref_T_cam)
    current = posed_frame_from_cloud(wall, np.eye(4))
    current = PosedFrame(current.cells, np.eye(4), camera_rays(depth, semantics, K, ref_T_cam, 1), "now",
                         (depth_view(depth, semantics, K, ref_T_cam),))
    # A past frame (same pose) put wall points 3 m too close, as a depth-scale error would.
    misplaced = SemanticCloud(wall.points - np.array([3.0, 0, 0], np.float32), wall.classes)
    past = posed_frame_from_cloud(misplaced, np.eye(4))
    x_misplaced = int((17.1 + 40) / 0.4)
    carved = label_window([past, current], LabelConfig(min_points=1, pass_through=False))
    plain = label_window([past, current], LabelConfig(min_points=1, carve=False, pass_through=False))
    assert (plain.semantics[x_misplaced] == 15).sum() > 50
    in_view = slice(int((-16 + 40) / 0.4), int((16 + 40) / 0.4))  # at 17 m the camera sees |y| < 17 m
    assert not (carved.semantics[x_misplaced, in_view] == 15).any()
    np.testing.assert_array_equal(carved.semantics[x_misplaced + 5 :], plain.semantics[x_misplaced + 5 :])


def _wall_view(width=400, height=200, focal=200.0, distance=20.1):
    """A camera 1.5 m up looking along +x at a wall ``distance`` m ahead that fills the view."""
    K = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]])
    ref_T_cam = make_transform(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [0, 0, 1.5])
    depth = np.full((height, width), distance, np.float32)
    semantics = np.full((height, width), 15, np.uint8)
    return K, ref_T_cam, depth, semantics


def test_a_ray_passing_through_a_smeared_point_removes_it():
    """Depth smeared across an edge leaves a few of the current frame's points floating in front of the wall.
    Carving never drops the current frame's points; the pass-through filter does, since the frame's own rays
    cross their voxel, and it keeps the wall."""
    from easyocc.labels.aggregate import PosedFrame, posed_frame_from_cloud
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.lift import SemanticCloud, lift_image
    from easyocc.labels.pipeline import label_window
    from easyocc.labels.visibility import depth_view

    K, ref_T_cam, depth, semantics = _wall_view()
    wall = lift_image(depth, semantics, K, ref_T_cam)
    smear = SemanticCloud(np.array([[12.1, 0.1, 1.5], [12.15, 0.12, 1.45], [12.2, 0.05, 1.55]], np.float32),
                          np.full(3, 15, np.uint8))
    cells = posed_frame_from_cloud(SemanticCloud.concatenate([wall, smear]), np.eye(4)).cells
    rays = camera_rays(depth, semantics, K, ref_T_cam, 1)
    current = PosedFrame(cells, np.eye(4), rays, "now", (depth_view(depth, semantics, K, ref_T_cam),))
    smear_voxel = tuple(OCC3D_GRID.indices(smear.points[:1])[0][0])
    wall_voxels = (slice(int((20.1 + 40) / 0.4), None), slice(95, 105), slice(3, 8))
    plain = label_window([current], LabelConfig(min_points=1, pass_through=False))
    filtered = label_window([current], LabelConfig(min_points=1, pass_through=True, pass_through_ratio=0.9))
    assert plain.semantics[smear_voxel] == 15 and filtered.semantics[smear_voxel] == FREE
    assert filtered.mask_lidar[smear_voxel] == 1  # now observed free: passed through, no point left
    np.testing.assert_array_equal(filtered.semantics[wall_voxels], plain.semantics[wall_voxels])
    assert (filtered.semantics[wall_voxels] == 15).sum() > 30


def test_pass_through_counts_the_window_and_spares_moving_objects():
    """A past frame's rays cross where a car now stands: the car (dynamic, the current frame's own) stays; a
    static point there from that past frame goes."""
    from easyocc.labels.aggregate import PosedFrame, posed_frame_from_cloud, window_passes
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.lift import SemanticCloud, lift_image
    from easyocc.labels.pipeline import label_window

    K, ref_T_cam, depth, semantics = _wall_view()
    wall = lift_image(depth, semantics, K, ref_T_cam)
    past = posed_frame_from_cloud(wall, np.eye(4))
    past = PosedFrame(past.cells, np.eye(4), camera_rays(depth, semantics, K, ref_T_cam, 1), "past")
    car = SemanticCloud(np.array([[10.1, 0.1, 1.5]] * 5, np.float32), np.full(5, 4, np.uint8))
    pole = SemanticCloud(np.array([[15.1, 0.1, 1.5]] * 2, np.float32), np.full(2, 15, np.uint8))
    current = PosedFrame(posed_frame_from_cloud(SemanticCloud.concatenate([car, wall]), np.eye(4)).cells,
                         np.eye(4), None, "now")
    past_pole = PosedFrame(posed_frame_from_cloud(pole, np.eye(4)).cells, np.eye(4), None, "older")
    passes_all, passes_current = window_passes([past, past_pole, current])
    car_voxel = tuple(OCC3D_GRID.indices(car.points[:1])[0][0])
    pole_voxel = tuple(OCC3D_GRID.indices(pole.points[:1])[0][0])
    assert passes_current.sum() == 0 and passes_all[car_voxel] >= 60 and passes_all[pole_voxel] >= 25
    cfg = LabelConfig(min_points=1, pass_through=True, pass_through_ratio=0.9, carve=False)
    labels = label_window([past, past_pole, current], cfg)
    assert labels.semantics[car_voxel] == 4 and labels.semantics[pole_voxel] == FREE
    assert label_window([past, past_pole, current], LabelConfig(min_points=1, carve=False, pass_through=False)).semantics[pole_voxel] == 15
