"""Rays through a voxel grid (Amanatides-Woo traversal), compiled with numba, parallel over rays.

One traversal serves three uses: SimScenes' camera and LiDAR masks (voxels passed through up to the first occupied
one), pseudo-label free space (voxels a camera ray crosses before it reaches its depth) and pass-through counts (how
many rays cross each voxel without ending in it). RayIoU does not use it: ``evaluation.rayiou`` reproduces
SparseOcc's CUDA walker (dvr) to the bit, with its own arithmetic (end points rounded to float32 voxel coordinates,
its tie order between axes, the depth where a ray leaves a voxel, a step cap), which this exact traversal does not
share. (The tests' first-hit query, built on the same walk, lives with the tests.)

The kernels work in voxel units: voxel [i, j, k] spans [i, i+1) x [j, j+1) x [k, k+1). Directions should be unit
vectors; then ray parameters ``t`` are distances in voxels (multiply by the voxel size for metres). The ``*_m``
wrappers take metres and a :class:`~easyocc.occ3d.VoxelGrid`.
"""

from __future__ import annotations

import numba
import numpy as np

from easyocc.occ3d import OCC3D_GRID, VoxelGrid

_INF = np.inf


@numba.njit(cache=True, inline="always")
def _grid_interval(ox, oy, oz, dx, dy, dz, nx, ny, nz):
    """Ray parameters (t0, t1) where the ray is inside the box [0, n]; t0 > t1 when it misses."""
    t0 = -_INF
    t1 = _INF
    for o, d, n in ((ox, dx, nx), (oy, dy, ny), (oz, dz, nz)):
        if d == 0.0:
            if o < 0.0 or o >= n:
                return 1.0, 0.0
        else:
            a = (0.0 - o) / d
            b = (n - o) / d
            if a > b:
                a, b = b, a
            t0 = max(t0, a)
            t1 = min(t1, b)
    return t0, t1


@numba.njit(cache=True, inline="always")
def _axis_setup(o, d, i):
    """Step, parameter of the first boundary crossing, and parameter spacing of boundaries along one axis."""
    if d > 0.0:
        return 1, (i + 1 - o) / d, 1.0 / d
    if d < 0.0:
        return -1, (i - o) / d, -1.0 / d
    return 0, _INF, _INF


@numba.njit(cache=True)
def _walk(origin, direction, t_start, t_end, shape, occupied, use_occupied, visited, mark, passes, weight):
    """Walk one ray from ``t_start`` to ``t_end`` (clipped to the grid).

    Marks ``visited`` (when ``mark``) for every voxel the ray enters before ``t_end``; adds ``weight`` to
    ``passes`` (when ``weight > 0``) for every voxel the ray leaves before ``t_end``; stops after the first
    voxel with ``occupied != 0`` (when ``use_occupied``). Returns (flat index of that voxel or -1,
    its entry and exit parameters; for a miss, the parameters where the walk ended).
    """
    nx, ny, nz = shape
    ox, oy, oz = origin[0], origin[1], origin[2]
    dx, dy, dz = direction[0], direction[1], direction[2]
    g0, g1 = _grid_interval(ox, oy, oz, dx, dy, dz, nx, ny, nz)
    t = max(g0, t_start)
    t_stop = min(g1, t_end)
    if not t < t_stop:
        return -1, t_stop, t_stop
    # Voxel containing the entry point; clamp against rounding at the grid faces.
    i = min(max(int(np.floor(ox + dx * t)), 0), nx - 1)
    j = min(max(int(np.floor(oy + dy * t)), 0), ny - 1)
    k = min(max(int(np.floor(oz + dz * t)), 0), nz - 1)
    si, ti, di = _axis_setup(ox, dx, i)
    sj, tj, dj = _axis_setup(oy, dy, j)
    sk, tk, dk = _axis_setup(oz, dz, k)
    t_in = t
    while True:
        t_out = min(ti, tj, tk)
        flat = (i * ny + j) * nz + k
        if mark:
            visited[flat] = 1
        if weight > 0.0 and t_out < t_end:
            passes[flat] += weight
        if use_occupied and occupied[flat] != 0:
            return flat, t_in, t_out
        if t_out >= t_stop:
            return -1, t_stop, t_stop
        t_in = t_out
        if ti <= tj and ti <= tk:
            i += si
            ti += di
            if i < 0 or i >= nx:
                return -1, t_in, t_in
        elif tj <= tk:
            j += sj
            tj += dj
            if j < 0 or j >= ny:
                return -1, t_in, t_in
        else:
            k += sk
            tk += dk
            if k < 0 or k >= nz:
                return -1, t_in, t_in


@numba.njit(cache=True, parallel=True)
def _mark_kernel(visited_flat, occupied_flat, use_occupied, shape, origins, directions, t_end):
    n = directions.shape[0]
    per_ray_origin = origins.shape[0] == n
    no_passes = np.zeros(1, dtype=np.float64)
    # Racing writes of the same value 1 are benign: every writer stores the same byte.
    for r in numba.prange(n):
        o = origins[r] if per_ray_origin else origins[0]
        _walk(o, directions[r], 0.0, t_end[r], shape, occupied_flat, use_occupied, visited_flat, True, no_passes, 0.0)


@numba.njit(cache=True, parallel=True)
def _pass_kernel(passes_per_chunk, shape, origins, directions, t_end, weights):
    n = directions.shape[0]
    chunks = passes_per_chunk.shape[0]
    per_ray_origin = origins.shape[0] == n
    dummy = np.zeros(1, dtype=np.uint8)
    # Each chunk of rays adds into its own array (no racing increments); the caller sums the chunks.
    for c in numba.prange(chunks):
        for r in range(c * n // chunks, (c + 1) * n // chunks):
            o = origins[r] if per_ray_origin else origins[0]
            if weights[r] > 0.0:
                _walk(o, directions[r], 0.0, t_end[r], shape, dummy, False, dummy, False, passes_per_chunk[c],
                      weights[r])


def _prepare(origins, directions, t, n_name="directions"):
    directions = np.ascontiguousarray(directions, dtype=np.float64)
    if directions.ndim != 2 or directions.shape[1] != 3:
        raise ValueError(f"{n_name} must have shape (N, 3), got {directions.shape}")
    origins = np.ascontiguousarray(np.atleast_2d(origins), dtype=np.float64)
    if origins.shape[1] != 3 or origins.shape[0] not in (1, directions.shape[0]):
        raise ValueError(f"origins must have shape (3,), (1, 3) or (N, 3), got {origins.shape}")
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), directions.shape[:1])
    return origins, directions, np.ascontiguousarray(t)


def mark_traversed(
    shape: tuple[int, int, int],
    origins: np.ndarray,
    directions: np.ndarray,
    t_end=np.inf,
    occupied: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Voxels that rays pass through, in voxel units.

    A voxel is marked when the ray enters it before ``t_end`` (so the voxel holding the end point is marked).
    With ``occupied``, each ray also stops after the first occupied voxel it enters (that voxel is marked):
    the voxels a sensor observes. Returns (X, Y, Z) uint8 0/1 (``out`` is updated in place when given).
    """
    origins, directions, t_end = _prepare(origins, directions, t_end)
    if out is None:
        out = np.zeros(shape, dtype=np.uint8)
    if out.shape != tuple(shape) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous uint8 array of the grid's shape")
    use_occ = occupied is not None
    occ = np.ascontiguousarray(occupied).astype(np.uint8, copy=False).reshape(-1) if use_occ else np.zeros(1, np.uint8)
    _mark_kernel(out.reshape(-1), occ, use_occ, tuple(int(s) for s in shape), origins, directions, t_end)
    return out


def count_passes(
    shape: tuple[int, int, int],
    origins: np.ndarray,
    directions: np.ndarray,
    t_end=np.inf,
    weights=1.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """How many rays pass through each voxel, in voxel units: a ray passes a voxel when it enters it and leaves it
    before ``t_end`` (the voxel holding the end point is not passed; an unbounded ray passes every voxel up to the
    grid's edge).

    weights: scalar or (N,) what each ray counts for (0 leaves a ray out). Returns (X, Y, Z) float64 (``out`` is
    added to in place when given). The sum does not depend on the number of threads for integer weights.
    """
    origins, directions, t_end = _prepare(origins, directions, t_end)
    weights = np.ascontiguousarray(np.broadcast_to(np.asarray(weights, np.float64), directions.shape[:1]))
    if out is None:
        out = np.zeros(shape, dtype=np.float64)
    if out.shape != tuple(shape) or out.dtype != np.float64:
        raise ValueError("out must be a float64 array of the grid's shape")
    if len(directions):
        chunks = max(1, min(numba.get_num_threads(), len(directions)))
        per_chunk = np.zeros((chunks, int(np.prod(shape))), np.float64)
        _pass_kernel(per_chunk, tuple(int(s) for s in shape), origins, directions, t_end, weights)
        out += per_chunk.sum(axis=0).reshape(shape)
    return out


def mark_traversed_m(
    origins_m: np.ndarray,
    directions: np.ndarray,
    range_m=np.inf,
    occupied: np.ndarray | None = None,
    grid: VoxelGrid = OCC3D_GRID,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`mark_traversed` with origins and ranges in metres."""
    o = grid.to_voxel_units(np.atleast_2d(origins_m))
    t_end = np.asarray(range_m, dtype=np.float64) / grid.voxel_size
    return mark_traversed(grid.shape, o, directions, t_end, occupied, out)


def count_passes_m(
    origins_m: np.ndarray, directions: np.ndarray, range_m=np.inf, weights=1.0, grid: VoxelGrid = OCC3D_GRID,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`count_passes` with origins and ranges in metres."""
    o = grid.to_voxel_units(np.atleast_2d(origins_m))
    t_end = np.asarray(range_m, dtype=np.float64) / grid.voxel_size
    return count_passes(grid.shape, o, directions, t_end, weights, out)
