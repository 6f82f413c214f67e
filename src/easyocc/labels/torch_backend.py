"""The 3D stage's heavy steps in torch, for a GPU: lifting images into fine cells and the window's vote.

Same arithmetic as the numba kernels (float64, the same order of operations, float32 points), so on the same
inputs both give the same cells and the same labels; the tests check that on the CPU. Free-space traversal stays
on the CPU (numba), since it walks a thinned set of rays.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from easyocc.geometry import relative_transform
from easyocc.labels.cells import CLASS_BITS, XY_BITS, XY_OFFSET, Z_BITS, Z_OFFSET, FrameCells, cell_size
from easyocc.occ3d import FREE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid


def torch_device(device: torch.device | str) -> torch.device:
    """The device the torch path runs on (``labels.backend.TorchBackend`` holds it: a GPU, or the CPU in tests)."""
    return torch.device(device)


def _affine(R: torch.Tensor, t: torch.Tensor, x, y, z):
    """R @ [x, y, z] + t per component, summed left to right like the numba kernels, rounded to float32."""
    return [(R[i, 0] * x + R[i, 1] * y + R[i, 2] * z + t[i]).float().double() for i in range(3)]


def image_keys(
    depth: np.ndarray,
    semantics: np.ndarray,
    K: np.ndarray,
    ref_T_cam: np.ndarray,
    keep: np.ndarray | None,
    stride: int,
    max_range: float | None,
    divisions: int,
    device: torch.device | str,
    grid: VoxelGrid = OCC3D_GRID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed (cell, class) keys (N,) int64 and coordinates (N, 3) float64 (float32 values) of the points of one
    image (same pixel rules as ``lift.lift_image``)."""
    dev = torch_device(device)
    d = torch.from_numpy(np.ascontiguousarray(depth[::stride, ::stride])).to(dev).double()
    s = torch.from_numpy(np.ascontiguousarray(semantics[::stride, ::stride])).to(dev).long()
    h, w = d.shape
    v = torch.arange(h, device=dev, dtype=torch.float64)[:, None] * stride
    u = torch.arange(w, device=dev, dtype=torch.float64)[None, :] * stride
    yr = ((v - K[1, 2]) / K[1, 1]).expand(h, w)
    xr = (u - K[0, 2] - K[0, 1] * yr) / K[0, 0]
    valid = (d > 0) & (s < FREE)
    if keep is not None:
        valid &= torch.from_numpy(np.ascontiguousarray(keep[::stride, ::stride])).to(dev)
    if max_range is not None:
        valid &= ~(d * torch.sqrt(xr * xr + yr * yr + 1.0) > max_range)
    d, xr, yr, s = d[valid], xr[valid], yr[valid], s[valid]
    T = torch.as_tensor(np.asarray(ref_T_cam, np.float64), device=dev)
    x, y, z = _affine(T[:3, :3], T[:3, 3], d * xr, d * yr, d)
    key, fits = _pack(x, y, z, s, grid.lower, cell_size(divisions, grid))
    return key[fits], torch.stack([x, y, z], 1)[fits]


def _pack(x, y, z, classes, lower, cell) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.floor((x - lower[0]) / cell).long() + XY_OFFSET
    iy = torch.floor((y - lower[1]) / cell).long() + XY_OFFSET
    iz = torch.floor((z - lower[2]) / cell).long() + Z_OFFSET
    fits = (ix >= 0) & (ix < (1 << XY_BITS)) & (iy >= 0) & (iy < (1 << XY_BITS)) & (iz >= 0) & (iz < (1 << Z_BITS))
    key = (((ix << XY_BITS) | iy) << Z_BITS | iz) << CLASS_BITS | classes
    return key, fits


def cells_from_keys(keyed_points: Sequence[tuple[torch.Tensor, torch.Tensor]], divisions: int,
                    grid: VoxelGrid = OCC3D_GRID) -> FrameCells:
    """Count a frame's (keys, points) of all its images into cells (centroids of their points), on the host.

    Coordinate sums are float64 sums of float32 values: exact, so they do not depend on the order of summation and
    equal the numba path's.
    """
    if not keyed_points:
        return FrameCells.empty()
    keys = torch.cat([k for k, _ in keyed_points])
    points = torch.cat([p for _, p in keyed_points])
    unique, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    sums = torch.zeros((len(unique), 3), dtype=torch.float64, device=keys.device).index_add_(0, inverse, points)
    cell = cell_size(divisions, grid)
    classes = unique & ((1 << CLASS_BITS) - 1)
    rest = unique >> CLASS_BITS
    iz = (rest & ((1 << Z_BITS) - 1)) - Z_OFFSET
    rest = rest >> Z_BITS
    iy = (rest & ((1 << XY_BITS) - 1)) - XY_OFFSET
    ix = (rest >> XY_BITS) - XY_OFFSET
    centres = (sums / counts[:, None]).float()
    for a, i in enumerate((ix, iy, iz)):  # keep each centroid inside its cell, as the numba path does
        lo = (grid.lower[a] + i.double() * cell).float()
        hi = (grid.lower[a] + (i + 1).double() * cell).float()
        below = centres[:, a].double() < grid.lower[a] + i.double() * cell
        above = centres[:, a].double() >= grid.lower[a] + (i + 1).double() * cell
        centres[:, a] = torch.where(below, torch.nextafter(lo, torch.full_like(lo, np.inf)), centres[:, a])
        centres[:, a] = torch.where(above, torch.nextafter(hi, torch.full_like(hi, -np.inf)), centres[:, a])
    return FrameCells(centres.cpu().numpy(), classes.to(torch.uint8).cpu().numpy(),
                      counts.to(torch.int64).cpu().numpy().astype(np.uint32))


def window_vote(
    window: Sequence, dynamic_classes: Sequence[int], min_points: int, device: torch.device | str,
    grid: VoxelGrid = OCC3D_GRID, carved: np.ndarray | None = None,
    pass_through: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    rare_classes: Sequence[int] = (), rare_min_points: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of a window of ``PosedFrame`` (current last) and their vote, on ``device``; other frames' points in
    ``carved`` voxels are dropped (see ``aggregate.window_counts``). ``pass_through`` maps the points per voxel
    (X, Y, Z) to the (static, dynamic) voxels to empty (``visibility.pass_through_drops``, on the host, so both
    backends decide alike); ``rare_classes`` win voxels holding ``rare_min_points`` of their points
    (``voxelize.vote``).

    Returns (semantics (X, Y, Z) uint8, total points (X, Y, Z) uint64, current-frame voxels (X, Y, Z) bool).
    """
    dev = torch_device(device)
    n_voxels = int(np.prod(grid.shape))
    counts = torch.zeros(n_voxels * NUM_SEMANTIC_CLASSES, dtype=torch.int64, device=dev)
    current = torch.zeros(n_voxels, dtype=torch.bool, device=dev)
    dynamic = torch.zeros(32, dtype=torch.bool, device=dev)
    dynamic[list(dynamic_classes)] = True
    shape = torch.tensor(grid.shape, device=dev)
    blocked = None if carved is None else torch.from_numpy(np.ascontiguousarray(carved).reshape(-1) != 0).to(dev)
    for f, frame in enumerate(window):
        is_current = f == len(window) - 1
        cells = frame.cells
        if not len(cells):
            continue
        c = torch.from_numpy(cells.centres).to(dev).double()
        cls = torch.from_numpy(cells.classes).to(dev).long()
        n = torch.from_numpy(cells.counts.astype(np.int64)).to(dev)
        T = np.eye(4) if is_current else relative_transform(window[-1].global_T_ego, frame.global_T_ego)
        T = torch.as_tensor(T, device=dev)
        p = _affine(T[:3, :3], T[:3, 3], c[:, 0], c[:, 1], c[:, 2])
        ijk = torch.stack([torch.floor((p[a] - grid.lower[a]) / grid.voxel_size).long() for a in range(3)], 1)
        ok = ((ijk >= 0) & (ijk < shape)).all(1)
        if not is_current:
            ok &= ~dynamic[cls]
        index = ok.nonzero().squeeze(1)
        flat = (ijk[index, 0] * grid.shape[1] + ijk[index, 1]) * grid.shape[2] + ijk[index, 2]
        if not is_current and blocked is not None:
            keep = ~blocked[flat]
            flat, index = flat[keep], index[keep]
        counts.index_add_(0, flat * NUM_SEMANTIC_CLASSES + cls[index], n[index])
        if is_current:
            current[flat] = True
    counts = counts.view(n_voxels, NUM_SEMANTIC_CLASSES)
    if pass_through is not None:
        static_drop, dynamic_drop = pass_through(counts.sum(1).cpu().numpy().reshape(grid.shape))
        is_dynamic = dynamic[:NUM_SEMANTIC_CLASSES]
        drop = torch.from_numpy(static_drop.reshape(-1, 1)).to(dev) & ~is_dynamic
        drop |= torch.from_numpy(dynamic_drop.reshape(-1, 1)).to(dev) & is_dynamic
        counts = counts.masked_fill(drop, 0)
    total = counts.sum(1)
    voted = counts.argmax(1)  # ties: the first maximum, the lower class id
    if len(rare_classes):
        rare = torch.zeros(NUM_SEMANTIC_CLASSES, dtype=torch.bool, device=dev)
        rare[list(rare_classes)] = True
        qualified = torch.where(rare & (counts >= max(1, rare_min_points)), counts, torch.full_like(counts, -1))
        voted = torch.where(qualified.amax(1) >= 0, qualified.argmax(1), voted)
    semantics = torch.where(total >= min_points, voted, torch.full_like(total, FREE))
    return (semantics.to(torch.uint8).cpu().numpy().reshape(grid.shape),
            total.cpu().numpy().astype(np.uint64).reshape(grid.shape), current.cpu().numpy().reshape(grid.shape))
