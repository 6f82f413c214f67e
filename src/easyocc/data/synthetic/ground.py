"""The ground: an exact partition of the plane into axis-aligned tiles, each a slab from z = -0.2 m up to its height.

Tiles are painted one over the other (a road strip over the sidewalk strips it crosses); painting cuts what lies
under the new tile out of the old tiles, so tiles never overlap and the ground's voxel ground truth is exact.
"""

from __future__ import annotations

import numpy as np

from easyocc.data.synthetic.solids import SolidBuilder, box_from_bounds

#: Bottom of every ground slab in the ego frame: Occ3D's ground layer k = 2 spans [-0.2, 0.2).
GROUND_BOTTOM = -0.2


class GroundPlan:
    """Axis-aligned tiles [x0, y0, x1, y1] with class, height, material and colour, covering ``bounds``."""

    def __init__(self, bounds, cls: int, height: float, material: int, color) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.rects = self.bounds[None].copy()
        self.attrs: list[tuple[int, float, int, tuple]] = [(cls, height, material, tuple(color))]

    def __len__(self) -> int:
        return len(self.rects)

    def paint(self, x0: float, y0: float, x1: float, y1: float, cls: int, height: float, material: int,
              color) -> None:
        """Make [x0, x1] x [y0, y1] (clipped to the bounds) one tile, cutting it out of the tiles below."""
        bx0, by0, bx1, by1 = self.bounds
        x0, y0, x1, y1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
        if x1 - x0 < 1e-6 or y1 - y0 < 1e-6:
            return
        r = self.rects
        hit = (r[:, 0] < x1) & (r[:, 2] > x0) & (r[:, 1] < y1) & (r[:, 3] > y0)
        keep_rects = [r[~hit]]
        keep_attrs = [a for a, h in zip(self.attrs, hit) if not h]
        for idx in np.flatnonzero(hit):
            tx0, ty0, tx1, ty1 = r[idx]
            pieces = []
            if tx0 < x0:
                pieces.append((tx0, ty0, x0, ty1))
            if tx1 > x1:
                pieces.append((x1, ty0, tx1, ty1))
            mx0, mx1 = max(tx0, x0), min(tx1, x1)
            if ty0 < y0:
                pieces.append((mx0, ty0, mx1, y0))
            if ty1 > y1:
                pieces.append((mx0, y1, mx1, ty1))
            pieces = [p for p in pieces if p[2] - p[0] > 1e-6 and p[3] - p[1] > 1e-6]
            if pieces:
                keep_rects.append(np.array(pieces))
                keep_attrs.extend([self.attrs[idx]] * len(pieces))
        keep_rects.append(np.array([[x0, y0, x1, y1]]))
        keep_attrs.append((cls, height, material, tuple(color)))
        self.rects = np.concatenate(keep_rects)
        self.attrs = keep_attrs

    def lookup(self, x: float, y: float) -> tuple[int, float]:
        """(class, height) of the tile under (x, y)."""
        r = self.rects
        inside = np.flatnonzero((r[:, 0] <= x) & (x < r[:, 2]) & (r[:, 1] <= y) & (y < r[:, 3]))
        if inside.size == 0:
            raise ValueError(f"({x:.2f}, {y:.2f}) is outside the ground")
        cls, height, _, _ = self.attrs[inside[0]]
        return cls, height

    def heights_under(self, polygon: np.ndarray) -> np.ndarray:
        """Heights of every tile a convex polygon's bounding box touches (to check it stands on flat ground)."""
        x0, y0 = polygon.min(axis=0)
        x1, y1 = polygon.max(axis=0)
        r = self.rects
        hit = (r[:, 0] < x1) & (r[:, 2] > x0) & (r[:, 1] < y1) & (r[:, 3] > y0)
        return np.array([self.attrs[i][1] for i in np.flatnonzero(hit)])

    def add_to(self, builder: SolidBuilder) -> None:
        for rect, (cls, height, material, color) in zip(self.rects, self.attrs):
            builder.add(box_from_bounds(*rect), GROUND_BOTTOM, height, cls, color, material)

    def total_area(self) -> float:
        r = self.rects
        return float(((r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])).sum())

    def raster(self, classes: set[int], resolution: float, size: tuple[int, int], to_map) -> np.ndarray:
        """A binary (rows, cols) uint8 image (255 where a tile of ``classes`` lies) of a map whose pixel (col, row)
        covers x in [col, col+1) * resolution and y in [rows - row - 1, rows - row) * resolution (the nuScenes map
        convention, y up). ``to_map`` maps (N, 2) tile corners to map coordinates (a rotation by a multiple of 90
        degrees and a translation, so tiles stay axis-aligned)."""
        cols, rows = size
        image = np.zeros((rows, cols), dtype=np.uint8)
        for rect, (cls, _, _, _) in zip(self.rects, self.attrs):
            if cls not in classes:
                continue
            corners = to_map(np.array([[rect[0], rect[1]], [rect[2], rect[3]]]))
            (mx0, my0), (mx1, my1) = corners.min(axis=0), corners.max(axis=0)
            c0, c1 = (int(np.clip(np.round(v / resolution), 0, cols)) for v in (mx0, mx1))
            r0, r1 = (int(np.clip(rows - np.round(v / resolution), 0, rows)) for v in (my1, my0))
            image[r0:r1, c0:c1] = 255
        return image
