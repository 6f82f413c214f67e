"""Voxel volumes as light triangle meshes: only the exposed faces, merged into rectangles.

A voxel of group g shows a face toward a neighbour that is not of group g (another group, nothing, or outside the
grid). Each group's surface is therefore closed on its own: hiding one group (a class toggled off) never opens holes
in the others; where two groups touch, both faces are drawn back to back and the hidden one is culled.
Coplanar exposed faces of one group are then merged greedily into rectangles, so a flat road of 40,000 voxels
becomes a few dozen quads and a full Occ3D volume stays light enough to orbit in a browser.

Coordinates: volumes are indexed [x, y, z]; vertices come out in metres in the volume's frame (the keyframe's ego
frame for Occ3D), through a :class:`~easyocc.occ3d.VoxelGrid`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from easyocc.occ3d import OCC3D_GRID, VoxelGrid

#: The six face directions as (axis, sign): -x, +x, -y, +y, -z, +z.
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1))
EMPTY = -1


def exposed_faces(groups: np.ndarray) -> np.ndarray:
    """Which voxel faces are exposed.

    groups: (X, Y, Z) integer array, a group id >= 0 per shown voxel, ``EMPTY`` (-1) elsewhere.
    Returns (6, X, Y, Z) bool, one plane per direction of ``DIRECTIONS``: the voxel is shown and its neighbour in
    that direction is not of its group (or lies outside the grid).
    """
    groups = np.asarray(groups)
    if groups.ndim != 3:
        raise ValueError(f"groups must be (X, Y, Z), got shape {groups.shape}")
    groups = groups.astype(np.int32, copy=False)
    padded = np.pad(groups, 1, constant_values=EMPTY)
    shown = groups >= 0
    inner = (slice(1, -1),) * 3
    out = np.empty((len(DIRECTIONS),) + groups.shape, dtype=bool)
    for d, (axis, sign) in enumerate(DIRECTIONS):
        index = list(inner)
        index[axis] = slice(1 + sign, padded.shape[axis] - 1 + sign)
        out[d] = shown & (padded[tuple(index)] != groups)
    return out


@numba.njit(cache=True, nogil=True)
def _greedy_rectangles(labels, out):
    """Greedy merge per slice: labels (S, U, V) int32 (-1 = no face); writes rows (s, u, v, du, dv, label) into
    ``out`` and returns how many. Each rectangle grows along v first, then along u while whole rows match."""
    n_s, n_u, n_v = labels.shape
    used = np.zeros((n_u, n_v), dtype=np.bool_)
    count = 0
    for s in range(n_s):
        used[:, :] = False
        for u in range(n_u):
            for v in range(n_v):
                label = labels[s, u, v]
                if label < 0 or used[u, v]:
                    continue
                dv = 1
                while v + dv < n_v and labels[s, u, v + dv] == label and not used[u, v + dv]:
                    dv += 1
                du = 1
                while u + du < n_u:
                    row_ok = True
                    for w in range(v, v + dv):
                        if labels[s, u + du, w] != label or used[u + du, w]:
                            row_ok = False
                            break
                    if not row_ok:
                        break
                    du += 1
                used[u : u + du, v : v + dv] = True
                out[count, 0] = s
                out[count, 1] = u
                out[count, 2] = v
                out[count, 3] = du
                out[count, 4] = dv
                out[count, 5] = label
                count += 1
    return count


#: The in-plane axes (u, v) of a face normal to each axis, in cyclic order so that e_u x e_v = e_axis.
_PLANE_AXES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}


@dataclass(frozen=True)
class Quads:
    """Axis-aligned rectangles on voxel faces, in voxel units.

    corners: (N, 4, 3) int32 lattice corners, counter-clockwise seen from outside (the face normal's side);
    group: (N,) int32 group id of the voxels they bound; area: (N,) int32 unit faces each covers.
    """

    corners: np.ndarray
    group: np.ndarray
    area: np.ndarray

    def __len__(self) -> int:
        return len(self.group)


def surface_quads(groups: np.ndarray) -> Quads:
    """The exposed faces of ``groups`` (see :func:`exposed_faces`) merged greedily into rectangles per plane and
    group. groups: (X, Y, Z) int, -1 = empty."""
    groups = np.asarray(groups).astype(np.int32, copy=False)
    faces = exposed_faces(groups)
    corners, group, area = [], [], []
    for d, (axis, sign) in enumerate(DIRECTIONS):
        if not faces[d].any():
            continue
        u_axis, v_axis = _PLANE_AXES[axis]
        labels = np.where(faces[d], groups, EMPTY).transpose(axis, u_axis, v_axis)
        labels = np.ascontiguousarray(labels)
        rows = np.empty((int(faces[d].sum()), 6), dtype=np.int32)
        rows = rows[: _greedy_rectangles(labels, rows)]
        s, u, v, du, dv = (rows[:, i] for i in range(5))
        plane = s + (1 if sign > 0 else 0)  # the face lies on the voxel's far side along +axis
        quad = np.zeros((len(rows), 4, 3), dtype=np.int32)
        quad[:, :, axis] = plane[:, None]
        # Corners (u, v), (u+du, v), (u+du, v+dv), (u, v+dv): counter-clockwise about +axis (e_u x e_v = e_axis).
        quad[:, :, u_axis] = np.stack([u, u + du, u + du, u], axis=1)
        quad[:, :, v_axis] = np.stack([v, v, v + dv, v + dv], axis=1)
        if sign < 0:
            quad = quad[:, ::-1]  # counter-clockwise about -axis
        corners.append(quad)
        group.append(rows[:, 5])
        area.append(du * dv)
    if not corners:
        return Quads(np.zeros((0, 4, 3), np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32))
    return Quads(np.concatenate(corners), np.concatenate(group), np.concatenate(area))


@dataclass(frozen=True)
class TriangleMesh:
    """vertices: (V, 3) float32 metres; faces: (F, 3) uint32 vertex indices, counter-clockwise seen from outside."""

    vertices: np.ndarray
    faces: np.ndarray


def quads_to_mesh(quads: Quads, grid: VoxelGrid = OCC3D_GRID) -> TriangleMesh:
    """Two triangles per quad; corners shared between quads become one vertex (the meshes are drawn with flat
    shading, so shared vertices need no common normal)."""
    if len(quads) == 0:
        return TriangleMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32))
    corners = quads.corners.reshape(-1, 3).astype(np.int64)
    # One integer per lattice point: a 1-D unique is several times faster than np.unique(axis=0).
    radix = corners.max(axis=0) + 1
    keys = (corners[:, 0] * radix[1] + corners[:, 1]) * radix[2] + corners[:, 2]
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    lattice = np.stack([unique_keys // (radix[1] * radix[2]), unique_keys // radix[2] % radix[1],
                        unique_keys % radix[2]], axis=1)
    index = inverse.reshape(-1, 4).astype(np.uint32)
    faces = np.concatenate([index[:, [0, 1, 2]], index[:, [0, 2, 3]]])
    vertices = (grid.lower_array + lattice * grid.voxel_size).astype(np.float32)
    return TriangleMesh(vertices, faces)


def group_meshes(groups: np.ndarray, grid: VoxelGrid = OCC3D_GRID) -> dict[int, TriangleMesh]:
    """One mesh per group id present in ``groups`` (X, Y, Z) int (-1 = empty): its exposed faces, merged."""
    quads = surface_quads(groups)
    meshes = {}
    for g in np.unique(quads.group):
        keep = quads.group == g
        meshes[int(g)] = quads_to_mesh(Quads(quads.corners[keep], quads.group[keep], quads.area[keep]), grid)
    return meshes
