"""A drop-in for OccNeRF / GaussianOcc: the 3D pseudo loss on their decoder's volume.

For people who train OccNeRF (LinShan-Bin/OccNeRF) or GaussianOcc (GANWANSHUI/GaussianOcc) in their own code: this
module needs only torch, numpy and easyocc's Occ3D constants and pseudo loss (it imports nothing of easyocc's data,
models or training). Their ``VolumeDecoder`` turns the images into a volume ``Voxel_feat_list[0]`` (OccNeRF also
keeps it as ``outputs["density"]``): (B, 18, X, Y, Z) logits, channel 17 = free, over a grid set by their options

- ``voxels_size`` [Z, Y, X] cells (note the order),
- ``real_size`` [x_min, x_max, y_min, y_max, z_min, z_max] metres in the ego frame (their help text says otherwise;
  the code reads it in this order),
- ``contracted_coord`` and ``contracted_ratio``: the box takes the central fraction ``ratio`` of the grid and the
  rest compresses the unbounded space beyond (``utils/vox.py`` ``world2contracted``).

Their evaluation reads that volume at the 200 x 200 x 16 Occ3D voxels (``VolumeDecoder.forward``, ``not
is_train``): for Occ3D voxel [i, j, k] the point ``lower + (i, j, k) * 0.4 + 0.5 * voxel_size`` (``voxel_size`` being
*their* volume's, ``VolumeDecoder.voxel_size``), mapped by their ``norm_func`` to unit coordinates u in [-1, 1]^3,
flipped to (z, y, x) and read by ``F.grid_sample(mode="bilinear", align_corners=True)`` (zero padding). With
align_corners=True the centre of cell n of an axis with N cells is at u = -1 + 2 n / (N - 1): the first and last
cells' centres are at -1 and 1. :func:`sample_occ3d_logits` does the same, batched, with the points computed in
float64; :class:`OccNeRFPseudoLoss` puts easyocc's pseudo loss (class-balanced cross-entropy + Lovász-softmax,
``easyocc.losses.LossConfig``) on those samples, in float32 whatever the volume's precision or the autocast state.
The loss reads where their evaluation reads because that is what gets scored, quirks included: ``voxel_size`` is the
geometric mean cell size, 0.4 m only for grids like the shipped ones (0.399998 for nusc-sem; 1.69 m for a coarse
60 x 60 x 8 contracted grid, whose query points then sit 0.64 m off the Occ3D centres on every axis).

easyocc's own contracted volume (``easyocc.models.volume.VolumeGrid.contracted``) uses the same contraction (the same
unit coordinates for the same ratio) in another cell layout: its cells are whole (align_corners=False), so its inner
200 x 200 x 16 cells are exactly the Occ3D voxels. OccNeRF puts cell n's centre at u = -1 + 2 n / (N - 1) in its
lifting (``Vox_util.Mem2Ref``) and its sampling alike, so on its 300 x 300 x 24 grid the box spans 199.33 x 199.33 x
15.33 cell pitches (0.401 m, 0.401 m, 0.417 m). At one point the two fractional cell indices differ by u / 2 cells
(a third of a cell at the box faces); each volume must be read in the layout its lifting built.

The README section "Adding the pseudo-labels to OccNeRF / GaussianOcc" shows the patch to their training step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from easyocc.errors import InputError
from easyocc.losses.pseudo import LossConfig, PseudoLoss, class_counts, class_weights_from_counts
from easyocc.occ3d import (
    GRID_SHAPE,
    LABELS_FILE,
    NUM_CLASSES,
    OCC3D_GRID,
    find_label_files,
    label_path,
    read_labels,
)

#: The keys :func:`load_pseudo_labels` adds to a dataset item (their ``preprocess`` treats keys containing "color"
#: as images, so these must not).
SEMANTICS_KEY = "pseudo_semantics"
MASK_KEY = "pseudo_mask_camera"


@dataclass(frozen=True)
class OccNeRFGrid:
    """The grid of an OccNeRF / GaussianOcc decoder volume, in their options' terms and orders.

    voxels_size: (Z, Y, X) cells; real_size: (x_min, x_max, y_min, y_max, z_min, z_max) metres;
    contracted_coord / contracted_ratio: their contraction (the ratio is ignored without it);
    align_corners: how the volume is read (their evaluation and rendering: True). False reads cell n of N at
    u = -1 + (2 n + 1) / N, the layout in which their *uncontracted* lifting (``Vox_util.get_ref_T_mem``) builds the
    volume; then a 200 x 200 x 16 volume over the Occ3D box is read exactly at its cells.
    """

    voxels_size: tuple[int, int, int]
    real_size: tuple[float, float, float, float, float, float]
    contracted_coord: bool
    contracted_ratio: float = 0.8
    align_corners: bool = True

    def __post_init__(self):
        object.__setattr__(self, "voxels_size", tuple(int(n) for n in self.voxels_size))
        object.__setattr__(self, "real_size", tuple(float(v) for v in self.real_size))
        if len(self.voxels_size) != 3 or min(self.voxels_size) < 2:
            raise ValueError(f"voxels_size must be three cell counts (Z, Y, X) >= 2, got {self.voxels_size}")
        if len(self.real_size) != 6 or any(lo >= hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"real_size must be x_min, x_max, y_min, y_max, z_min, z_max, got {self.real_size}")
        if self.contracted_coord and not 0.0 < self.contracted_ratio < 1.0:
            raise ValueError(f"contracted_ratio must be in (0, 1), got {self.contracted_ratio}")

    @classmethod
    def from_options(cls, opt) -> "OccNeRFGrid":
        """From their parsed options (``opt.voxels_size``, ``opt.real_size``, ``opt.contracted_coord``,
        ``opt.contracted_ratio``)."""
        return cls(tuple(opt.voxels_size), tuple(opt.real_size), bool(opt.contracted_coord),
                   float(opt.contracted_ratio))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(X, Y, Z): the volume's last three dimensions."""
        z, y, x = self.voxels_size
        return x, y, z

    @property
    def lower(self) -> tuple[float, float, float]:
        return self.real_size[0], self.real_size[2], self.real_size[4]

    @property
    def upper(self) -> tuple[float, float, float]:
        return self.real_size[1], self.real_size[3], self.real_size[5]

    @property
    def voxel_size(self) -> float:
        """Their ``VolumeDecoder.voxel_size``: the cube root of the box's volume per cell inside it (with contraction
        the box holds int(cells * ratio^3) of them). OccNeRF's nusc-sem grid: 0.399998 m."""
        cells = int(np.prod(self.voxels_size))
        if self.contracted_coord:
            cells = int(cells * self.contracted_ratio**3)
        return float((np.prod(np.subtract(self.upper, self.lower)) / cells) ** (1.0 / 3.0))

    def world_to_unit(self, points: torch.Tensor) -> torch.Tensor:
        """Their ``norm_func``: (..., 3) metres in the ego frame -> (..., 3) unit coordinates, in points' dtype.

        Per axis s = 2 (x - lower) / (upper - lower) - 1 (the box is |s| <= 1); without contraction u = s. With it,
        t = ratio / (1 - ratio), c = t s inside the box and sign(s) (1 + t - 1 / (t |s| + 1 - t)) beyond it, and
        u = c / (1 + t): the box fills |u| <= ratio, and u -> +-1 only at infinity.
        """
        lower = torch.tensor(self.lower, dtype=points.dtype, device=points.device)
        upper = torch.tensor(self.upper, dtype=points.dtype, device=points.device)
        s = 2 * (points - lower) / (upper - lower) - 1
        if not self.contracted_coord:
            return s
        t = self.contracted_ratio / (1 - self.contracted_ratio)
        scaled = s * t
        magnitude = scaled.abs()
        contracted = torch.where(magnitude <= t, scaled, scaled.sign() * (1 + t - 1 / (magnitude + 1 - t)))
        return contracted / (1 + t)

    def occ3d_points(self) -> torch.Tensor:
        """(200, 200, 16, 3) float64 metres: the points their evaluation reads for the Occ3D voxels, the voxels'
        lower corners plus half of this volume's ``voxel_size`` on every axis (the Occ3D centres when it is 0.4)."""
        x, y, z = [torch.arange(n, dtype=torch.float64) * OCC3D_GRID.voxel_size + lo + 0.5 * self.voxel_size
                   for n, lo in zip(GRID_SHAPE, OCC3D_GRID.lower)]
        return torch.stack(torch.broadcast_tensors(x[:, None, None], y[None, :, None], z[None, None, :]), dim=-1)

    def occ3d_unit(self) -> torch.Tensor:
        """(200, 200, 16, 3) float64: ``occ3d_points`` in unit coordinates."""
        return self.world_to_unit(self.occ3d_points())


#: OccNeRF's shipped semantic config (``configs/nusc-sem.txt``). GaussianOcc's ``configs/nusc-sem-gs.txt`` and
#: ``configs/nusc-sem.txt`` set the same four options, so the same grid.
OCCNERF_NUSC_SEM = OccNeRFGrid((24, 300, 300), (-40, 40, -40, 40, -1, 5.4), True, 0.66667)
GAUSSIANOCC_NUSC_SEM = OCCNERF_NUSC_SEM


def _check_volume(volume: torch.Tensor, grid: OccNeRFGrid) -> None:
    if volume.ndim != 5 or tuple(volume.shape[2:]) != grid.shape or volume.shape[1] < NUM_CLASSES:
        cells = ", ".join(map(str, grid.shape))
        raise ValueError(f"the volume must be (B, >= {NUM_CLASSES}, X, Y, Z) = (B, C, {cells}) for voxels_size "
                         f"{list(grid.voxels_size)}, got {tuple(volume.shape)}")


def _autocast_off(device: torch.device):
    """A context without autocast on ``device`` (their environment's torch 1.9 has only CUDA's autocast)."""
    if hasattr(torch, "autocast"):
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.cuda.amp.autocast(enabled=False)


def sample_at_unit(volume: torch.Tensor, unit: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
    """Trilinear samples of the first 18 channels, in float32 or wider (a half volume is read in float32; autocast
    is off).

    volume: (B, C >= 18, X, Y, Z); unit: (..., 3) unit coordinates (x, y, z), shared by the batch.
    Returns (B, 18, ...). Outside [-1, 1] reads zeros, as their ``grid_sample`` call does.
    """
    batch = volume.shape[0]
    dtype = torch.promote_types(volume.dtype, torch.float32)
    # grid_sample reads the last axis as (W, H, D) = (Z, Y, X) of this (X, Y, Z) layout.
    locations = unit.to(device=volume.device, dtype=dtype).flip(-1).reshape(1, 1, 1, -1, 3)
    with _autocast_off(volume.device):
        samples = F.grid_sample(volume[:, :NUM_CLASSES].to(dtype), locations.expand(batch, -1, -1, -1, -1),
                                mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    return samples.reshape(batch, NUM_CLASSES, *unit.shape[:-1])


@lru_cache(maxsize=8)
def _occ3d_unit(grid: OccNeRFGrid) -> torch.Tensor:
    return grid.occ3d_unit()  # 0.2 s on a CPU: computed once per grid


def sample_occ3d_logits(volume: torch.Tensor, grid: OccNeRFGrid) -> torch.Tensor:
    """Their evaluation's Occ3D logits, with gradients: volume (B, C >= 18, X, Y, Z) on ``grid`` ->
    (B, 18, 200, 200, 16) float32 (float64 for a float64 volume) indexed [x, y, z]; their
    ``outputs["pred_occ_logits"]`` (a batch of one there)."""
    _check_volume(volume, grid)
    return sample_at_unit(volume, _occ3d_unit(grid), grid.align_corners)


class OccNeRFPseudoLoss(nn.Module):
    """The pseudo loss on an OccNeRF / GaussianOcc volume, read at the Occ3D voxels as their evaluation reads it.

    forward(volume (B, C >= 18, X, Y, Z), semantics (B, 200, 200, 16) 0..17 or 255 (ignored),
    mask_camera (B, 200, 200, 16) 0/1, or None with ``region: all``) -> {"loss", "ce", "lovasz"}: float32 scalars;
    "loss" carries the gradient, the others are detached for logging. Holds no parameters (DDP needs no change);
    its buffers (the Occ3D points in unit coordinates, the class weights) follow ``.to(device)``.
    """

    def __init__(self, grid: OccNeRFGrid, config: LossConfig | None = None, class_weights: np.ndarray | None = None):
        super().__init__()
        self.grid = grid
        self.pseudo = PseudoLoss(config or LossConfig(), class_weights)
        self.register_buffer("occ3d_unit", grid.occ3d_unit().float(), persistent=False)

    def forward(
        self, volume: torch.Tensor, semantics: torch.Tensor, mask_camera: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        _check_volume(volume, self.grid)
        expected = (volume.shape[0], *GRID_SHAPE)
        for name, labels in (("semantics", semantics), ("mask_camera", mask_camera)):
            if labels is not None and tuple(labels.shape) != expected:
                raise ValueError(f"{name} must be (B, 200, 200, 16) = {expected} for a volume of batch "
                                 f"{volume.shape[0]}, got {tuple(labels.shape)}")
        logits = sample_at_unit(volume, self.occ3d_unit, self.grid.align_corners)
        with _autocast_off(volume.device):
            return self.pseudo(logits, semantics.to(logits.device),
                               None if mask_camera is None else mask_camera.to(logits.device))


def load_pseudo_labels(root: str | PathLike, scene_name: str, sample_token: str) -> dict[str, torch.Tensor]:
    """One keyframe's pseudo-labels ``<root>/<scene_name>/<sample_token>/labels.npz`` for their dataset's
    ``get_info``: {SEMANTICS_KEY, MASK_KEY} -> (1, 200, 200, 16) uint8 tensors; the leading axis lets their
    ``my_collate`` (``torch.cat`` on axis 0) make the (B, 200, 200, 16) batch. A missing or malformed file raises
    ``InputError`` naming it."""
    labels = read_labels(label_path(root, scene_name, sample_token), keys=("semantics", "mask_camera"))
    return {SEMANTICS_KEY: torch.from_numpy(labels.semantics)[None],
            MASK_KEY: torch.from_numpy(labels.mask_camera)[None]}


def label_files(root: str | PathLike, tokens: Iterable[str] | None = None) -> list[Path]:
    """``<root>/<scene>/<token>/labels.npz`` files, sorted; only those of ``tokens`` when given (each must exist)."""
    found = find_label_files(root)
    if tokens is None:
        return list(found.values())
    wanted = list(dict.fromkeys(tokens))
    missing = [t for t in wanted if t not in found]
    if missing:
        raise InputError(root, f"no {LABELS_FILE} for {len(missing)} of the {len(wanted)} sample tokens "
                               f"(first: {missing[0]})")
    return [found[t] for t in wanted]


def pseudo_class_weights(
    root: str | PathLike, region: str = "camera", tokens: Sequence[str] | None = None, show_progress: bool = False
) -> np.ndarray:
    """Cross-entropy weights (18,) float32 from the pseudo-labels' class counts in the loss region, as
    ``easyocc train`` computes them (1 / sqrt(frequency), mean 1 over the classes present). Counts the files of
    ``tokens`` (their training split), or every file under ``root``."""
    if region not in ("camera", "all"):
        raise ValueError(f"region must be 'camera' or 'all', got {region!r}")
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for path in tqdm(label_files(root, tokens), desc="pseudo-label class counts", unit="file",
                     disable=not show_progress):
        labels = read_labels(path, keys=("semantics", "mask_camera"))
        counts += class_counts(labels.semantics, labels.mask_camera if region == "camera" else None)
    if counts.sum() == 0:
        raise InputError(root, f"the pseudo-labels have no labelled voxel in the loss region '{region}'")
    return class_weights_from_counts(counts)
