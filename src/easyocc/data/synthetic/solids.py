"""The one kind of solid SimScenes is built from: a vertical convex prism.

A prism is a convex polygon in the xy plane (counter-clockwise, at most ``MAX_VERTS`` vertices) extruded over
``[zlo, zhi]``. Oriented boxes (4 vertices), cylinders (regular 12-gons) and ground tiles are all prisms, and the
world is flat and every pose is a yaw, so prisms stay prisms in every frame the generator uses. That keeps ray
casting (Cyrus-Beck clipping against the side planes and the two caps) and the voxel ground truth (exact polygon /
square clipping times the z overlap) exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_VERTS = 12

# Surface materials: how the shader textures a solid (the class decides nothing about looks beyond its colour).
MAT_PLAIN = 0
MAT_ROAD = 1
MAT_SIDEWALK = 2
MAT_TERRAIN = 3
MAT_BUILDING = 4
MAT_VEGETATION = 5
MAT_GLASS = 6
MAT_STRIPED = 7
MAT_SIGN = 8


@dataclass
class Solids:
    """A batch of S prisms as arrays.

    verts: (S, MAX_VERTS, 2) float64 counter-clockwise xy vertices (rows past ``nverts`` repeat the last vertex);
    nverts: (S,) int32; zlo, zhi: (S,) float64; cls: (S,) uint8 Occ3D class; owner: (S,) int32 agent index or -1
    for scenery; color: (S, 3) float32 base RGB in [0, 1]; material: (S,) int8 (``MAT_*``).
    """

    verts: np.ndarray
    nverts: np.ndarray
    zlo: np.ndarray
    zhi: np.ndarray
    cls: np.ndarray
    owner: np.ndarray
    color: np.ndarray
    material: np.ndarray

    def __len__(self) -> int:
        return int(self.nverts.shape[0])

    @staticmethod
    def empty() -> "Solids":
        return Solids(
            np.zeros((0, MAX_VERTS, 2)), np.zeros(0, np.int32), np.zeros(0), np.zeros(0), np.zeros(0, np.uint8),
            np.zeros(0, np.int32), np.zeros((0, 3), np.float32), np.zeros(0, np.int8),
        )

    @staticmethod
    def concat(parts: list["Solids"]) -> "Solids":
        parts = [p for p in parts if len(p)] or [Solids.empty()]
        return Solids(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def select(self, index) -> "Solids":
        return Solids(*(getattr(self, f)[index] for f in _FIELDS))

    def bounds_xy(self) -> np.ndarray:
        """(S, 4) float64 [xmin, ymin, xmax, ymax] of each prism."""
        return np.concatenate([self.verts.min(axis=1), self.verts.max(axis=1)], axis=1)

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Solids":
        """The prisms moved by per-prism yaw rotations and translations.

        rotation: (S, 2, 2) or (2, 2); translation: (S, 2) or (2,) -- applied as ``R @ v + t``.
        """
        rotation = np.broadcast_to(rotation, (len(self), 2, 2))
        translation = np.broadcast_to(translation, (len(self), 2))
        verts = np.einsum("sij,svj->svi", rotation, self.verts) + translation[:, None, :]
        return Solids(verts, self.nverts, self.zlo, self.zhi, self.cls, self.owner, self.color, self.material)

    def shifted_z(self, dz: np.ndarray) -> "Solids":
        return Solids(self.verts, self.nverts, self.zlo + dz, self.zhi + dz, self.cls, self.owner, self.color,
                      self.material)


_FIELDS = ("verts", "nverts", "zlo", "zhi", "cls", "owner", "color", "material")


class SolidBuilder:
    """Collects prisms one by one, then packs them into :class:`Solids`."""

    def __init__(self) -> None:
        self._rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, polygon: np.ndarray, zlo: float, zhi: float, cls: int, color, material: int = MAT_PLAIN,
            owner: int = -1) -> None:
        """Add a prism; ``polygon`` is (V, 2) counter-clockwise, 3 <= V <= MAX_VERTS."""
        polygon = np.asarray(polygon, dtype=np.float64)
        if not (3 <= len(polygon) <= MAX_VERTS):
            raise ValueError(f"a prism needs 3..{MAX_VERTS} vertices, got {len(polygon)}")
        if not zhi > zlo:
            raise ValueError(f"empty prism: zlo={zlo} zhi={zhi}")
        self._rows.append((polygon, float(zlo), float(zhi), int(cls), tuple(color), int(material), int(owner)))

    def build(self) -> Solids:
        n = len(self._rows)
        if n == 0:
            return Solids.empty()
        verts = np.empty((n, MAX_VERTS, 2))
        nverts = np.empty(n, np.int32)
        for i, row in enumerate(self._rows):
            poly = row[0]
            nverts[i] = len(poly)
            verts[i, : len(poly)] = poly
            verts[i, len(poly):] = poly[-1]
        zlo, zhi, cls, color, material, owner = (np.array([r[k] for r in self._rows]) for k in range(1, 7))
        return Solids(verts, nverts, zlo.astype(np.float64), zhi.astype(np.float64), cls.astype(np.uint8),
                      owner.astype(np.int32), color.astype(np.float32), material.astype(np.int8))


def rectangle(cx: float, cy: float, length: float, width: float, yaw: float = 0.0) -> np.ndarray:
    """(4, 2) counter-clockwise corners of a ``length`` (along yaw) x ``width`` rectangle centred at (cx, cy)."""
    hl, hw = 0.5 * length, 0.5 * width
    local = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]])
    c, s = np.cos(yaw), np.sin(yaw)
    return local @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])


def box_from_bounds(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """(4, 2) counter-clockwise corners of the axis-aligned rectangle [x0, x1] x [y0, y1]."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def regular_polygon(cx: float, cy: float, radius: float, sides: int = 12, phase: float = 0.0) -> np.ndarray:
    """(sides, 2) counter-clockwise vertices of a regular polygon (a cylinder's cross-section)."""
    angles = phase + np.arange(sides) * (2.0 * np.pi / sides)
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)


def edge_planes(solids: Solids) -> np.ndarray:
    """Side planes of each prism: (S, MAX_VERTS, 3) float64 rows (nx, ny, d), inside where nx*x + ny*y <= d.

    Edge e runs from vertex e to vertex e+1 (mod nverts); the outward normal of a counter-clockwise edge (ex, ey)
    is (ey, -ex). Rows past ``nverts`` are (0, 0, 1): always satisfied.
    """
    verts, nverts = solids.verts, solids.nverts
    s_count = len(solids)
    idx = np.arange(MAX_VERTS)
    nxt = (idx[None, :] + 1) % np.maximum(nverts[:, None], 1)
    v0 = verts
    v1 = np.take_along_axis(verts, nxt[..., None].repeat(2, axis=2), axis=1)
    edge = v1 - v0
    length = np.linalg.norm(edge, axis=2)
    valid = (idx[None, :] < nverts[:, None]) & (length > 0)
    normal = np.stack([edge[..., 1], -edge[..., 0]], axis=2) / np.where(length > 0, length, 1.0)[..., None]
    d = np.einsum("svi,svi->sv", normal, v0)
    planes = np.zeros((s_count, MAX_VERTS, 3))
    planes[..., 2] = 1.0
    planes[valid, 0:2] = normal[valid]
    planes[valid, 2] = d[valid]
    return planes


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """(N, 2, 2) rotation matrices of yaw angles (N,)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)
