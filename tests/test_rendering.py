"""The rendering model's geometry: contracted grids against OccNeRF's formula, Occ3D-centre sampling, ray sampling
and weights, rendering of hand-made volumes (a wall at a known distance, empty space), chunking, the model class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from easyocc.config import config_from_dict
from easyocc.models.easyocc import EasyOccModel, ModelConfig
from easyocc.models.rendering import (
    RenderConfig,
    RaySchedule,
    RenderingOccModel,
    camera_rays,
    distortion,
    ray_weights,
    render_volume,
)
from easyocc.models.volume import VolumeGrid, occ3d_logits, sample_volume
from easyocc.occ3d import FREE, NUM_CLASSES, OCC3D_GRID, VoxelGrid
from model_fixtures import torch_single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: OccNeRF's paper grid: 300 x 300 x 24 cells, contracted_ratio 0.66667 around the Occ3D box.
OCCNERF_GRID = VolumeGrid.contracted(0.4, 0.66667)
#: Camera frame (x right, y down, z forward) -> ego (x forward, y left, z up) for a camera looking along +x.
FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def occnerf_world2contracted(xyz: np.ndarray, roi=(-40, -40, -1, 40, 40, 5.4), ratio=0.66667) -> np.ndarray:
    """OccNeRF's utils/vox.py world2contracted, written out from its definition in numpy (float64)."""
    lo, hi = np.array(roi[:3]), np.array(roi[3:])
    t = ratio / (1 - ratio)
    scaled = (2 * (xyz - lo) / (hi - lo) - 1) * t
    out = np.where(np.abs(scaled) <= t, scaled, np.sign(scaled) * (1 + t - 1 / (np.abs(scaled) + 1 - t)))
    return out / (t + 1)


def forward_camera(height: float = 1.5, focal: float = 20.0, size=(5, 7)):
    """Intrinsics (1, 1, 3, 3) for ``size`` and ego_T_cam (1, 1, 4, 4) of a camera at (0, 0, height) looking at +x."""
    rows, cols = size
    K = torch.tensor([[focal, 0.0, (cols - 1) / 2], [0.0, focal, (rows - 1) / 2], [0.0, 0.0, 1.0]])
    T = torch.eye(4)
    T[:3, :3] = torch.from_numpy(FORWARD).float()
    T[2, 3] = height
    return K[None, None], T[None, None]


def wall_volume(grid: VolumeGrid, wall_x: float, wall_class: int = 4) -> torch.Tensor:
    """(1, 18, *grid.shape): free (free logit +30) except cells whose centre lies beyond x = wall_x, which are
    occupied (free logit -30) with class ``wall_class`` (logit +10)."""
    volume = torch.zeros(1, NUM_CLASSES, *grid.shape)
    volume[:, FREE] = 30.0
    wall = grid.centers(torch.float64)[..., 0] > wall_x
    volume[0, FREE][wall] = -30.0
    volume[0, wall_class][wall] = 10.0
    return volume


def test_contracted_grid_is_occnerfs_contraction():
    grid = OCCNERF_GRID
    assert grid.shape == (300, 300, 24) and grid.outer == (50, 50, 4) and grid.inner_shape == (200, 200, 16)
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform([-40, -40, -1], [40, 40, 5.4], (500, 3)),  # inside the box
                             rng.normal(0, 300, (500, 3)),                           # far outside
                             rng.uniform(-45, 45, (500, 3))])                        # around its faces
    ours = grid.world_to_unit(torch.from_numpy(points)).numpy()
    # The grid's ratio is 200 / 300 exactly (OccNeRF's 0.66667 rounded it: a 5e-6 difference), so the inner cells
    # are exactly 0.4 m.
    np.testing.assert_allclose(ours, occnerf_world2contracted(points, ratio=2 / 3), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours, occnerf_world2contracted(points), rtol=0, atol=1e-5)
    # The inverse, and the unbounded range in (-1, 1).
    np.testing.assert_allclose(grid.unit_to_world(torch.from_numpy(ours)).numpy(), points, rtol=1e-9, atol=1e-9)
    assert np.abs(ours).max() < 1
    # The inner cells are the Occ3D voxels; the first outer cell along x is 20 m * (1 / (1 - 0.02) - 1) wide.
    centers = grid.centers(torch.float64).numpy()
    np.testing.assert_allclose(centers[50:250, 50:250, 4:20], OCC3D_GRID.centers(np.float64), atol=1e-9)
    edges = grid.unit_to_world(torch.tensor([[1 / 3 * 2, 0.0, 0.0], [2 / 3 + 2 / 300, 0.0, 0.0]], dtype=torch.float64))
    assert edges[0, 0].item() == pytest.approx(40.0, abs=1e-4)
    assert (edges[1, 0] - edges[0, 0]).item() == pytest.approx(20 * (1 / 0.98 - 1), rel=1e-4)


def test_plain_volume_grid_matches_occ3d_voxel_grid():
    coarse = VoxelGrid(OCC3D_GRID.lower, OCC3D_GRID.upper, 0.8)
    grid = VolumeGrid.box(coarse)
    assert grid.shape == coarse.shape == (100, 100, 8) and not grid.is_contracted
    assert np.array_equal(grid.centers().numpy(), coarse.centers())
    corners = torch.tensor([[-40.0, -40.0, -1.0], [40.0, 40.0, 5.4]], dtype=torch.float64)
    np.testing.assert_allclose(grid.world_to_unit(corners).numpy(), [[-1, -1, -1], [1, 1, 1]], atol=1e-12)
    assert VolumeGrid.contracted(0.8, 0.66667).shape == (150, 150, 12)


def test_occ3d_logits_are_exact_on_aligned_grids_and_trilinear_otherwise():
    torch.manual_seed(0)
    centers = torch.from_numpy(OCC3D_GRID.centers(np.float64).reshape(-1, 3))
    plain = torch.randn(1, 2, 200, 200, 16)
    assert torch.equal(occ3d_logits(plain, VolumeGrid()), plain)
    contracted = torch.randn(1, 2, *OCCNERF_GRID.shape)
    inner = occ3d_logits(contracted, OCCNERF_GRID)
    assert torch.equal(inner, contracted[:, :, 50:250, 50:250, 4:20])
    # The general trilinear path lands on the same cell centres: the grids' conventions agree.
    for volume, grid, expected in ((plain, VolumeGrid(), plain), (contracted, OCCNERF_GRID, inner)):
        sampled = sample_volume(volume, grid, centers).unflatten(-1, (200, 200, 16))
        assert (sampled - expected).abs().max().item() < 5e-4  # float32 unit coordinates; half a cell off: ~1
    # A coarse plain grid: the upsampling path equals trilinear sampling at the centres.
    coarse_grid = VolumeGrid(0.8)
    coarse = torch.randn(1, 2, *coarse_grid.shape)
    sampled = sample_volume(coarse, coarse_grid, centers).unflatten(-1, (200, 200, 16))
    assert (occ3d_logits(coarse, coarse_grid) - sampled).abs().max().item() < 1e-4
    # A coarse contracted grid goes through the sampling path, and an affine volume is reproduced exactly there.
    grid = VolumeGrid.contracted(0.8, 0.66667)
    unit = grid.unit_centers(torch.float32).permute(3, 0, 1, 2)[None]  # the unit coordinates as a volume
    recovered = occ3d_logits(unit, grid).flatten(2)[0].T
    np.testing.assert_allclose(recovered.numpy(), grid.world_to_unit(centers).numpy(), atol=1e-5)


def test_ray_schedule_samples_half_cells_then_grows_like_the_outer_cells():
    config = RenderConfig(size=(2, 2))
    schedule = RaySchedule.for_grid(OCCNERF_GRID, config, origin_radius=1.5)
    n = torch.arange(schedule.count, dtype=torch.float64)
    d = schedule.distance(n)
    steps = torch.diff(d)
    assert d[0].item() == pytest.approx(0.1) and torch.all(steps > 0)
    inside = d[1:] <= schedule.linear_end
    np.testing.assert_allclose(steps[inside].numpy(), 0.2, atol=1e-9)  # half a 0.4 m cell
    beyond = d[:-1] > schedule.linear_end + 1
    expected = 0.2 * (1 + (d[:-1][beyond] - schedule.linear_end) / 20.0) ** 2  # the x/y cells' growth, L = 20 m
    np.testing.assert_allclose(steps[beyond].numpy(), expected.numpy(), rtol=0.1)
    assert d[-1].item() < 200 <= schedule.distance(torch.tensor(schedule.background)).item() + 1e-6
    assert schedule.coordinate(d[200].item()) == pytest.approx(200, abs=1e-9)
    plain = RaySchedule.for_grid(VolumeGrid(), config, origin_radius=1.5)
    assert plain.count == int(np.ceil((np.linalg.norm([40, 40, 5.4]) + 1.5 - 0.1) / 0.2))


@pytest.mark.parametrize("weighting", ["prob", "alpha"])
def test_weights_are_nonnegative_and_sum_to_at_most_one(weighting):
    torch.manual_seed(1)
    logits = torch.randn(64, 50) * 4
    inside = torch.rand(64, 50) > 0.2
    weights, background = ray_weights(logits, inside, weighting)
    assert weights.min().item() >= 0 and background.min().item() >= 0
    assert weights.sum(dim=-1).max().item() <= 1 + 1e-6
    np.testing.assert_allclose((weights.sum(dim=-1) + background).numpy(), 1.0, atol=1e-5)
    assert torch.all(weights[~inside] == 0)
    if weighting == "prob":  # OccNeRF's definition, written out
        p = torch.sigmoid(-logits) * inside
        cumulative = torch.minimum(torch.cumsum(p, dim=-1), torch.ones(()))
        expected = cumulative - torch.cat([torch.zeros(64, 1), cumulative[:, :-1]], dim=-1)
    else:  # classic compositing with alpha = 1 - (1 - p)^0.5
        alpha = (1 - torch.sigmoid(logits) ** 0.5) * inside
        transmittance = torch.cumprod(torch.cat([torch.ones(64, 1), 1 - alpha[:, :-1]], dim=-1), dim=-1)
        expected = transmittance * alpha
    np.testing.assert_allclose(weights.numpy(), expected.numpy(), atol=1e-6)


def test_distortion_matches_its_quadratic_definition():
    torch.manual_seed(2)
    weights = torch.rand(5, 12) / 12
    positions = torch.sort(torch.rand(5, 12), dim=-1).values
    widths = torch.rand(5, 12) * 0.1
    pairs = (weights[:, :, None] * weights[:, None, :] * (positions[:, :, None] - positions[:, None, :]).abs()).sum((1, 2))
    expected = pairs + (weights**2 * widths).sum(-1) / 3
    np.testing.assert_allclose(distortion(weights, positions, widths).numpy(), expected.numpy(), rtol=1e-5)


def test_camera_rays_follow_the_pixel_centre_convention():
    K, T = forward_camera(size=(5, 7))
    origins, directions, cosines = camera_rays(K[0], T[0], (5, 7))
    assert origins[0].tolist() == [0.0, 0.0, 1.5]
    np.testing.assert_allclose(directions[0, 2, 3].numpy(), [1, 0, 0], atol=1e-7)  # the principal point (3, 2)
    # Pixel (6, 2) is 3 px right of the principal point: the ray turns right (-y) by atan(3 / 20).
    np.testing.assert_allclose(directions[0, 2, 6].numpy(), np.array([20, -3, 0]) / np.hypot(20, 3), atol=1e-6)
    assert cosines[0, 2, 6].item() == pytest.approx(20 / np.hypot(20, 3), abs=1e-6)


@pytest.mark.parametrize("weighting", ["prob", "alpha"])
@pytest.mark.parametrize("semantics", ["logits", "probabilities"])
def test_wall_renders_its_depth_and_class(weighting, semantics):
    grid = VolumeGrid()
    K, T = forward_camera(size=(5, 7))
    config = RenderConfig(size=(5, 7), weighting=weighting, semantics=semantics)
    rendered = render_volume(wall_volume(grid, 20.0), grid, K, T, config)
    # The wall's face is x = 20 (cells from 20.0 m on): every pixel's z-depth is 20, within half a 0.2 m sample.
    assert (rendered["depth"] - 20.0).abs().max().item() <= 0.1 + 1e-4
    distance_check = rendered["depth"] / camera_rays(K[0], T[0], (5, 7))[2][None]
    np.testing.assert_allclose(rendered["distance"].numpy(), distance_check.numpy(), rtol=1e-6)
    assert rendered["opacity"].min().item() > 0.999
    assert torch.all(rendered["semantics"].argmax(dim=2) == 4)
    assert rendered["semantics"].shape == (1, 1, NUM_CLASSES, 5, 7)


@pytest.mark.parametrize("weighting", ["prob", "alpha"])
def test_empty_space_renders_the_far_value(weighting):
    grid = VolumeGrid(0.8, (10, 10, 2))
    K, T = forward_camera(size=(5, 7))
    volume = torch.zeros(1, NUM_CLASSES, *grid.shape)
    volume[:, FREE] = 30.0
    config = RenderConfig(size=(5, 7), weighting=weighting, semantics="probabilities", far=150.0)
    rendered = render_volume(volume, grid, K, T, config)
    np.testing.assert_allclose(rendered["distance"].numpy(), 150.0, rtol=1e-6)
    cosines = camera_rays(K[0], T[0], (5, 7))[2]
    np.testing.assert_allclose(rendered["depth"][0].numpy(), (150.0 * cosines).numpy(), rtol=1e-6)
    assert rendered["opacity"].max().item() < 1e-6 and rendered["distortion"].max().item() < 1e-6
    assert torch.all(rendered["semantics"].argmax(dim=2) == FREE)  # the background counts as free


def test_contracted_volume_renders_a_wall_beyond_the_box():
    grid = OCCNERF_GRID
    K, T = forward_camera(size=(3, 3))
    rendered = render_volume(wall_volume(grid, 70.0, wall_class=15), grid, K, T, RenderConfig(size=(3, 3)))
    centre = rendered["distance"][0, 0, 1, 1].item()
    # Outer cells near x = 70 m are 0.4 * (1 + 30 / 20)^2 = 2.5 m wide: the wall lands within one of them.
    assert abs(centre - 70.0) < 2.5
    assert rendered["semantics"][0, 0, :, 1, 1].argmax().item() == 15
    # The same volume on a plain grid cannot see it: the ray leaves the box and renders the far value.
    plain = VolumeGrid()
    far = render_volume(wall_volume(plain, 70.0), plain, K, T, RenderConfig(size=(3, 3)))["distance"]
    assert far[0, 0, 1, 1].item() == pytest.approx(200.0, rel=1e-6)


def test_chunks_and_checkpointing_give_the_same_values_and_gradients():
    torch.manual_seed(3)
    grid = VolumeGrid(1.6, (5, 5, 1))
    K, T = forward_camera(size=(6, 8), focal=6.0)
    base = (torch.randn(1, NUM_CLASSES, *grid.shape) * 3).requires_grad_()
    results = []
    for chunk, use_checkpoint in ((1000, False), (7, True)):
        config = RenderConfig(size=(6, 8), chunk_rays=chunk, checkpoint=use_checkpoint)
        rendered = render_volume(base, grid, K, T, config)
        total = sum(rendered[key].sum() * scale for key, scale in
                    (("depth", 0.01), ("semantics", 0.1), ("opacity", 1.0), ("distortion", 1.0)))
        gradient, = torch.autograd.grad(total, base)
        results.append((rendered, gradient))
    (first, grad_first), (second, grad_second) = results
    for key in first:
        torch.testing.assert_close(first[key], second[key], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_first, grad_second, atol=1e-5, rtol=1e-4)
    assert grad_first.abs().sum().item() > 0


def _semantic_gradients(mode: str, semantics: str, channel_weights: torch.Tensor):
    """The rendered semantics of a random volume under ``semantics_gradient=mode``, and the gradient w.r.t. the
    volume (18, X, Y, Z) of the loss sum_c channel_weights[c] * semantics[c]."""
    torch.manual_seed(5)
    grid = VolumeGrid(1.6, (5, 5, 1))
    K, T = forward_camera(size=(6, 8), focal=6.0)
    volume = torch.randn(1, NUM_CLASSES, *grid.shape) * 2
    volume[:, FREE] += 5.0  # cells ~1 % occupied: rays cross several semantic groups before they stop
    volume.requires_grad_()
    config = RenderConfig(size=(6, 8), semantics=semantics, semantics_gradient=mode, checkpoint=False)
    rendered = render_volume(volume, grid, K, T, config)["semantics"]
    loss = (rendered * channel_weights[:, None, None]).sum()
    gradient, = torch.autograd.grad(loss, volume)
    return rendered.detach(), gradient[0]


@pytest.mark.parametrize("semantics", ["logits", "probabilities"])
def test_semantics_gradient_decides_what_the_semantic_maps_train(semantics):
    weights = torch.linspace(-1.0, 1.0, NUM_CLASSES)
    results = {mode: _semantic_gradients(mode, semantics, weights) for mode in ("all", "logits", "classes")}
    # The rendered values do not depend on the mode.
    for mode in ("logits", "classes"):
        torch.testing.assert_close(results[mode][0], results["all"][0], rtol=0, atol=0)
    for mode, (_, gradient) in results.items():
        assert gradient[:FREE].abs().sum().item() > 1e-3, mode  # the classes always train
    free = {mode: gradient[FREE].abs().sum().item() for mode, (_, gradient) in results.items()}
    assert free["all"] > 1e-3 and free["logits"] > 1e-3
    assert free["classes"] == 0.0  # neither the ray weights nor the free channel: the occupancy is left alone
    if semantics == "logits":  # channels do not mix: the class channels' gradient is the same in every mode
        for mode in ("logits", "classes"):
            torch.testing.assert_close(results[mode][1][:FREE], results["all"][1][:FREE])


def test_semantics_gradient_logits_leaves_the_ray_weights_alone():
    # A loss on the rendered class channels only: with raw logits, the free channel reaches it through the ray
    # weights alone, which ``logits`` (and ``classes``) detach.
    weights = torch.linspace(0.5, 1.5, NUM_CLASSES)
    weights[FREE] = 0.0
    free = {mode: _semantic_gradients(mode, "logits", weights)[1][FREE].abs().sum().item()
            for mode in ("all", "logits", "classes")}
    assert free["all"] > 1e-3 and free["logits"] == 0.0 and free["classes"] == 0.0
    # A loss on the rendered free channel only: ``logits`` trains the samples' free logits, ``classes`` does not.
    only_free = torch.zeros(NUM_CLASSES)
    only_free[FREE] = 1.0
    free = {mode: _semantic_gradients(mode, "logits", only_free)[1][FREE].abs().sum().item()
            for mode in ("all", "logits", "classes")}
    assert free["all"] > 1e-3 and free["logits"] > 1e-3 and free["classes"] == 0.0


def test_training_jitters_the_samples_by_a_fraction_of_a_step():
    grid = VolumeGrid()
    K, T = forward_camera(size=(5, 7))
    volume = wall_volume(grid, 20.0)
    torch.manual_seed(4)
    still = render_volume(volume, grid, K, T, RenderConfig(size=(5, 7)), training=False)["depth"]
    moved = render_volume(volume, grid, K, T, RenderConfig(size=(5, 7)), training=True)["depth"]
    difference = (moved - still).abs()
    assert difference.max().item() > 1e-3
    assert (moved - 20.0).abs().max().item() <= 0.1 + 0.2 * 0.1 + 1e-4  # half a sample plus the jitter


TINY = {"backbone": "resnet18", "neck_channels": 16, "feature_channels": 8, "lift_downsample": 4,
        "volume_channels": 4, "volume_blocks": [1, 1]}


def test_rendering_model_shares_easyocc_weights_and_outputs():
    torch.manual_seed(5)
    config = config_from_dict(ModelConfig, TINY)
    easyocc = EasyOccModel(config).eval()
    model = RenderingOccModel(config, RenderConfig(size=(6, 10))).eval()
    assert list(model.state_dict()) == list(easyocc.state_dict())
    model.load_state_dict(easyocc.state_dict())
    images = torch.randint(0, 256, (1, 2, 3, 32, 48), dtype=torch.uint8)
    K, T = forward_camera(focal=40.0, size=(32, 48))
    K, T = K.expand(1, 2, 3, 3), T.expand(1, 2, 4, 4)
    render_K = K.clone()
    render_K[..., :2, :] *= 10 / 48
    with torch.no_grad():
        outputs = model(images, K, T, render_intrinsics=render_K)
        expected = easyocc(images, K, T)
    assert torch.equal(outputs["logits"], expected)
    assert outputs["volume"].shape == (1, NUM_CLASSES, 50, 50, 4)
    assert outputs["depth"].shape == (1, 2, 6, 10) and outputs["semantics"].shape == (1, 2, NUM_CLASSES, 6, 10)
    contracted = RenderingOccModel(config_from_dict(ModelConfig, {**TINY, "contraction": 0.66667}))
    assert contracted.lifter.grid.shape == (74, 74, 6) and contracted.lifter.grid.inner_shape == (50, 50, 4)
