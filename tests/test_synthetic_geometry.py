"""SimScenes building blocks: prisms, ray casting, exact voxelization, the ground partition, paths, the world."""

import numpy as np
import pytest

from easyocc.data.synthetic.agents import KINDS, agent_shape
from easyocc.data.synthetic.cast import build_scene, cast_rays, cast_rays_bruteforce, count_unoccluded
from easyocc.data.synthetic.footprints import FootprintIndex, convex_overlap
from easyocc.data.synthetic.ground import GroundPlan
from easyocc.data.synthetic.motion import Mover, RouteBuilder, polyline_loop
from easyocc.data.synthetic.sensors import SENSORS, LidarPattern
from easyocc.data.synthetic.solids import SolidBuilder, Solids, box_from_bounds, edge_planes, rectangle, regular_polygon
from easyocc.data.synthetic.voxelize import camera_mask, lidar_mask, voxelize
from easyocc.data.synthetic.world import build_world
from easyocc.geometry import invert_transform
from easyocc.occ3d import CLASS_IDS, DYNAMIC_CLASSES, FREE, OCC3D_GRID

CAR, ROAD, SIDEWALK, MANMADE = (CLASS_IDS[n] for n in ("car", "driveable_surface", "sidewalk", "manmade"))


def _solids(*prisms) -> Solids:
    b = SolidBuilder()
    for poly, zlo, zhi, cls in prisms:
        b.add(poly, zlo, zhi, cls, (0.5, 0.5, 0.5))
    return b.build()


@pytest.fixture(scope="module")
def world():
    return build_world(seed=3, scene_index=0, duration=3.0)


# ------------------------------------------------------------------------------------------------ casting
def test_ray_hits_box_exactly():
    solids = _solids((box_from_bounds(10, -1, 12, 1), 0.0, 2.0, CAR))
    scene = build_scene(solids)
    dirs = np.array([[1.0, 0, 0], [1.0, 0, -0.05], [0, 1.0, 0], [1.0, 0.0, 0.15]])
    t, solid, face = cast_rays(scene, np.array([0.0, 0.0, 1.0]), dirs)
    assert t[0] == pytest.approx(10.0) and solid[0] == 0 and face[0] >= 2  # the near side face
    assert t[1] == pytest.approx(10.0) and face[1] >= 2  # z = 0.5 there
    assert solid[2] == -1 and np.isinf(t[2])
    # Rising: z = 2.5 at the near face x = 10, above the box.
    assert solid[3] == -1


def test_ray_hits_the_top_face():
    solids = _solids((box_from_bounds(10, -1, 12, 1), 0.0, 2.0, CAR))
    t, solid, face = cast_rays(build_scene(solids), np.array([0.0, 0.0, 3.0]), np.array([[1.0, 0.0, -0.09]]))
    # z = 3 - 0.09 t reaches 2 at t = 11.11, inside [10, 12]: the top face.
    assert solid[0] == 0 and face[0] == 1 and t[0] == pytest.approx(1.0 / 0.09)


def test_ray_misses_box_it_passes_beside():
    solids = _solids((box_from_bounds(10, -1, 12, 1), 0.0, 2.0, CAR))
    t, solid, _ = cast_rays(build_scene(solids), np.array([0.0, 0.0, 1.0]), np.array([[1.0, 0.2, 0.0]]))
    assert solid[0] == -1 and np.isinf(t[0])


def test_grid_cast_matches_bruteforce(world):
    solids = world.solids_at(0.0)
    scene = build_scene(solids)
    rng = np.random.default_rng(0)
    origin = world.local_T_ego(0.0)[:3, 3] + np.array([0.0, 0.0, 1.6])
    dirs = rng.normal(size=(4000, 3))
    dirs[:, 2] = -np.abs(dirs[:, 2]) * 0.3 + 0.05  # mostly near the horizon, some up
    fast = cast_rays(scene, origin, dirs)
    slow = cast_rays_bruteforce(solids, origin, dirs)
    np.testing.assert_array_equal(fast[1], slow[1])
    hit = fast[1] >= 0
    np.testing.assert_allclose(fast[0][hit], slow[0][hit], rtol=1e-12)
    assert hit.mean() > 0.5


def test_unoccluded_count_counts_the_pixels_of_a_box():
    solids = _solids((box_from_bounds(10, -1, 12, 1), 0.0, 2.0, CAR), (box_from_bounds(5, -3, 6, 3), 0.0, 3.0, CAR))
    scene = build_scene(solids)
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    # Camera at (0, 0, 1) looking along +x (camera z = world x, camera x = -world y, camera y = -world z).
    world_T_cam = np.eye(4)
    world_T_cam[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    world_T_cam[:3, 3] = [0, 0, 1]
    counts = count_unoccluded(scene, world_T_cam, K, np.array([[0, 0, 99, 99]]), np.array([0]), np.array([1]))
    # The far box spans |y| <= 1 and z in [0, 2] at x = 10: u, v in 50 +- 10 -> 21 x 21 pixel centres.
    assert counts[0] == 21 * 21


# ------------------------------------------------------------------------------------------- voxelization
def test_box_voxelizes_to_exactly_the_voxels_it_intersects():
    # A box from x = 0.1 to 1.0 (ego frame), y in [-0.3, 0.3], z in [0, 1.3]: voxels i = 100..102 (0.0-1.2),
    # j = 99..100 (-0.4..0.4), k = 2..5 (-0.2..1.4); x = 1.0 lies inside voxel 102 ([0.8, 1.2)).
    sem = voxelize(_solids((box_from_bounds(0.1, -0.3, 1.0, 0.3), 0.0, 1.3, CAR)))
    occupied = np.argwhere(sem != FREE)
    assert {tuple(v) for v in occupied} == {(i, j, k) for i in (100, 101, 102) for j in (99, 100) for k in (2, 3, 4, 5)}
    assert (sem[sem != FREE] == CAR).all()


def test_touching_faces_do_not_occupy():
    # Faces exactly on voxel boundaries (x = 0.4, 0.8; z = -0.2, 0.2) touch but do not enter the neighbours.
    sem = voxelize(_solids((box_from_bounds(0.4, 0.4, 0.8, 0.8), -0.2, 0.2, CAR)))
    assert np.argwhere(sem != FREE).tolist() == [[101, 101, 2]]


def test_largest_overlap_wins_and_objects_win_ties():
    ground = (box_from_bounds(-5, -5, 5, 5), -0.2, 0.0, ROAD)
    # A car filling the whole voxel footprint above the road: car [0, 0.2] ties the road [-0.2, 0] in k = 2.
    car_full = (box_from_bounds(0.0, 0.0, 0.4, 0.4), 0.0, 1.0, CAR)
    # A car covering half a voxel's footprint: the road has more volume in k = 2.
    car_half = (box_from_bounds(2.0, 0.0, 2.2, 0.4), 0.0, 1.0, CAR)
    sem = voxelize(_solids(ground, car_full, car_half))
    assert sem[100, 100, 2] == CAR and sem[100, 100, 3] == CAR
    assert sem[105, 100, 2] == ROAD and sem[105, 100, 3] == CAR
    # The ground is one layer, k = 2, and the voxels below it are free.
    assert (sem[88:112, 88:112, 2] != FREE).all() and (sem[:, :, :2] == FREE).all()


def test_rotated_boxes_match_sub_voxel_sampling():
    """Exact overlaps against a 10x10x10 sampling of every voxel, for a few rotated boxes of two classes."""
    rng = np.random.default_rng(1)
    prisms = [(rectangle(rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0.5, 2.5), rng.uniform(0.3, 1.5),
                         rng.uniform(0, np.pi)), rng.uniform(-0.2, 0.5), rng.uniform(0.8, 2.0), cls)
              for cls in (CAR, MANMADE, CAR, MANMADE)]
    solids = _solids(*prisms)
    sem = voxelize(solids)
    planes = edge_planes(solids)
    n = 10
    offsets = (np.arange(n) + 0.5) / n * 0.4
    sampled_occupied = 0
    for i, j, k in np.argwhere(sem != FREE):
        lo = np.array([i, j, k]) * 0.4 + np.asarray(OCC3D_GRID.lower)
        pts = lo + np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
        votes = np.zeros(18)
        for s in range(len(solids)):
            inside = (pts[:, 2] > solids.zlo[s]) & (pts[:, 2] < solids.zhi[s])
            for e in range(solids.nverts[s]):
                inside &= pts[:, :2] @ planes[s, e, :2] <= planes[s, e, 2]
            votes[solids.cls[s]] += inside.sum()
        if votes.max() >= 50:  # clear majorities only: sampling cannot settle near-ties
            sampled_occupied += 1
            second = np.sort(votes)[-2]
            if votes.max() - second >= 50:
                assert sem[i, j, k] == np.argmax(votes)
    assert sampled_occupied > 50
    # Every voxel with a sample inside a solid is occupied.
    centers = OCC3D_GRID.centers(np.float64)
    for s in range(len(solids)):
        inside = (centers[..., 2] > solids.zlo[s]) & (centers[..., 2] < solids.zhi[s])
        for e in range(solids.nverts[s]):
            inside &= centers[..., :2] @ planes[s, e, :2] <= planes[s, e, 2]
        assert (sem[inside] != FREE).all()


def test_camera_and_lidar_masks_stop_at_the_first_occupied_voxel():
    sem = np.full(OCC3D_GRID.shape, FREE, dtype=np.uint8)
    sem[110, 100, 5] = CAR  # a voxel 4 m ahead at z in [1.0, 1.4)
    origin = np.array([0.01, 0.01, 1.21])
    cam = camera_mask(sem, [origin], [np.array([[1.0, 0.0, 0.0]])])
    assert cam[100:111, 100, 5].all() and cam[111:, 100, 5].sum() == 0
    lid = lidar_mask([origin], [np.array([[2.05, 0.01, 1.21]])])
    assert lid[100:106, 100, 5].all() and lid.sum() == 6


# --------------------------------------------------------------------------------------------- ground etc.
def test_ground_plan_is_an_exact_partition():
    plan = GroundPlan([0, 0, 100, 50], 14, 0.08, 0, (0, 0, 0))
    plan.paint(-10, 10, 110, 20, 13, 0.15, 0, (0, 0, 0))
    plan.paint(40, -5, 60, 60, 11, 0.0, 0, (0, 0, 0))
    plan.paint(45, 12, 55, 18, 12, 0.15, 0, (0, 0, 0))
    assert plan.total_area() == pytest.approx(100 * 50)
    r = plan.rects
    for a in range(len(r)):
        for b in range(a + 1, len(r)):
            overlap_x = min(r[a, 2], r[b, 2]) - max(r[a, 0], r[b, 0])
            overlap_y = min(r[a, 3], r[b, 3]) - max(r[a, 1], r[b, 1])
            assert overlap_x <= 1e-9 or overlap_y <= 1e-9
    assert plan.lookup(50, 15) == (12, 0.15) and plan.lookup(30, 15) == (13, 0.15) and plan.lookup(50, 30)[0] == 11


def test_convex_overlap_and_footprints():
    a = rectangle(0, 0, 2, 1)[None]
    assert convex_overlap(a, rectangle(1.5, 0, 2, 1)[None])[0]
    assert not convex_overlap(a, rectangle(2.0, 0, 2, 1)[None])[0]  # touching edges do not overlap
    assert not convex_overlap(a, rectangle(1.9, 1.9, 1, 1, np.pi / 4)[None])[0]
    index = FootprintIndex(np.array([0.0, 1.0]))
    assert index.try_add(rectangle(0, 0, 2, 1), 0.0, 2.0)
    assert not index.try_add(rectangle(0.5, 0, 2, 1), 1.0, 3.0)
    assert index.try_add(rectangle(0.5, 0, 2, 1), 2.5, 3.0)  # above it
    moving = np.stack([rectangle(-5, 0, 1, 1), rectangle(0, 0, 1, 1)])
    assert index.conflicts(moving, 0.0, 1.0)  # reaches the box at t = 1


def test_route_turns_and_loops():
    rb = RouteBuilder(0.0, 0.0, 0.0)
    rb.straight(10.0)
    rb.turn(5.0, 1)
    rb.straight(10.0)
    path = rb.path()
    end = path.pose(np.array([path.length]))[0]
    np.testing.assert_allclose(end, [15.0, 15.0, np.pi / 2], atol=1e-9)
    loop = polyline_loop(np.array([[0, 0], [4, 0], [4, 3], [0, 3]], dtype=float))
    assert loop.length == pytest.approx(14.0)
    np.testing.assert_allclose(Mover(loop, 0.0, 1.0).pose([14.0 + 5.0])[0, :2], [4.0, 1.0])


def test_agent_shapes_fit_their_boxes():
    rng = np.random.default_rng(0)
    for kind in KINDS:
        for rider in (False, True):
            (w, l, h), parts = agent_shape(kind, rng, rider)
            assert (np.abs(parts.verts[..., 0]) <= l / 2 + 1e-9).all(), kind
            assert (np.abs(parts.verts[..., 1]) <= w / 2 + 1e-9).all(), kind
            assert parts.zlo.min() >= 0 and parts.zhi.max() <= h + 1e-9 and parts.zhi.max() == pytest.approx(h)
            assert (parts.cls == KINDS[kind][1]).all()


def test_sensor_rig_is_the_real_one():
    front = SENSORS["CAM_FRONT"]
    assert front.ego_T_sensor[:3, 2] @ np.array([1.0, 0, 0]) > 0.99  # optical axis forward
    K = front.intrinsics(400, 225)
    assert K[0, 0] == pytest.approx(1266.417203046554 / 4)
    assert all(-50_000 < s.offset_us <= 0 for s in SENSORS.values())
    dirs = LidarPattern().directions()
    assert dirs.shape == (1084 * 32, 3)
    elevation = np.degrees(np.arcsin(dirs[:32, 2]))
    assert elevation[0] == pytest.approx(-30.67) and elevation[-1] == pytest.approx(10.67)


# ------------------------------------------------------------------------------------------------- world
def test_world_is_deterministic_and_seeds_differ():
    a = build_world(seed=5, scene_index=1, duration=2.0)
    b = build_world(seed=5, scene_index=1, duration=2.0)
    c = build_world(seed=6, scene_index=1, duration=2.0)
    np.testing.assert_array_equal(a.solids_at(1.0).verts, b.solids_at(1.0).verts)
    assert len(a.agents) == len(b.agents)
    assert len(c.solids_at(1.0)) != len(a.solids_at(1.0)) or not np.array_equal(c.scenery.verts, a.scenery.verts)


def test_world_has_every_class_near_the_route(world):
    near = [a for a in world.agents if np.linalg.norm(a.mover.pose(0.0)[0, :2] - world.ego.pose(0.0)[0, :2]) < 80]
    kinds = {a.kind for a in near}
    for kind in ("car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle", "pedestrian",
                 "barrier", "traffic_cone", "bin"):
        assert kind in kinds
    classes = set(np.unique(world.scenery.cls))
    assert {CLASS_IDS[n] for n in ("driveable_surface", "other_flat", "sidewalk", "terrain", "manmade",
                                   "vegetation")} <= classes
    moving = [a for a in world.agents if a.moving]
    assert {a.cls for a in moving} & set(DYNAMIC_CLASSES) and all(a.cls in DYNAMIC_CLASSES for a in moving)


def test_agents_never_intersect_anything(world):
    """No agent part overlaps another solid (scenery, ground, other agents) at any time, nor the ego's body."""
    for t in (0.0, 1.5, 3.0):
        solids = world.solids_at(t)
        first_agent = len(world.scenery)
        bounds = solids.bounds_xy()
        agent_idx = np.arange(first_agent, len(solids))
        a_b = bounds[agent_idx]
        near = ((a_b[:, None, 0] < bounds[None, :, 2]) & (a_b[:, None, 2] > bounds[None, :, 0])
                & (a_b[:, None, 1] < bounds[None, :, 3]) & (a_b[:, None, 3] > bounds[None, :, 1])
                & (solids.zlo[agent_idx, None] < solids.zhi[None, :] - 1e-9)
                & (solids.zhi[agent_idx, None] > solids.zlo[None, :] + 1e-9))
        owner = solids.owner
        ai, sj = np.nonzero(near)
        ai = agent_idx[ai]
        other = (owner[sj] != owner[ai]) | (sj < first_agent)
        ai, sj = ai[other], sj[other]
        overlap = convex_overlap(solids.verts[ai], solids.verts[sj])
        assert not overlap.any(), [(owner[a], s) for a, s in zip(ai[overlap], sj[overlap])][:5]
        ego = world.local_T_ego(t)
        body = invert_transform(ego)
        corners = solids.verts[first_agent:].reshape(-1, 2) @ body[:2, :2].T + body[:2, 3]
        inside = (corners[:, 0] > -1.0) & (corners[:, 0] < 3.9) & (np.abs(corners[:, 1]) < 1.0)
        assert not inside.any()


def test_scenery_stands_on_the_ground(world):
    # Every non-ground solid starts at or above the ground surface (<= 0.15 m) and no ground tile exceeds 0.2 m.
    ground = np.isin(world.scenery.cls, [CLASS_IDS[n] for n in ("driveable_surface", "other_flat", "sidewalk",
                                                                  "terrain")])
    assert (world.scenery.zlo[ground] == -0.2).all() and (world.scenery.zhi[ground] < 0.2).all()
    assert (world.scenery.zlo[~ground] >= 0.0).all()


def test_regular_polygon_is_counter_clockwise():
    poly = regular_polygon(0, 0, 1.0, 12)
    area = 0.5 * np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    assert area > 0
