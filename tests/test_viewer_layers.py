"""What the viewer draws: error categories of a constructed prediction, palette colours, camera-mask modes, frusta,
image overlays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from easyocc.geometry import make_transform, yaw_rotation
from easyocc.occ3d import CLASS_COLORS, CLASS_IDS, FREE, IGNORE, VoxelGrid
from easyocc.viewer import layers as L
from easyocc.viewer.meshing import exposed_faces

ROAD, CAR, TRUCK = CLASS_IDS["driveable_surface"], CLASS_IDS["car"], CLASS_IDS["truck"]
SMALL = VoxelGrid(lower=(0.0, 0.0, 0.0), upper=(4.0, 3.0, 2.0), voxel_size=1.0)


def test_error_categories_of_a_constructed_prediction():
    gt = np.full((4, 3, 2), FREE, np.uint8)
    pred = gt.copy()
    gt[0, 0, 0] = pred[0, 0, 0] = ROAD  # correct
    gt[1, 0, 0], pred[1, 0, 0] = CAR, TRUCK  # wrong class
    gt[2, 0, 0] = CAR  # missed: predicted free
    pred[3, 0, 0] = TRUCK  # hallucinated: GT free
    gt[0, 1, 0], pred[0, 1, 0] = IGNORE, CAR  # GT ignored: no category
    gt[1, 1, 0], pred[1, 1, 0] = CAR, IGNORE  # an ignored prediction is no prediction: missed
    out = L.error_categories(gt, pred)
    expected = np.full(gt.shape, -1, np.int16)
    expected[0, 0, 0], expected[1, 0, 0], expected[2, 0, 0] = L.CORRECT, L.WRONG_CLASS, L.MISSED
    expected[3, 0, 0], expected[1, 1, 0] = L.HALLUCINATED, L.MISSED
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="shapes differ"):
        L.error_categories(gt, pred[:2])


def test_error_colours_are_distinct_and_named():
    assert len(L.ERROR_NAMES) == len(L.ERROR_COLORS) == 4
    assert len({tuple(c) for c in L.ERROR_COLORS.tolist()}) == 4


def test_semantic_groups_follow_the_palette_and_the_camera_mask():
    sem = np.full((4, 3, 2), FREE, np.uint8)
    sem[:, :, 0] = ROAD
    sem[1, 1, 1] = CAR
    sem[3, 2, 1] = IGNORE  # never drawn
    observed = np.ones(sem.shape, np.uint8)
    observed[3, :, 0] = 0  # one row of road unobserved

    groups = L.semantic_layer_groups(sem, observed, "dim", SMALL)
    by_name = {g.name: g for g in groups}
    assert set(by_name) == {"car", "driveable_surface", "driveable_surface (unobserved)"}
    for g in groups:
        assert g.rgb == tuple(int(v) for v in CLASS_COLORS[g.category])
    assert by_name["driveable_surface"].rgb == (255, 0, 255)
    assert by_name["driveable_surface (unobserved)"].opacity == L.DIM_OPACITY
    assert by_name["car"].opacity is None and by_name["car"].observed
    # The unobserved row is its own closed surface: a 1x3x1 box, 6 rectangles = 12 triangles, 8 corners.
    dim = by_name["driveable_surface (unobserved)"].mesh
    assert (len(dim.faces), len(dim.vertices)) == (12, 8)
    np.testing.assert_array_equal(dim.vertices.min(axis=0), [3, 0, 0])

    hidden = {g.name: g for g in L.semantic_layer_groups(sem, observed, "hide", SMALL)}
    assert set(hidden) == {"car", "driveable_surface"}
    np.testing.assert_array_equal(hidden["driveable_surface"].mesh.vertices.max(axis=0), [3, 3, 1])
    shown = {g.name: g for g in L.semantic_layer_groups(sem, observed, "all", SMALL)}
    np.testing.assert_array_equal(shown["driveable_surface"].mesh.vertices.max(axis=0), [4, 3, 1])
    assert {g.name for g in L.semantic_layer_groups(sem, None, "dim", SMALL)} == {"car", "driveable_surface"}
    with pytest.raises(ValueError, match="camera-mask mode"):
        L.semantic_layer_groups(sem, observed, "fade", SMALL)


def test_error_groups_use_the_error_colours():
    gt = np.full((4, 3, 2), FREE, np.uint8)
    gt[:, :, 0] = ROAD
    pred = gt.copy()
    pred[0, 0, 0] = CAR
    pred[1, 1, 1] = TRUCK
    groups = {g.name: g for g in L.error_layer_groups(gt, pred, None, "all", SMALL)}
    assert set(groups) == {"correct", "wrong class", "hallucinated"}
    assert groups["wrong class"].rgb == tuple(int(v) for v in L.ERROR_COLORS[L.WRONG_CLASS])
    assert groups["hallucinated"].rgb == tuple(int(v) for v in L.ERROR_COLORS[L.HALLUCINATED])
    # The correct voxels: the 4 x 3 road layer less its corner: tops and bottoms (2 x 11), and the rim of the
    # L-shaped region (14 unit edges, as many as the full rectangle's).
    categories = L.error_categories(gt, pred)
    assert int((categories == L.CORRECT).sum()) == 11
    assert int(exposed_faces(np.where(categories == L.CORRECT, 0, -1)).sum()) == 2 * 11 + 14


def test_camera_frustum():
    K = np.array([[400.0, 0, 320], [0, 400.0, 180], [0, 0, 1]])
    ref_T_cam = make_transform(yaw_rotation(math.pi / 2), [1.0, 2.0, 1.5])
    f = L.camera_frustum(K, 640, 360, ref_T_cam)
    assert f.fov == pytest.approx(2 * math.atan(180 / 400))
    assert f.aspect == pytest.approx(640 / 360)
    np.testing.assert_allclose(f.wxyz, [math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], atol=1e-12)
    np.testing.assert_allclose(f.position, [1.0, 2.0, 1.5])


def test_image_overlays_and_resampling():
    image = np.full((2, 3, 3), 100, np.uint8)
    semantics = np.array([[ROAD, FREE, IGNORE], [CAR, ROAD, 0]], np.uint8)
    out = L.semantic_overlay(image, semantics, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], np.rint((100 + np.array([255, 0, 255])) / 2))
    np.testing.assert_array_equal(out[0, 1], [100, 100, 100])  # sky keeps the photo
    np.testing.assert_array_equal(out[0, 2], [100, 100, 100])  # unsure keeps the photo
    np.testing.assert_array_equal(out[1, 0], np.rint((100 + CLASS_COLORS[CAR].astype(float)) / 2))
    depth = np.array([[0.0, 5.0, 60.0], [120.0, 30.0, 0.0]], np.float32)
    out = L.depth_overlay(image, depth)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])  # no depth keeps the photo
    assert not np.array_equal(out[0, 1], out[0, 2])
    np.testing.assert_array_equal(out[0, 2], out[1, 0])  # beyond the range: the last colour
    with pytest.raises(ValueError, match="sizes differ"):
        L.semantic_overlay(image, semantics[:1])
    big = np.arange(12).reshape(4, 3)
    np.testing.assert_array_equal(L.sample_nearest(big, (2, 3, 3)), [[3, 4, 5], [9, 10, 11]])
    np.testing.assert_array_equal(L.sample_nearest(np.array([[1, 2], [3, 4]]), (4, 4)),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
