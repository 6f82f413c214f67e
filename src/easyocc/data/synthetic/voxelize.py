"""Exact Occ3D ground truth from prisms, and the camera and LiDAR visibility masks.

Semantics (the lead's rules):
- a voxel is occupied iff it intersects a solid with positive volume; the overlap of prism and voxel is computed
  exactly (polygon/square clipping area times the z overlap), and overlaps smaller than ``TOUCH_TOLERANCE`` of a
  voxel in area or height count as touching (float rounding on shared faces), not intersecting;
- its class is the class with the largest total overlap volume; objects win ties over ground classes
  (``GROUND_CLASSES``), then the lower class id wins;
- everything else is free (17). The ground slab is z in [-0.2, h] with h < 0.2, so it fills layer k = 2 only and
  the voxels below it are free (and, being behind the ground, never observed).
"""

from __future__ import annotations

import numba
import numpy as np

from easyocc.data.synthetic.ground import GROUND_BOTTOM
from easyocc.data.synthetic.solids import Solids
from easyocc.occ3d import CLASS_IDS, FREE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid
from easyocc.raycast import mark_traversed_m

#: Classes of the ground tiles; any other class is an object and wins a tie against them.
GROUND_CLASSES = tuple(CLASS_IDS[n] for n in ("driveable_surface", "other_flat", "sidewalk", "terrain"))
#: Relative size (of the voxel edge / face) below which an overlap counts as touching.
TOUCH_TOLERANCE = 1e-6
#: Volumes within this relative difference are a tie.
TIE_TOLERANCE = 1e-5


@numba.njit(cache=True, inline="always")
def _clip_edge(src, n, dst, axis, bound, keep_greater):
    """Sutherland-Hodgman: clip polygon src[:n] to the half-plane coord[axis] >= bound (or <=). Returns size."""
    m = 0
    for i in range(n):
        ax, ay = src[i, 0], src[i, 1]
        bx, by = src[(i + 1) % n, 0], src[(i + 1) % n, 1]
        a = ax if axis == 0 else ay
        b = bx if axis == 0 else by
        a_in = a >= bound if keep_greater else a <= bound
        b_in = b >= bound if keep_greater else b <= bound
        if a_in:
            dst[m, 0] = ax
            dst[m, 1] = ay
            m += 1
        if a_in != b_in:
            t = (bound - a) / (b - a)
            dst[m, 0] = ax + t * (bx - ax)
            dst[m, 1] = ay + t * (by - ay)
            m += 1
    return m


@numba.njit(cache=True)
def _square_overlap(poly, n, x0, y0, x1, y1, buf_a, buf_b):
    """Area of convex polygon poly[:n] inside the rectangle [x0, x1] x [y0, y1]."""
    for i in range(n):
        buf_a[i, 0] = poly[i, 0]
        buf_a[i, 1] = poly[i, 1]
    m = _clip_edge(buf_a, n, buf_b, 0, x0, True)
    m = _clip_edge(buf_b, m, buf_a, 0, x1, False)
    m = _clip_edge(buf_a, m, buf_b, 1, y0, True)
    m = _clip_edge(buf_b, m, buf_a, 1, y1, False)
    area = 0.0
    for i in range(m):
        j = (i + 1) % m
        area += buf_a[i, 0] * buf_a[j, 1] - buf_a[j, 0] * buf_a[i, 1]
    return 0.5 * abs(area)


@numba.njit(cache=True, inline="always")
def _inside(poly, n, x, y):
    """Is (x, y) inside (or on) the counter-clockwise convex polygon poly[:n]?"""
    for i in range(n):
        j = (i + 1) % n
        if (poly[j, 0] - poly[i, 0]) * (y - poly[i, 1]) - (poly[j, 1] - poly[i, 1]) * (x - poly[i, 0]) < 0.0:
            return False
    return True


@numba.njit(cache=True)
def _accumulate(verts, nverts, zlo, zhi, cls, ground_slot, lower, size, shape, object_volumes, ground_volumes,
                occupied, touch):
    """Add every prism's exact overlap volume with the voxels it touches, per class.

    Ground prisms (ground_slot >= 0) all lie in one layer, so they go to the compact (X, Y, G) ``ground_volumes``
    (slot = which ground class) with the layer index; everything else to (X, Y, Z, C) ``object_volumes``.
    """
    nx, ny, nz = shape
    buf_a = np.empty((4 * verts.shape[1] + 8, 2))
    buf_b = np.empty((4 * verts.shape[1] + 8, 2))
    min_area = touch * size * size
    min_dz = touch * size
    full = size * size
    for s in range(verts.shape[0]):
        n = nverts[s]
        poly = verts[s]
        xmin, ymin = np.inf, np.inf
        xmax, ymax = -np.inf, -np.inf
        for v in range(n):
            xmin = min(xmin, poly[v, 0])
            xmax = max(xmax, poly[v, 0])
            ymin = min(ymin, poly[v, 1])
            ymax = max(ymax, poly[v, 1])
        i0 = max(int(np.floor((xmin - lower[0]) / size)), 0)
        i1 = min(int(np.floor((xmax - lower[0]) / size)), nx - 1)
        j0 = max(int(np.floor((ymin - lower[1]) / size)), 0)
        j1 = min(int(np.floor((ymax - lower[1]) / size)), ny - 1)
        k0 = max(int(np.floor((zlo[s] - lower[2]) / size)), 0)
        k1 = min(int(np.floor((zhi[s] - lower[2]) / size)), nz - 1)
        if i0 > i1 or j0 > j1 or k0 > k1:
            continue
        c = cls[s]
        slot = ground_slot[s]
        for i in range(i0, i1 + 1):
            vx0 = lower[0] + i * size
            vx1 = vx0 + size
            for j in range(j0, j1 + 1):
                vy0 = lower[1] + j * size
                vy1 = vy0 + size
                if (_inside(poly, n, vx0, vy0) and _inside(poly, n, vx1, vy0) and _inside(poly, n, vx1, vy1)
                        and _inside(poly, n, vx0, vy1)):
                    area = full  # The whole square is inside the (convex) polygon.
                else:
                    area = _square_overlap(poly, n, vx0, vy0, vx1, vy1, buf_a, buf_b)
                if area <= min_area:
                    continue
                for k in range(k0, k1 + 1):
                    vz0 = lower[2] + k * size
                    dz = min(zhi[s], vz0 + size) - max(zlo[s], vz0)
                    if dz <= min_dz:
                        continue
                    if slot >= 0:
                        ground_volumes[i, j, slot] += area * dz
                    else:
                        object_volumes[i, j, k, c] += area * dz
                    occupied[i, j, k] = 1


@numba.njit(cache=True, parallel=True)
def _choose(object_volumes, ground_volumes, ground_ids, ground_layer, occupied, free, tie):
    """Class of each occupied voxel: the largest volume; objects win ties against ground, then lower ids."""
    nx, ny, nz, nc = object_volumes.shape
    out = np.full((nx, ny, nz), free, dtype=np.uint8)
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                if not occupied[i, j, k]:
                    continue
                best = -1
                best_v = 0.0
                best_ground = False
                if k == ground_layer:
                    for g in range(ground_ids.shape[0]):
                        v = ground_volumes[i, j, g]
                        if v > 0.0 and (best < 0 or v > best_v * (1.0 + tie)):
                            best, best_v, best_ground = ground_ids[g], v, True
                for c in range(nc):
                    v = object_volumes[i, j, k, c]
                    if v <= 0.0:
                        continue
                    if best < 0 or v > best_v * (1.0 + tie) or (best_ground and v >= best_v * (1.0 - tie)):
                        best, best_v, best_ground = c, max(v, best_v) if best_ground else v, False
                out[i, j, k] = best
    return out


def voxelize(solids: Solids, grid: VoxelGrid = OCC3D_GRID) -> np.ndarray:
    """Occ3D semantics (X, Y, Z) uint8 of prisms given in the grid's frame (the keyframe's ego frame).

    Ground prisms (classes ``GROUND_CLASSES``) must lie within z in [GROUND_BOTTOM, 0.2) (Occ3D layer k = 2).
    """
    bounds = solids.bounds_xy()
    lo, hi = np.asarray(grid.lower), np.asarray(grid.upper)
    near = ((bounds[:, 2] > lo[0]) & (bounds[:, 0] < hi[0]) & (bounds[:, 3] > lo[1]) & (bounds[:, 1] < hi[1])
            & (solids.zhi > lo[2]) & (solids.zlo < hi[2]))
    s = solids.select(near)
    ground_ids = np.array(GROUND_CLASSES, dtype=np.int64)
    slot_of_class = np.full(256, -1, dtype=np.int64)
    slot_of_class[ground_ids] = np.arange(len(ground_ids))
    slots = slot_of_class[s.cls]
    layer = int(np.floor((GROUND_BOTTOM - grid.lower[2]) / grid.voxel_size + 0.5))
    if len(s) and (slots >= 0).any():
        g = slots >= 0
        layer_lo = grid.lower[2] + layer * grid.voxel_size
        if s.zlo[g].min() < layer_lo - 1e-9 or s.zhi[g].max() > layer_lo + grid.voxel_size + 1e-9:
            raise ValueError("ground prisms must lie within one voxel layer")
    shape = grid.shape
    # float32 halves the memory touched; sums of a few exact overlaps stay far inside TIE_TOLERANCE.
    object_volumes = np.zeros(shape + (NUM_SEMANTIC_CLASSES,), dtype=np.float32)
    ground_volumes = np.zeros(shape[:2] + (len(ground_ids),), dtype=np.float64)
    occupied = np.zeros(shape, dtype=np.uint8)
    _accumulate(s.verts, s.nverts, s.zlo, s.zhi, s.cls.astype(np.int64), slots, grid.lower_array,
                float(grid.voxel_size), shape, object_volumes, ground_volumes, occupied, TOUCH_TOLERANCE)
    return _choose(object_volumes, ground_volumes, ground_ids, layer, occupied, FREE, TIE_TOLERANCE)


def camera_mask(semantics: np.ndarray, origins: list[np.ndarray], directions: list[np.ndarray],
                grid: VoxelGrid = OCC3D_GRID) -> np.ndarray:
    """Voxels the cameras observe: each ray marks the voxels it passes through up to, and including, the first
    occupied one. origins[c]: (3,) camera centre, directions[c]: (N, 3) unit rays, both in the grid's frame."""
    occupied = semantics != FREE
    mask = np.zeros(grid.shape, dtype=np.uint8)
    for origin, dirs in zip(origins, directions):
        mark_traversed_m(origin, dirs, np.inf, occupied=occupied, grid=grid, out=mask)
    return mask


def lidar_mask(origins: list[np.ndarray], points: list[np.ndarray], grid: VoxelGrid = OCC3D_GRID) -> np.ndarray:
    """Voxels LiDAR returns observe: each ray marks the voxels from its sensor up to its return, and the return's
    voxel. origins[i]: (3,) sensor position, points[i]: (N, 3) returns, in the grid's frame."""
    mask = np.zeros(grid.shape, dtype=np.uint8)
    for origin, pts in zip(origins, points):
        offset = np.asarray(pts, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
        rng = np.linalg.norm(offset, axis=1)
        ok = rng > 0
        dirs = offset[ok] / rng[ok, None]
        # A hair past the return so that a return exactly on a voxel face still marks the voxel behind the face.
        mark_traversed_m(origin, dirs, rng[ok] + 1e-4, grid=grid, out=mask)
    return mask
