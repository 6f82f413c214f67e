import numpy as np
import pytest
import torch

from easyocc.geometry import make_transform
from easyocc.losses.ray_queries import RayQueries, RayQueryConfig, RayQueryLoss, box_exit_distance, sample_ray_queries
from easyocc.models.volume import VolumeGrid
from easyocc.occ3d import FREE, IGNORE, OCC3D_GRID

WALL_X = 20.0
MANMADE = 15


def wall_camera(width=64, height=32):
    """One camera 1.5 m up looking along +x at a wall x = 20 m (manmade); the top 8 rows sky, 4 pixels unlabelled,
    4 without depth."""
    K = torch.tensor([[40.0, 0, (width - 1) / 2], [0, 40.0, (height - 1) / 2], [0, 0, 1]])
    ego_T_cam = torch.tensor(make_transform(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [0, 0, 1.5]))
    depth = torch.full((1, height, width), WALL_X)
    semantics = torch.full((1, height, width), MANMADE, dtype=torch.uint8)
    semantics[:, :8] = FREE
    depth[:, :8] = 0.0
    semantics[:, 20, :4] = IGNORE
    depth[:, 24, :4] = 0.0
    return depth, semantics, K[None], ego_T_cam[None].float()


def test_queries_sample_free_space_before_and_occupancy_behind_a_known_wall():
    depth, semantics, K, ego_T_cam = wall_camera()
    config = RayQueryConfig(rays_per_image=4000, free_per_ray=3, occupied_per_ray=2)
    q = sample_ray_queries(depth, semantics, K, ego_T_cam, config, torch.Generator().manual_seed(0))
    assert q.points.shape == (4000 * 5, 3) and q.targets.shape == q.weights.shape == (4000 * 5,)
    slots = q.targets.reshape(4000, 5)
    points = q.points.reshape(4000, 5, 3)
    free, occupied = slots[:, :3], slots[:, 3:]
    assert set(free.unique().tolist()) <= {FREE, IGNORE} and set(occupied.unique().tolist()) <= {MANMADE, IGNORE}
    wall_rays = (occupied == MANMADE).all(1)
    assert wall_rays.sum() > 1000  # the wall's pixels whose surface lies above the box's floor (z > -1 m)
    # Free space stops a margin before the wall (0.4 m + 5 % of the distance along the ray); occupancy lies within
    # 0.3 m behind it, with the pixel's class.
    offsets = points[wall_rays].double() - torch.tensor([0.0, 0, 1.5], dtype=torch.float64)
    t = offsets.norm(dim=-1)  # distance along the ray
    surface = WALL_X * t / offsets[..., 0]  # where the ray meets the wall
    assert (t[:, :3] <= 0.95 * surface[:, :3] - 0.4 + 1e-4).all() and (t[:, :3] >= 0.5 - 1e-4).all()
    assert (t[:, 3:] >= surface[:, 3:] - 1e-4).all() and (t[:, 3:] <= surface[:, 3:] + 0.3 + 1e-4).all()
    assert offsets[:, 3:, 0].min() >= WALL_X - 1e-4 and offsets[:, :3, 0].max() < WALL_X - 1.0
    # Sky rays are free all along, to the box's edge (the ceiling at 5.4 m); nothing leaves the box.
    sky_rays = (free == FREE).all(1) & (occupied == IGNORE).all(1) & (points[:, 0, 2] > 1.5)
    assert sky_rays.sum() > 500 and points[sky_rays, :3, 2].max() > 5.0 and points[sky_rays, :3, 0].max() > 15
    used = q.targets != IGNORE
    inside = ((q.points >= torch.tensor(OCC3D_GRID.lower)) & (q.points <= torch.tensor(OCC3D_GRID.upper))).all(1)
    assert inside[used].all()
    # Unlabelled pixels give free queries only, pixels without depth none; unused slots weigh 0.
    assert (q.weights[~used] == 0).all() and (q.weights[used] == 1).all()
    unlabelled = sample_ray_queries(depth[:, 20:21, :4], semantics[:, 20:21, :4], K, ego_T_cam, config)
    assert (unlabelled.targets.reshape(-1, 5)[:, :3] == FREE).all() and (unlabelled.targets.reshape(-1, 5)[:, 3:] == IGNORE).all()
    no_depth = sample_ray_queries(depth[:, 24:25, :4], semantics[:, 24:25, :4], K, ego_T_cam, config)
    assert (no_depth.targets == IGNORE).all()


def test_queries_are_reproducible_and_differ_between_draws():
    depth, semantics, K, ego_T_cam = wall_camera()
    config = RayQueryConfig(rays_per_image=64)
    a = sample_ray_queries(depth, semantics, K, ego_T_cam, config, torch.Generator().manual_seed(3))
    b = sample_ray_queries(depth, semantics, K, ego_T_cam, config, torch.Generator().manual_seed(3))
    c = sample_ray_queries(depth, semantics, K, ego_T_cam, config, torch.Generator().manual_seed(4))
    assert torch.equal(a.points, b.points) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.points, c.points)


def wall_volume(wall_x: float) -> torch.Tensor:
    """Occ3D-grid logits (1, 18, 200, 200, 16): free before x = wall_x, manmade from there on."""
    centres = torch.from_numpy(OCC3D_GRID.centers(np.float32))
    logits = torch.full((18, *OCC3D_GRID.shape), -5.0)
    wall = centres[..., 0] >= wall_x
    logits[FREE][~wall] = 5.0
    logits[MANMADE][wall] = 5.0
    return logits[None]


def test_loss_is_low_on_the_right_volume_and_has_gradients():
    depth, semantics, K, ego_T_cam = wall_camera()
    config = RayQueryConfig(rays_per_image=512)
    q = sample_ray_queries(depth, semantics, K, ego_T_cam, config, torch.Generator().manual_seed(1))
    batch = RayQueries.stack([q, q])
    criterion = RayQueryLoss(config)
    grid = VolumeGrid()
    right = criterion(wall_volume(WALL_X), grid, RayQueries.stack([q]))
    early = criterion(wall_volume(WALL_X - 4), grid, RayQueries.stack([q]))  # the wall 4 m too close
    assert right["loss"] < 0.2 and early["loss"] > 5 * right["loss"]
    assert early["ray_free"] > 10 * right["ray_free"] and right["ray_occupied"] < 0.5
    volume = torch.zeros(2, 18, *OCC3D_GRID.shape, requires_grad=True)
    out = criterion(volume, grid, batch)
    out["loss"].backward()
    assert out["loss"].item() == pytest.approx(np.log(18), rel=1e-5)
    touched = volume.grad.abs().sum(1) > 0
    assert 100 < touched[0].sum() < 20000 and torch.equal(touched[0], touched[1])
    # Only the voxels around the queries are touched: the last occupied queries lie 0.3 m behind the wall (x = 20.3)
    # and read voxels 150 and 151 (centres 20.2, 20.6 m); nothing beyond.
    assert touched[0, 151].any() and not touched[0, 152:].any()


def test_class_weights_and_empty_queries():
    depth, semantics, K, ego_T_cam = wall_camera()
    q = RayQueries.stack([sample_ray_queries(depth, semantics, K, ego_T_cam, RayQueryConfig(rays_per_image=256))])
    weights = np.ones(18, np.float32)
    weights[MANMADE] = 3.0
    plain = RayQueryLoss(RayQueryConfig())(wall_volume(WALL_X - 4), VolumeGrid(), q)
    weighted = RayQueryLoss(RayQueryConfig(class_weighting="labels"), weights)(wall_volume(WALL_X - 4), VolumeGrid(), q)
    assert weighted["ray_occupied"] == plain["ray_occupied"] and weighted["loss"] != plain["loss"]
    with pytest.raises(ValueError, match="class weights"):
        RayQueryLoss(RayQueryConfig(class_weighting="labels"))
    empty = RayQueries(q.points, torch.full_like(q.targets, IGNORE), torch.zeros_like(q.weights))
    volume = torch.zeros(1, 18, *OCC3D_GRID.shape, requires_grad=True)
    out = RayQueryLoss(RayQueryConfig())(volume, VolumeGrid(), empty)
    out["loss"].backward()
    assert out["loss"].item() == 0.0 and volume.grad is not None


def test_box_exit_distance():
    origins = torch.tensor([[0.0, 0, 1.5], [0.0, 0, 1.5], [50.0, 0, 0]], dtype=torch.float64)
    directions = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0]], dtype=torch.float64)
    assert box_exit_distance(origins, directions).tolist() == pytest.approx([40.0, 3.9, 0.0])


@pytest.mark.parametrize("bad", [dict(rays_per_image=0), dict(free_per_ray=0, occupied_per_ray=0), dict(behind=-1),
                                 dict(free_margin_relative=1.0), dict(weight=-1.0)])
def test_config_checks(bad):
    with pytest.raises(ValueError):
        RayQueryConfig(**bad)
