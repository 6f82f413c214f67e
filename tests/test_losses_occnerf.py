"""The OccNeRF / GaussianOcc drop-in: their contraction, their evaluation's sampling, the loss, the label helpers.

Independent references: the contraction written per axis in plain numpy, trilinear interpolation written as three
1-D linear interpolations (the query points form a tensor-product grid, since the contraction acts per axis), and
easyocc's own ``VolumeGrid`` for the relation between the two volume layouts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import easyocc
from easyocc.errors import InputError
from easyocc.losses import LossConfig, PseudoLoss, class_counts, class_weights_from_counts
from easyocc.losses.occnerf import (
    GAUSSIANOCC_NUSC_SEM,
    MASK_KEY,
    OCCNERF_NUSC_SEM,
    SEMANTICS_KEY,
    OccNeRFGrid,
    OccNeRFPseudoLoss,
    load_pseudo_labels,
    pseudo_class_weights,
    sample_occ3d_logits,
)
from easyocc.models.volume import VolumeGrid, occ3d_logits
from easyocc.occ3d import GRID_SHAPE, IGNORE, NUM_CLASSES, label_path, write_labels

OCC3D_REAL_SIZE = (-40, 40, -40, 40, -1, 5.4)
#: Their VolumeDecoder.voxel_size for configs/nusc-sem.txt, printed by their own code (Runer: "Voxel size: ...").
OCCNERF_NUSC_SEM_VOXEL_SIZE = 0.399998125017578


def unit_reference(x: float, lower: float, upper: float, ratio: float | None) -> float:
    """One coordinate in OccNeRF's unit coordinates, written per axis: d in [-1, 1] across the box; inside the
    box u = ratio * d; beyond it u = sign(d) (1 - (1 - ratio) / (1 + t (|d| - 1))), t = ratio / (1 - ratio)."""
    d = (x - (lower + upper) / 2) / ((upper - lower) / 2)
    if ratio is None:
        return d
    if abs(d) <= 1:
        return ratio * d
    t = ratio / (1 - ratio)
    return float(np.sign(d)) * (1 - (1 - ratio) / (1 + t * (abs(d) - 1)))


def interpolate_axis(volume: np.ndarray, axis: int, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``volume`` along ``axis`` at fractional cell indices (zero outside the cells)."""
    n = volume.shape[axis]
    low = np.floor(positions).astype(int)
    frac = positions - low
    padded = np.concatenate([np.zeros_like(np.take(volume, [0], axis)), volume,
                             np.zeros_like(np.take(volume, [0], axis))], axis=axis)
    below = np.take(padded, np.clip(low, -1, n) + 1, axis=axis)
    above = np.take(padded, np.clip(low + 1, -1, n) + 1, axis=axis)
    shape = [1] * volume.ndim
    shape[axis] = -1
    return below * (1 - frac).reshape(shape) + above * frac.reshape(shape)


def their_cell_positions(grid: OccNeRFGrid) -> list[np.ndarray]:
    """Per axis (x, y, z): the fractional cell index their evaluation reads for each Occ3D voxel index:
    point lower + i 0.4 + voxel_size / 2, unit u, cell (u + 1) / 2 (N - 1) with align_corners=True."""
    ratio = grid.contracted_ratio if grid.contracted_coord else None
    positions = []
    for n_occ, occ_lower, lo, hi, n in zip(GRID_SHAPE, (-40, -40, -1), grid.lower, grid.upper, grid.shape):
        u = np.array([unit_reference(occ_lower + i * 0.4 + grid.voxel_size / 2, lo, hi, ratio) for i in range(n_occ)])
        positions.append((u + 1) / 2 * (n - 1) if grid.align_corners else ((u + 1) * n - 1) / 2)
    return positions


def trilinear_reference(volume: np.ndarray, grid: OccNeRFGrid) -> np.ndarray:
    """volume (C, X, Y, Z) -> (C, 200, 200, 16), three 1-D interpolations."""
    for axis, positions in enumerate(their_cell_positions(grid)):
        volume = interpolate_axis(volume, axis + 1, positions)
    return volume


def random_labels(seed: int, batch: int = 1, visible: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """semantics (B, 200, 200, 16) uint8 with some 255, mask_camera (B, 200, 200, 16) uint8, ~``visible`` set."""
    rng = np.random.default_rng(seed)
    semantics = rng.integers(0, NUM_CLASSES, size=(batch, *GRID_SHAPE)).astype(np.uint8)
    semantics[rng.random(semantics.shape) < 0.1] = IGNORE
    mask = (rng.random(semantics.shape) < visible).astype(np.uint8)
    return torch.from_numpy(semantics), torch.from_numpy(mask)


def test_importing_the_drop_in_leaves_the_training_stack_out():
    src = str(Path(easyocc.__file__).resolve().parents[1])
    code = ("import sys, easyocc.losses.occnerf\n"
            "for name, module in sys.modules.items():\n"
            "    if name.startswith('easyocc'): print(name, module.__file__)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    loaded = dict(line.split() for line in subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                                          text=True, check=True).stdout.splitlines())
    assert "easyocc.losses.occnerf" in loaded and "easyocc.losses.pseudo" in loaded
    forbidden = ("easyocc.training", "easyocc.models", "easyocc.data", "easyocc.labels", "easyocc.evaluation")
    assert [m for m in loaded if m.startswith(forbidden)] == []
    # OccNeRF and GaussianOcc pin Python 3.8: everything the drop-in loads must at least parse there.
    for path in loaded.values():
        ast.parse(Path(path).read_text(), filename=path, feature_version=(3, 8))


@pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.autocast:FutureWarning")
def test_without_torch_autocast_the_cuda_autocast_switch_is_used(monkeypatch):
    # torch 1.9 (their environment) has no torch.autocast; the loss then turns off CUDA's autocast only.
    grid = OccNeRFGrid((8, 48, 48), OCC3D_REAL_SIZE, True, 0.66667)
    volume = torch.randn(1, NUM_CLASSES, *grid.shape, generator=torch.Generator().manual_seed(15))
    semantics, mask = random_labels(16)
    loss_fn = OccNeRFPseudoLoss(grid, LossConfig(class_weighting="none"))
    expected = loss_fn(volume, semantics, mask)["loss"].item()
    monkeypatch.delattr(torch, "autocast")
    assert loss_fn(volume, semantics, mask)["loss"].item() == expected


def test_grid_from_their_options_and_shipped_configs():
    # configs/nusc-sem.txt of OccNeRF (and of GaussianOcc, whose nusc-sem-gs.txt sets the same four options).
    opt = SimpleNamespace(voxels_size=[24, 300, 300], real_size=[-40, 40, -40, 40, -1, 5.4], contracted_coord=True,
                          contracted_ratio=0.66667, batch_size=6)
    grid = OccNeRFGrid.from_options(opt)
    assert grid == OCCNERF_NUSC_SEM == GAUSSIANOCC_NUSC_SEM
    assert grid.shape == (300, 300, 24)
    assert grid.lower == (-40, -40, -1) and grid.upper == (40, 40, 5.4)
    assert grid.voxel_size == pytest.approx(OCCNERF_NUSC_SEM_VOXEL_SIZE, abs=1e-15)
    assert OccNeRFGrid((16, 200, 200), OCC3D_REAL_SIZE, False).voxel_size == pytest.approx(0.4, abs=1e-15)
    with pytest.raises(ValueError, match="voxels_size"):
        OccNeRFGrid((300, 300), OCC3D_REAL_SIZE, True, 0.66667)
    with pytest.raises(ValueError, match="real_size"):
        OccNeRFGrid((24, 300, 300), (-40, -40, -1, 40, 40, 5.4), True, 0.66667)  # x, y, z min first: wrong order
    with pytest.raises(ValueError, match="contracted_ratio"):
        OccNeRFGrid((24, 300, 300), OCC3D_REAL_SIZE, True, 1.0)


@pytest.mark.parametrize("grid", [OCCNERF_NUSC_SEM, OccNeRFGrid((16, 200, 200), OCC3D_REAL_SIZE, False),
                                  OccNeRFGrid((8, 64, 96), (-30, 50, -20, 20, -2, 4), True, 0.5)])
def test_world_to_unit_against_the_formula(grid):
    rng = np.random.default_rng(0)
    # Inside the box, just outside it, and kilometres away.
    points = np.concatenate([rng.uniform(-45, 45, (300, 3)), rng.normal(0, 2000, (100, 3)),
                             [[40.0, -40.0, 5.4], [-40.0, 40.0, -1.0], [0.0, 0.0, 2.2]]])
    unit = grid.world_to_unit(torch.from_numpy(points)).numpy()
    ratio = grid.contracted_ratio if grid.contracted_coord else None
    expected = np.array([[unit_reference(p[a], grid.lower[a], grid.upper[a], ratio) for a in range(3)]
                         for p in points])
    np.testing.assert_allclose(unit, expected, rtol=0, atol=1e-12)
    if grid.contracted_coord:
        assert np.all(np.abs(unit) < 1)
        # The box faces sit at +-ratio.
        faces = grid.world_to_unit(torch.tensor([grid.lower, grid.upper], dtype=torch.float64)).numpy()
        np.testing.assert_allclose(faces, [[-grid.contracted_ratio] * 3, [grid.contracted_ratio] * 3], atol=1e-12)


def test_occ3d_points_are_their_evaluation_points():
    # Their eval: xyz / occ_size * (xyz_max - xyz_min) + xyz_min + 0.5 * voxel_size with the Occ3D range.
    points = OCCNERF_NUSC_SEM.occ3d_points().numpy()
    assert points.shape == (*GRID_SHAPE, 3)
    i, j, k = 17, 150, 9
    expected = np.array([i, j, k]) / np.array(GRID_SHAPE) * np.array([80, 80, 6.4]) + np.array([-40, -40, -1])
    np.testing.assert_allclose(points[i, j, k], expected + 0.5 * OCCNERF_NUSC_SEM_VOXEL_SIZE, atol=1e-12)
    plain = OccNeRFGrid((16, 200, 200), OCC3D_REAL_SIZE, False).occ3d_points().numpy()
    np.testing.assert_allclose(plain[0, 0, 0], [-39.8, -39.8, -0.8], atol=1e-12)
    np.testing.assert_allclose(plain[199, 199, 15], [39.8, 39.8, 5.2], atol=1e-12)


def test_identity_when_the_cells_are_the_occ3d_voxels():
    # No contraction, 200 x 200 x 16 cells over the Occ3D box, read at cell centres (align_corners=False, the layout
    # their uncontracted lifting builds): every Occ3D voxel reads exactly its own cell.
    grid = OccNeRFGrid((16, 200, 200), OCC3D_REAL_SIZE, False, align_corners=False)
    volume = torch.randn(1, 19, *GRID_SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sampled = sample_occ3d_logits(volume, grid)
    assert sampled.shape == (1, NUM_CLASSES, *GRID_SHAPE) and sampled.dtype == torch.float64
    assert (sampled - volume[:, :NUM_CLASSES]).abs().max().item() < 1e-9
    # float32: equal up to the rounding of the sampling coordinates (~2e-5 of a cell).
    assert (sample_occ3d_logits(volume.float(), grid) - volume[:, :NUM_CLASSES]).abs().max().item() < 5e-4


def test_their_align_corners_reading_of_the_occ3d_sized_grid_is_not_the_identity():
    # Their evaluation (align_corners=True) reads Occ3D voxel i of a 200-cell axis at cell (i + 0.5) * 199 / 200:
    # a quarter cell off at both ends, the trilinear mix the reference computes.
    grid = OccNeRFGrid((16, 200, 200), OCC3D_REAL_SIZE, False)
    positions = their_cell_positions(grid)
    np.testing.assert_allclose(positions[0], (np.arange(200) + 0.5) * 199 / 200, atol=1e-9)
    volume = torch.randn(1, NUM_CLASSES, *GRID_SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    sampled = sample_occ3d_logits(volume, grid)[0, :3].numpy()  # channels are read alike: three suffice
    np.testing.assert_allclose(sampled, trilinear_reference(volume[0, :3].numpy(), grid), rtol=0, atol=1e-9)
    assert np.abs(sampled - volume[0, :3].numpy()).max() > 0.1


@pytest.mark.parametrize("grid", [OccNeRFGrid((6, 40, 30), (-40, 40, -40, 40, -1, 5.4), True, 0.66667),
                                  OccNeRFGrid((8, 64, 96), (-30, 50, -20, 20, -2, 4), True, 0.5),
                                  OccNeRFGrid((10, 50, 50), (-20, 20, -20, 20, -1, 3), False)])
def test_sampling_is_their_evaluation_trilinear_reading(grid):
    # Small grids, random volumes: the samples are the trilinear interpolation at their cell positions (zero
    # padding where the Occ3D box reaches beyond an uncontracted grid).
    volume = torch.randn(1, NUM_CLASSES, *grid.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    sampled = sample_occ3d_logits(volume, grid)[0, :3].numpy()
    np.testing.assert_allclose(sampled, trilinear_reference(volume[0, :3].numpy(), grid), rtol=0, atol=1e-9)
    if not grid.contracted_coord:
        assert sampled[:, 0, 0, 0].tolist() == [0.0] * 3  # (-39.8, -39.8, -0.8) is outside the grid


def cell_index_ramp(shape: tuple[int, int, int]) -> torch.Tensor:
    """(1, 18, X, Y, Z) float64: channels 0, 1, 2 hold the x, y, z cell index; trilinear reads return positions."""
    volume = torch.zeros(1, NUM_CLASSES, *shape, dtype=torch.float64)
    for axis in range(3):
        view = [1, 1, 1]
        view[axis] = -1
        volume[0, axis] = torch.arange(shape[axis], dtype=torch.float64).reshape(view).expand(shape)
    return volume


def test_the_contraction_agrees_with_volume_grid_and_the_layouts_differ_by_half_u():
    """easyocc's ``VolumeGrid.contracted`` uses OccNeRF's contraction (same unit coordinates) but keeps cells whole
    (align_corners=False: cell n of N spans u in [-1 + 2n/N, -1 + 2(n+1)/N]), while OccNeRF puts cell n's centre at
    u = -1 + 2n/(N-1) (align_corners=True, in its lifting ``Mem2Ref`` and in its sampling alike). At the same point
    the fractional cell indices are (u+1)/2 N - 1/2 and (u+1)/2 (N-1): they differ by u/2 cells, 0 at the ego,
    about 1/3 cell at the Occ3D box faces (|u| ~ 2/3), 1/2 at infinity."""
    exact = OccNeRFGrid((24, 300, 300), OCC3D_REAL_SIZE, True, 2 / 3)
    volume_grid = VolumeGrid.contracted(0.4, 2 / 3)
    assert volume_grid.shape == exact.shape == OCCNERF_NUSC_SEM.shape
    points = torch.from_numpy(np.random.default_rng(4).normal(0, 100, (2000, 3)))
    torch.testing.assert_close(exact.world_to_unit(points), volume_grid.world_to_unit(points), rtol=0, atol=1e-12)
    # OccNeRF's shipped ratio 0.66667 rather than 2/3 moves unit coordinates by at most 3.5e-6.
    shipped = (OCCNERF_NUSC_SEM.world_to_unit(points) - volume_grid.world_to_unit(points)).abs().max().item()
    assert 0 < shipped < 4e-6

    ramp = cell_index_ramp(exact.shape)
    theirs = sample_occ3d_logits(ramp, exact)[0, :3].movedim(0, -1)  # (200, 200, 16, 3) cell positions read
    ours = occ3d_logits(ramp, volume_grid)[0, :3].movedim(0, -1)  # easyocc reads its inner block: i + 50, k + 4
    index = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in GRID_SHAPE], indexing="ij"), -1)
    torch.testing.assert_close(ours, index + torch.tensor([50.0, 50.0, 4.0], dtype=torch.float64), rtol=0, atol=0)
    unit = exact.occ3d_unit()
    torch.testing.assert_close(ours - theirs, unit / 2, rtol=0, atol=1e-6)
    # The first Occ3D voxel: OccNeRF reads x cell 50.332 (easyocc 50), z cell 4.3125 (easyocc 4).
    assert theirs[0, 0, 0].tolist() == pytest.approx([50.3317, 50.3317, 4.3125], abs=1e-4)
    assert (ours - theirs).abs().amax(dim=(0, 1, 2)).tolist() == pytest.approx([0.3317, 0.3317, 0.3125], abs=1e-4)
    # The shipped 0.66667 reads within 5e-4 of a cell of the exact 2/3.
    shipped_read = sample_occ3d_logits(ramp, OCCNERF_NUSC_SEM)[0, :3].movedim(0, -1)
    assert (shipped_read - theirs).abs().max().item() < 5e-4


def test_gradients_reach_the_cells_read():
    grid = OccNeRFGrid((8, 60, 60), OCC3D_REAL_SIZE, True, 0.66667)
    volume = torch.randn(1, NUM_CLASSES, *grid.shape, generator=torch.Generator().manual_seed(5), requires_grad=True)
    semantics, mask = random_labels(6, visible=0.2)
    loss = OccNeRFPseudoLoss(grid, LossConfig(class_weighting="none"))(volume, semantics, mask)["loss"]
    loss.backward()
    grad = volume.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # The cells around the box are read (x and y cells 10.2 to 49.4 of 60, z 1.8 to 6.1 of 8: this coarse grid's
    # voxel_size is 1.69 m, and their evaluation offsets the points by half of it); the space beyond is not.
    touched = grad.abs().sum(dim=(0, 1)) > 0
    assert touched[20:40, 20:40, 2:6].all()
    assert not touched[:10].any() and not touched[51:].any() and not touched[:, :10].any()
    assert not touched[:, :, 0].any()


@pytest.mark.parametrize("config", [LossConfig(), LossConfig(region="all", lovasz_voxels="occupied", ce_weight=0.5,
                                                               lovasz_weight=2.0, lovasz_classes="all")])
def test_loss_equals_pseudo_loss_on_the_sampled_logits(config):
    grid = OccNeRFGrid((8, 48, 48), OCC3D_REAL_SIZE, True, 0.66667)
    batch = 2 if config.region == "camera" else 1
    volume = torch.randn(batch, NUM_CLASSES, *grid.shape, generator=torch.Generator().manual_seed(7))
    semantics, mask = random_labels(8, batch=batch)
    if config.region == "all":
        semantics[torch.rand(semantics.shape, generator=torch.Generator().manual_seed(9)) < 0.95] = IGNORE
    weights = class_weights_from_counts(np.arange(1, NUM_CLASSES + 1) * 1000)
    got = OccNeRFPseudoLoss(grid, config, weights)(volume, semantics, mask)
    expected = PseudoLoss(config, weights)(sample_occ3d_logits(volume, grid), semantics, mask)
    assert set(got) == {"loss", "ce", "lovasz"}
    for key in got:
        assert got[key].dtype == torch.float32
        assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-6)
    assert got["loss"].item() > 0.5  # random logits are far from the labels


def test_half_precision_volume_gives_the_float32_loss():
    grid = OccNeRFGrid((8, 48, 48), OCC3D_REAL_SIZE, True, 0.66667)
    volume = (4 * torch.randn(1, NUM_CLASSES, *grid.shape, generator=torch.Generator().manual_seed(10))).half()
    volume.requires_grad_(True)
    semantics, mask = random_labels(11)
    loss_fn = OccNeRFPseudoLoss(grid, LossConfig(), class_weights_from_counts(np.full(NUM_CLASSES, 5)))
    half = loss_fn(volume, semantics, mask)
    full = loss_fn(volume.detach().float(), semantics, mask)
    assert half["loss"].dtype == torch.float32 and torch.isfinite(half["loss"])
    assert half["loss"].item() == full["loss"].item()  # read in float32 from the same half values
    with torch.autocast("cpu", dtype=torch.bfloat16):  # an autocast region around the call changes nothing
        assert loss_fn(volume, semantics, mask)["loss"].item() == full["loss"].item()
    half["loss"].backward()
    assert volume.grad.dtype == torch.float16 and torch.isfinite(volume.grad).all() and volume.grad.abs().sum() > 0


def test_bad_shapes_are_refused():
    grid = OccNeRFGrid((8, 48, 48), OCC3D_REAL_SIZE, True, 0.66667)
    loss_fn = OccNeRFPseudoLoss(grid, LossConfig(class_weighting="none"))
    semantics, mask = random_labels(12)
    with pytest.raises(ValueError, match=r"\(B, C, 48, 48, 8\)"):
        loss_fn(torch.zeros(1, NUM_CLASSES, 8, 48, 48), semantics, mask)  # their (Z, Y, X) order by mistake
    with pytest.raises(ValueError, match=">= 18"):
        sample_occ3d_logits(torch.zeros(1, 17, 48, 48, 8), grid)
    with pytest.raises(ValueError, match="semantics"):
        loss_fn(torch.zeros(1, NUM_CLASSES, 48, 48, 8), semantics[0], mask)


def write_keyframe_labels(root: Path, scene: str, token: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    semantics, mask = random_labels(seed, visible=0.05)
    semantics, mask = semantics[0].numpy(), mask[0].numpy()
    write_labels(label_path(root, scene, token), semantics, np.ones_like(mask), mask)
    return semantics, mask


def test_load_pseudo_labels_for_their_get_info(tmp_path):
    semantics, mask = write_keyframe_labels(tmp_path, "scene-0001", "tok-a", 13)
    write_keyframe_labels(tmp_path, "scene-0001", "tok-b", 14)
    item = load_pseudo_labels(tmp_path, "scene-0001", "tok-a")
    assert set(item) == {SEMANTICS_KEY, MASK_KEY} and "color" not in SEMANTICS_KEY + MASK_KEY
    assert item[SEMANTICS_KEY].shape == (1, *GRID_SHAPE) and item[SEMANTICS_KEY].dtype == torch.uint8
    np.testing.assert_array_equal(item[SEMANTICS_KEY][0].numpy(), semantics)
    np.testing.assert_array_equal(item[MASK_KEY][0].numpy(), mask)
    # Their my_collate concatenates every key on axis 0: the batch the loss takes.
    other = load_pseudo_labels(tmp_path, "scene-0001", "tok-b")
    batch = {key: torch.cat([item[key], other[key]], dim=0) for key in item}
    assert batch[SEMANTICS_KEY].shape == (2, *GRID_SHAPE)
    grid = OccNeRFGrid((8, 48, 48), OCC3D_REAL_SIZE, True, 0.66667)
    loss = OccNeRFPseudoLoss(grid, LossConfig(class_weighting="none"))(
        torch.zeros(2, NUM_CLASSES, *grid.shape), batch[SEMANTICS_KEY], batch[MASK_KEY])["loss"]
    # All-zero logits: CE is log(18) on every labelled voxel, Lovász of uniform 1/18 probabilities is 17/18.
    assert loss.item() == pytest.approx(np.log(NUM_CLASSES) + 17 / 18, rel=1e-5)
    with pytest.raises(InputError, match="tok-c"):
        load_pseudo_labels(tmp_path, "scene-0001", "tok-c")


def test_pseudo_class_weights_from_the_label_files(tmp_path):
    labels = {t: write_keyframe_labels(tmp_path, s, t, seed)
              for s, t, seed in (("scene-a", "t1", 20), ("scene-a", "t2", 21), ("scene-b", "t3", 22))}
    camera = sum(class_counts(sem, mask) for sem, mask in labels.values())
    np.testing.assert_allclose(pseudo_class_weights(tmp_path), class_weights_from_counts(camera), rtol=1e-6)
    everywhere = sum(class_counts(labels[t][0]) for t in ("t1", "t3"))
    np.testing.assert_allclose(pseudo_class_weights(tmp_path, "all", tokens=["t3", "t1"]),
                               class_weights_from_counts(everywhere), rtol=1e-6)
    with pytest.raises(InputError, match="1 of the 2 sample tokens.*t9"):
        pseudo_class_weights(tmp_path, tokens=["t1", "t9"])
    with pytest.raises(InputError, match="labels folder not found"):
        pseudo_class_weights(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no <scene>/<sample_token>/labels.npz"):
        pseudo_class_weights(tmp_path / "empty")


def test_no_labelled_voxel_gives_a_zero_loss_on_the_graph():
    # DDP: every rank's backward must reach the same parameters, also for a keyframe the labels say nothing about.
    grid = OccNeRFGrid((8, 48, 48), OCC3D_REAL_SIZE, True, 0.66667)
    volume = torch.randn(1, NUM_CLASSES, *grid.shape, requires_grad=True)
    semantics, mask = random_labels(17)
    losses = OccNeRFPseudoLoss(grid, LossConfig(class_weighting="none"))(volume, semantics, torch.zeros_like(mask))
    assert losses["loss"].item() == 0.0 and losses["loss"].requires_grad
    losses["loss"].backward()
    assert volume.grad is not None and volume.grad.abs().max().item() == 0.0


REPOSITORY = Path(__file__).resolve().parents[1]


def added_lines(text: str) -> list[str]:
    return [line[1:] for line in text.splitlines() if line.startswith("+") and not line.startswith("+++")]


def test_readme_patch_uses_the_drop_in_as_it_is():
    """The README's annotated patch imports names the drop-in has and reads the keys ``load_pseudo_labels`` gives."""
    import easyocc.losses.occnerf as dropin

    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("## Adding the pseudo-labels to OccNeRF / GaussianOcc", 1)[1]
    block = section.split("```diff\n", 1)[1].split("```", 1)[0]
    added = added_lines(block)
    imported = [name.strip() for line in added if "import" in line for name in line.split("import", 1)[1].split(",")]
    assert imported and all(hasattr(dropin, name) for name in imported)
    for name in (SEMANTICS_KEY, MASK_KEY):
        assert f'inputs["{name}"]' in block