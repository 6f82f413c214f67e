"""Keeping things apart while a world is built: convex footprints over time, with a height range each.

A candidate (a parked car, a walking pedestrian with its whole trajectory, a tree) is accepted only if its
footprint never overlaps an accepted one at a time when their height ranges overlap too. Overlap is the separating
axis test between convex polygons, vectorised over (entry, time) pairs after a bounding-circle pre-test.
"""

from __future__ import annotations

import numba
import numpy as np

from easyocc.data.synthetic.solids import MAX_VERTS


def pad_polygon(polygon: np.ndarray, size: int = MAX_VERTS) -> np.ndarray:
    """(..., V, 2) -> (..., size, 2), repeating the last vertex (degenerate edges never separate)."""
    v = polygon.shape[-2]
    if v == size:
        return polygon
    pad = np.repeat(polygon[..., -1:, :], size - v, axis=-2)
    return np.concatenate([polygon, pad], axis=-2)


@numba.njit(cache=True)
def _separated(p, q, m) -> bool:
    """Is one of p[m]'s edge normals a separating axis between convex polygons p[m] and q[m]?"""
    v = p.shape[1]
    for e in range(v):
        ax = p[m, (e + 1) % v, 1] - p[m, e, 1]
        ay = p[m, e, 0] - p[m, (e + 1) % v, 0]
        length = np.sqrt(ax * ax + ay * ay)
        if length == 0.0:
            continue  # Padding repeats a vertex: no edge, no axis.
        pmin = np.inf
        pmax = -np.inf
        qmin = np.inf
        qmax = -np.inf
        for k in range(v):
            a = ax * p[m, k, 0] + ay * p[m, k, 1]
            b = ax * q[m, k, 0] + ay * q[m, k, 1]
            pmin, pmax = min(pmin, a), max(pmax, a)
            qmin, qmax = min(qmin, b), max(qmax, b)
        tol = 1e-9 * length
        if pmax <= qmin + tol or qmax <= pmin + tol:
            return True
    return False


@numba.njit(cache=True)
def _overlap_kernel(a, b, out, stop_at_first):
    for m in range(a.shape[0]):
        out[m] = not (_separated(a, b, m) or _separated(b, a, m))
        if out[m] and stop_at_first:
            return


def convex_overlap(a: np.ndarray, b: np.ndarray, any_only: bool = False) -> np.ndarray:
    """Do convex polygons overlap with positive area? a, b: (M, V, 2) counter-clockwise, padded alike.

    Returns (M,) bool (with ``any_only``, only as far as the first overlap).
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    out = np.zeros(a.shape[0], dtype=np.bool_)
    _overlap_kernel(a, b, out, any_only)
    return out


class _Entries:
    """A growing stack of padded polygons (shape ``(n,) + item_shape``) with height ranges and bounding circles."""

    def __init__(self, item_shape: tuple[int, ...]):
        self.n = 0
        self.polys = np.zeros((16,) + item_shape)
        self.z = np.zeros((16, 2))
        self.centre = np.zeros((16,) + item_shape[:-2] + (2,))
        self.radius = np.zeros((16,) + item_shape[:-2])

    def append(self, poly: np.ndarray, zlo: float, zhi: float) -> None:
        if self.n == len(self.polys):
            for name in ("polys", "z", "centre", "radius"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros_like(old)]))
        centre = poly.mean(axis=-2)
        self.polys[self.n] = poly
        self.z[self.n] = (zlo, zhi)
        self.centre[self.n] = centre
        self.radius[self.n] = np.linalg.norm(poly - centre[..., None, :], axis=-1).max(axis=-1)
        self.n += 1

    def view(self):
        n = self.n
        return self.polys[:n], self.z[:n], self.centre[:n], self.radius[:n]


class FootprintIndex:
    """Accepted footprints: static ones (V, 2) and moving ones sampled at the fixed ``times``."""

    def __init__(self, times: np.ndarray):
        self.times = np.asarray(times, dtype=np.float64)
        self._static = _Entries((MAX_VERTS, 2))
        self._moving = _Entries((len(self.times), MAX_VERTS, 2))

    def conflicts(self, polygon: np.ndarray, zlo: float, zhi: float) -> bool:
        """polygon: (V, 2) static, or (T, V, 2) at ``times``. True when it would overlap an accepted footprint."""
        poly = pad_polygon(np.asarray(polygon, dtype=np.float64))
        if poly.ndim == 2:
            poly = poly[None]
        centre = poly.mean(axis=-2)
        radius = np.sqrt(((poly - centre[..., None, :]) ** 2).sum(-1).max(axis=-1))
        for entries, is_moving in ((self._static, False), (self._moving, True)):
            if entries.n == 0:
                continue
            polys, z, c, r = entries.view()
            z_ok = (z[:, 0] < zhi) & (z[:, 1] > zlo)
            if not z_ok.any():
                continue
            if is_moving:
                # (E, T) entries against the candidate at the same times (a static candidate is broadcast).
                d2 = ((c - centre[None]) ** 2).sum(-1)
                near = (d2 < (r + radius[None, :]) ** 2) & z_ok[:, None]
                e_idx, t_idx = np.nonzero(near)
                if e_idx.size == 0:
                    continue
                a = polys[e_idx, t_idx]
                b = poly[t_idx] if len(poly) > 1 else np.repeat(poly, len(t_idx), axis=0)
            else:
                # (E,) static entries against the candidate at every time it has.
                d2 = ((c[:, None, :] - centre[None, :, :]) ** 2).sum(-1)
                near = (d2 < (r[:, None] + radius[None, :]) ** 2) & z_ok[:, None]
                e_idx, t_idx = np.nonzero(near)
                if e_idx.size == 0:
                    continue
                a = polys[e_idx]
                b = poly[t_idx]
            if convex_overlap(a, b, any_only=True).any():
                return True
        return False

    def add(self, polygon: np.ndarray, zlo: float, zhi: float) -> None:
        poly = pad_polygon(np.asarray(polygon, dtype=np.float64))
        if poly.ndim == 3 and len(poly) > 1:
            if len(poly) != len(self.times):
                raise ValueError("a moving footprint needs one polygon per sample time")
            self._moving.append(poly, zlo, zhi)
        else:
            self._static.append(poly.reshape(MAX_VERTS, 2), zlo, zhi)

    def try_add(self, polygon: np.ndarray, zlo: float, zhi: float) -> bool:
        if self.conflicts(polygon, zlo, zhi):
            return False
        self.add(polygon, zlo, zhi)
        return True
