"""The viewer's voxel surfaces: exposed faces of hand-made grids, their merge into rectangles, and the triangles."""

from __future__ import annotations

import numpy as np
import pytest

from easyocc.occ3d import OCC3D_GRID, VoxelGrid
from easyocc.viewer.meshing import DIRECTIONS, EMPTY, exposed_faces, group_meshes, quads_to_mesh, surface_quads

UNIT = VoxelGrid(lower=(0.0, 0.0, 0.0), upper=(8.0, 8.0, 8.0), voxel_size=1.0)


def grid(shape=(5, 5, 5)) -> np.ndarray:
    return np.full(shape, EMPTY, dtype=np.int32)


@pytest.mark.parametrize("fill, expected", [
    ({(2, 2, 2): 4}, 6),  # one voxel
    ({(1, 2, 2): 4, (2, 2, 2): 4}, 10),  # two of one class share a hidden pair of faces
    ({(1, 2, 2): 4, (2, 2, 2): 11}, 12),  # two classes: each closed on its own
    ({(1, 1, 1): 4, (2, 1, 1): 4, (1, 2, 1): 4}, 14),  # an L of three: 18 - 2 shared pairs
    ({(1, 1, 1): 4, (3, 3, 3): 4}, 12),  # apart
])
def test_exposed_face_counts(fill, expected):
    g = grid()
    for ijk, cls in fill.items():
        g[ijk] = cls
    assert int(exposed_faces(g).sum()) == expected


def test_exposed_faces_of_a_block_and_at_the_grid_border():
    g = grid((4, 3, 2))
    g[:2, :2, :2] = 7  # a 2x2x2 block in the corner: faces toward outside the grid count too
    faces = exposed_faces(g)
    assert int(faces.sum()) == 24
    g[:] = 3  # the whole grid: its outer surface, 2 * (4*3 + 4*2 + 3*2)
    assert int(exposed_faces(g).sum()) == 52
    # Per direction: the +z faces of a 2x2x2 block are on its top layer only.
    g = grid((4, 3, 2))
    g[:2, :2, :2] = 7
    plus_z = DIRECTIONS.index((2, 1))
    expected = np.zeros(g.shape, bool)
    expected[:2, :2, 1] = True
    np.testing.assert_array_equal(faces[plus_z], expected)


def test_rectangles_of_a_box_are_its_six_sides():
    g = grid((6, 6, 6))
    g[1:4, 1:3, 1:5] = 11  # 3 x 2 x 4
    quads = surface_quads(g)
    assert len(quads) == 6
    assert sorted(quads.area.tolist()) == [6, 6, 8, 8, 12, 12]
    assert set(quads.group.tolist()) == {11}


def _unit_faces_of(quads) -> list[tuple]:
    """Each quad split back into unit faces: (direction, i, j, k) of the voxel that owns each face."""
    faces = []
    for corners in quads.corners:
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        axis = int(np.flatnonzero(lo == hi)[0])
        normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        sign = int(np.sign(normal[axis]))
        ranges = [range(lo[a], hi[a]) for a in range(3)]
        ranges[axis] = [lo[axis] - 1 if sign > 0 else lo[axis]]  # the voxel behind the face
        for i in ranges[0]:
            for j in ranges[1]:
                for k in ranges[2]:
                    faces.append((DIRECTIONS.index((axis, sign)), i, j, k))
    return faces


def test_rectangles_cover_exactly_the_exposed_faces_facing_out():
    rng = np.random.default_rng(0)
    g = np.where(rng.random((9, 7, 5)) < 0.45, rng.integers(0, 3, (9, 7, 5)), EMPTY).astype(np.int32)
    faces = exposed_faces(g)
    quads = surface_quads(g)
    covered = _unit_faces_of(quads)
    assert len(covered) == len(set(covered)) == int(faces.sum()) == int(quads.area.sum())
    assert set(covered) == {tuple(int(v) for v in f) for f in np.argwhere(faces)}
    # Each rectangle bounds voxels of its group (behind it), and its corners turn counter-clockwise seen from
    # outside: the normal (from the winding) points away from those voxels.
    for corners, group in zip(quads.corners, quads.group):
        centre = corners.mean(axis=0)
        normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        behind = np.floor(centre - 0.5 * np.sign(normal)).astype(int)
        assert g[tuple(behind)] == group
    assert len(quads) < faces.sum()  # merging did merge


def test_triangles_in_metres_with_outward_normals():
    g = grid((4, 4, 4))
    g[1:3, 1:3, 1:3] = 0
    mesh = quads_to_mesh(surface_quads(g), UNIT)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.uint32
    assert len(mesh.faces) == 12 and len(mesh.vertices) == 8  # a cube: two triangles a side, shared corners
    np.testing.assert_array_equal(mesh.vertices.min(axis=0), [1, 1, 1])
    np.testing.assert_array_equal(mesh.vertices.max(axis=0), [3, 3, 3])
    v = mesh.vertices[mesh.faces]
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    outward = v.mean(axis=1) - np.array([2.0, 2.0, 2.0])
    assert (np.einsum("ij,ij->i", normals, outward) > 0).all()
    # On the Occ3D grid, voxel [0, 0, 0] spans [-40, -39.6] x [-40, -39.6] x [-1, -0.6].
    g = np.full(OCC3D_GRID.shape, EMPTY, np.int32)
    g[0, 0, 0] = 4
    meshes = group_meshes(g)
    assert list(meshes) == [4]
    np.testing.assert_allclose(meshes[4].vertices.min(axis=0), [-40, -40, -1])
    np.testing.assert_allclose(meshes[4].vertices.max(axis=0), [-39.6, -39.6, -0.6], atol=1e-5)


def test_empty_and_bad_input():
    assert len(surface_quads(grid())) == 0
    assert group_meshes(grid()) == {}
    with pytest.raises(ValueError, match="X, Y, Z"):
        exposed_faces(np.zeros((3, 3)))
