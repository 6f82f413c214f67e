"""Exact ray casting against vertical prisms, accelerated by a uniform 2D grid walked by DDA (numba, parallel).

Every solid is registered in the grid cells its xy bounding box touches; a ray walks the cells its xy projection
crosses, in order, tests the solids listed there (Cyrus-Beck clipping), and stops as soon as its nearest hit lies
before the exit of the current cell. A cell whose solids all end below the ray's height in that cell is skipped,
so sky rays over low ground cost a few steps. :func:`cast_rays_bruteforce` tests every solid: the reference the
grid is checked and benchmarked against.

Ray parameters are in units of the direction's length: with camera rays scaled to z = 1 in the camera frame the
parameter is the depth, with unit directions it is the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from easyocc.data.synthetic.solids import Solids, edge_planes

#: Hits closer than this parameter are ignored (a ray never hits the surface it starts on).
T_MIN = 1e-6
#: Face codes returned with a hit: the two caps, then side e as ``FACE_SIDE + e``.
FACE_BOTTOM, FACE_TOP, FACE_SIDE = 0, 1, 2


@dataclass
class CastScene:
    """Solids with their side planes and the 2D grid over their bounds, ready for :func:`cast_rays`."""

    solids: Solids
    planes: np.ndarray  # (S, MAX_VERTS, 3)
    cell_start: np.ndarray  # (C + 1,) int64
    cell_items: np.ndarray  # (E,) int32
    cell_zmax: np.ndarray  # (C,) float64
    grid_origin: tuple[float, float]
    cell_size: float
    grid_cells: tuple[int, int]  # (ncx, ncy)
    z_top: float


def build_scene(solids: Solids, cell_size: float = 4.0) -> CastScene:
    """Index ``solids`` in a uniform grid of ``cell_size`` metres covering their xy bounds."""
    if len(solids) == 0:
        raise ValueError("cannot cast rays against an empty world")
    bounds = solids.bounds_xy()
    x0, y0 = float(bounds[:, 0].min()) - 1.0, float(bounds[:, 1].min()) - 1.0
    ncx = int(np.ceil((bounds[:, 2].max() + 1.0 - x0) / cell_size))
    ncy = int(np.ceil((bounds[:, 3].max() + 1.0 - y0) / cell_size))
    start, items, zmax = _build_grid(bounds, solids.zhi, x0, y0, cell_size, ncx, ncy)
    return CastScene(solids, edge_planes(solids), start, items, zmax, (x0, y0), float(cell_size), (ncx, ncy),
                     float(solids.zhi.max()))


@numba.njit(cache=True, inline="always")
def _cell_range(bounds, s, x0, y0, cell, ncx, ncy):
    """Grid cells [ia, ib] x [ja, jb] (inclusive, clipped) that solid s's xy bounds touch."""
    ia = max(int(np.floor((bounds[s, 0] - x0) / cell)), 0)
    ib = min(int(np.floor((bounds[s, 2] - x0) / cell)), ncx - 1)
    ja = max(int(np.floor((bounds[s, 1] - y0) / cell)), 0)
    jb = min(int(np.floor((bounds[s, 3] - y0) / cell)), ncy - 1)
    return ia, ib, ja, jb


@numba.njit(cache=True)
def _build_grid(bounds, zhi, x0, y0, cell, ncx, ncy):
    """Cell lists in CSR form (start (C + 1,), items) and each cell's highest solid top (C,)."""
    n = bounds.shape[0]
    counts = np.zeros(ncx * ncy + 1, dtype=np.int64)
    zmax = np.full(ncx * ncy, -np.inf)
    for s in range(n):
        ia, ib, ja, jb = _cell_range(bounds, s, x0, y0, cell, ncx, ncy)
        for j in range(ja, jb + 1):
            for i in range(ia, ib + 1):
                counts[j * ncx + i + 1] += 1
                zmax[j * ncx + i] = max(zmax[j * ncx + i], zhi[s])
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    items = np.empty(start[-1], dtype=np.int32)
    for s in range(n):
        ia, ib, ja, jb = _cell_range(bounds, s, x0, y0, cell, ncx, ncy)
        for j in range(ja, jb + 1):
            for i in range(ia, ib + 1):
                items[fill[j * ncx + i]] = s
                fill[j * ncx + i] += 1
    return start, items, zmax


@numba.njit(cache=True, inline="always")
def _prism_hit(planes, nverts, zlo, zhi, s, ox, oy, oz, dx, dy, dz, t_lo, t_hi):
    """Entry parameter and face of the ray into prism ``s`` within (t_lo, t_hi); (inf, -1) when it misses.

    A ray that starts inside the prism does not hit it (only entries through a face count).
    """
    tn = t_lo
    tf = t_hi
    face = -1
    if dz == 0.0:
        if oz <= zlo[s] or oz >= zhi[s]:
            return np.inf, -1
    else:
        ta = (zlo[s] - oz) / dz
        tb = (zhi[s] - oz) / dz
        if dz > 0.0:
            if ta > tn:
                tn = ta
                face = 0
            if tb < tf:
                tf = tb
        else:
            if tb > tn:
                tn = tb
                face = 1
            if ta < tf:
                tf = ta
        if tn > tf:
            return np.inf, -1
    for e in range(nverts[s]):
        nx = planes[s, e, 0]
        ny = planes[s, e, 1]
        denom = nx * dx + ny * dy
        num = planes[s, e, 2] - (nx * ox + ny * oy)
        if denom == 0.0:
            if num < 0.0:
                return np.inf, -1
            continue
        t = num / denom
        if denom < 0.0:
            if t > tn:
                tn = t
                face = 2 + e
        elif t < tf:
            tf = t
        if tn > tf:
            return np.inf, -1
    if face < 0:
        return np.inf, -1
    return tn, face


@numba.njit(cache=True, inline="always")
def _slab(o, d, lo, hi, t0, t1):
    """Clip the parameter interval (t0, t1) to the slab lo <= o + t d < hi; t0 >= t1 when the ray misses it."""
    if d == 0.0:
        if o < lo or o >= hi:
            return 1.0, 0.0
        return t0, t1
    a = (lo - o) / d
    b = (hi - o) / d
    return max(t0, min(a, b)), min(t1, max(a, b))


@numba.njit(cache=True, inline="always")
def _dda_axis(o, d, lo, i, cell):
    """DDA along one axis from cell i: step, parameter of the next cell boundary, parameter per cell."""
    if d > 0.0:
        return 1, (lo + (i + 1) * cell - o) / d, cell / d
    if d < 0.0:
        return -1, (lo + i * cell - o) / d, -cell / d
    return 0, np.inf, np.inf


@numba.njit(cache=True)
def _cast_one(ox, oy, oz, dx, dy, dz, t_max, planes, nverts, zlo, zhi, start, items, zmax, gx0, gy0, cell,
              ncx, ncy, z_top):
    best_t = t_max
    best_s = -1
    best_f = -1
    # Parameter interval of the ray inside the grid's xy rectangle.
    t0, t1 = _slab(ox, dx, gx0, gx0 + ncx * cell, T_MIN, t_max)
    t0, t1 = _slab(oy, dy, gy0, gy0 + ncy * cell, t0, t1)
    if not t0 < t1:
        return np.inf, -1, -1
    ix = min(max(int(np.floor((ox + dx * t0 - gx0) / cell)), 0), ncx - 1)
    iy = min(max(int(np.floor((oy + dy * t0 - gy0) / cell)), 0), ncy - 1)
    sx, tx, ddx = _dda_axis(ox, dx, gx0, ix, cell)
    sy, ty, ddy = _dda_axis(oy, dy, gy0, iy, cell)
    t_in = t0
    while True:
        t_out = min(tx, ty, t1)
        c = iy * ncx + ix
        za = oz + dz * t_in
        zb = oz + dz * t_out
        if min(za, zb) <= zmax[c]:
            for it in range(start[c], start[c + 1]):
                s = items[it]
                th, f = _prism_hit(planes, nverts, zlo, zhi, s, ox, oy, oz, dx, dy, dz, T_MIN, best_t)
                if th < best_t:
                    best_t = th
                    best_s = s
                    best_f = f
        if best_s >= 0 and best_t <= t_out:
            break
        if t_out >= t1:
            break
        if dz > 0.0 and zb > z_top:
            break
        t_in = t_out
        if tx <= ty:
            ix += sx
            tx += ddx
            if ix < 0 or ix >= ncx:
                break
        else:
            iy += sy
            ty += ddy
            if iy < 0 or iy >= ncy:
                break
    if best_s < 0:
        return np.inf, -1, -1
    return best_t, best_s, best_f


@numba.njit(cache=True, parallel=True)
def _cast_kernel(origins, dirs, t_max, planes, nverts, zlo, zhi, start, items, zmax, gx0, gy0, cell, ncx, ncy,
                 z_top):
    n = dirs.shape[0]
    t_hit = np.empty(n, dtype=np.float64)
    solid = np.empty(n, dtype=np.int32)
    face = np.empty(n, dtype=np.int8)
    per_ray = 1 if origins.shape[0] == n else 0
    for r in numba.prange(n):
        o = r * per_ray
        t, s, f = _cast_one(origins[o, 0], origins[o, 1], origins[o, 2], dirs[r, 0], dirs[r, 1], dirs[r, 2],
                            t_max[r], planes, nverts, zlo, zhi, start, items, zmax, gx0, gy0, cell, ncx, ncy, z_top)
        t_hit[r] = t
        solid[r] = s
        face[r] = f
    return t_hit, solid, face


@numba.njit(cache=True, parallel=True)
def _bruteforce_kernel(origins, dirs, t_max, planes, nverts, zlo, zhi):
    n = dirs.shape[0]
    t_hit = np.full(n, np.inf)
    solid = np.full(n, -1, dtype=np.int32)
    face = np.full(n, -1, dtype=np.int8)
    per_ray = 1 if origins.shape[0] == n else 0
    for r in numba.prange(n):
        o = r * per_ray
        best = t_max[r]
        for s in range(nverts.shape[0]):
            t, f = _prism_hit(planes, nverts, zlo, zhi, s, origins[o, 0], origins[o, 1], origins[o, 2],
                              dirs[r, 0], dirs[r, 1], dirs[r, 2], T_MIN, best)
            if t < best:
                best = t
                t_hit[r] = t
                solid[r] = s
                face[r] = f
    return t_hit, solid, face


def _prepare(origins, directions, t_max):
    directions = np.ascontiguousarray(directions, dtype=np.float64).reshape(-1, 3)
    origins = np.ascontiguousarray(np.atleast_2d(origins), dtype=np.float64)
    if origins.shape[1] != 3 or origins.shape[0] not in (1, directions.shape[0]):
        raise ValueError(f"origins must have shape (3,), (1, 3) or (N, 3), got {origins.shape}")
    t_max = np.ascontiguousarray(np.broadcast_to(np.asarray(t_max, dtype=np.float64), directions.shape[:1]))
    return origins, directions, t_max


def cast_rays(scene: CastScene, origins: np.ndarray, directions: np.ndarray, t_max=np.inf):
    """Nearest solid along each ray.

    origins: (3,) or (N, 3); directions: (N, 3) (any length: parameters are in its units); t_max: scalar or (N,).
    Returns (t (N,) float64, inf for a miss; solid (N,) int32 index or -1; face (N,) int8: 0 bottom, 1 top,
    2 + e side e, -1 for a miss).
    """
    origins, directions, t_max = _prepare(origins, directions, t_max)
    s = scene.solids
    return _cast_kernel(origins, directions, t_max, scene.planes, s.nverts, s.zlo, s.zhi, scene.cell_start,
                        scene.cell_items, scene.cell_zmax, scene.grid_origin[0], scene.grid_origin[1],
                        scene.cell_size, scene.grid_cells[0], scene.grid_cells[1], scene.z_top)


def cast_rays_bruteforce(solids: Solids, origins: np.ndarray, directions: np.ndarray, t_max=np.inf):
    """:func:`cast_rays` without the grid: every ray against every solid. The reference implementation."""
    origins, directions, t_max = _prepare(origins, directions, t_max)
    return _bruteforce_kernel(origins, directions, t_max, edge_planes(solids), solids.nverts, solids.zlo,
                              solids.zhi)


def face_normals(planes: np.ndarray, solid: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Outward unit normals (N, 3) of the faces hit (zeros for misses)."""
    normal = np.zeros((len(solid), 3))
    hit = solid >= 0
    normal[hit & (face == FACE_BOTTOM), 2] = -1.0
    normal[hit & (face == FACE_TOP), 2] = 1.0
    side = hit & (face >= FACE_SIDE)
    normal[side, :2] = planes[solid[side], face[side] - FACE_SIDE, :2]
    return normal


@numba.njit(cache=True, parallel=True)
def _coverage_kernel(origin, cam_rot, fx, fy, cx, cy, boxes, first, last, stride, planes, nverts, zlo, zhi):
    """Per object a: how many pixels (u, v multiples of ``stride`` in boxes[a]) see one of its solids
    first[a]..last[a]-1 when nothing else is in the way."""
    n = boxes.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for a in numba.prange(n):
        u0, v0, u1, v1 = boxes[a, 0], boxes[a, 1], boxes[a, 2], boxes[a, 3]
        u_start = u0 + (-u0) % stride
        v_start = v0 + (-v0) % stride
        count = 0
        for v in range(v_start, v1 + 1, stride):
            ry = (v - cy) / fy
            for u in range(u_start, u1 + 1, stride):
                rx = (u - cx) / fx
                dx = cam_rot[0, 0] * rx + cam_rot[0, 1] * ry + cam_rot[0, 2]
                dy = cam_rot[1, 0] * rx + cam_rot[1, 1] * ry + cam_rot[1, 2]
                dz = cam_rot[2, 0] * rx + cam_rot[2, 1] * ry + cam_rot[2, 2]
                for s in range(first[a], last[a]):
                    t, f = _prism_hit(planes, nverts, zlo, zhi, s, origin[0], origin[1], origin[2], dx, dy, dz,
                                      T_MIN, np.inf)
                    if f >= 0:
                        count += 1
                        break
        counts[a] = count
    return counts


def count_unoccluded(scene: CastScene, world_T_cam: np.ndarray, K: np.ndarray, boxes: np.ndarray,
                     first: np.ndarray, last: np.ndarray, stride: int = 1) -> np.ndarray:
    """For each object: the pixels (every ``stride``-th row and column of its pixel box [u0, v0, u1, v1]) whose
    ray would hit one of its solids ``first..last-1`` if nothing occluded it. Returns (A,) int64.

    world_T_cam: (4, 4) camera -> frame of ``scene``; K: (3, 3) without skew; boxes: (A, 4) int inclusive.
    """
    s = scene.solids
    K = np.asarray(K, dtype=np.float64)
    return _coverage_kernel(np.ascontiguousarray(world_T_cam[:3, 3], dtype=np.float64),
                            np.ascontiguousarray(world_T_cam[:3, :3], dtype=np.float64), K[0, 0], K[1, 1], K[0, 2],
                            K[1, 2], np.ascontiguousarray(boxes, dtype=np.int64),
                            np.ascontiguousarray(first, dtype=np.int64), np.ascontiguousarray(last, dtype=np.int64),
                            int(stride), scene.planes, s.nverts, s.zlo, s.zhi)
