import numpy as np

from easyocc import baselines, viz
from easyocc.occ3d import CLASS_COLORS, FREE, GRID_SHAPE, Occ3DLabels


def test_majority_per_height_uses_visible_voxels():
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 2] = 11  # a ground layer
    sem[:60, :, 5] = 15  # a wall in part of layer 5 ...
    mask = np.zeros(GRID_SHAPE, np.uint8)
    mask[:, :, :3] = 1
    mask[:60, :, 5] = 1  # ... that is the only visible part of layer 5
    counts = baselines.height_class_counts([Occ3DLabels(sem, None, mask)])
    pred = baselines.majority_per_height(counts)
    assert pred[0, 0, 2] == 11 and pred[150, 3, 5] == 15 and pred[0, 0, 0] == FREE and pred[0, 0, 9] == FREE
    unmasked = baselines.majority_per_height(baselines.height_class_counts([Occ3DLabels(sem, None, mask)], False))
    assert unmasked[0, 0, 5] == FREE  # over all voxels, free dominates layer 5


def test_bev_shows_the_top_class_with_x_up_and_y_left():
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 2] = 11
    sem[199, 199, 6] = 4  # front-left corner of the grid, a car above the ground
    img = viz.bev_image(sem)
    assert img.shape == (200, 200, 3)
    np.testing.assert_array_equal(img[0, 0], CLASS_COLORS[4])  # top-left of the image
    np.testing.assert_array_equal(img[100, 100], CLASS_COLORS[11])
    masked = viz.bev_image(sem, mask=np.zeros(GRID_SHAPE, np.uint8))
    np.testing.assert_array_equal(masked[5, 5], viz.UNOBSERVED_RGB)


def test_pictures_are_written(tmp_path):
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 2] = 11
    viz.save_bev_panels(tmp_path / "bev.png", [("GT", sem, None), ("pred", sem, np.ones(GRID_SHAPE, np.uint8))])
    viz.save_per_class_chart(tmp_path / "iou.png", {"model": {"car": 50.0, "bus": float("nan")}}, "IoU")
    assert (tmp_path / "bev.png").stat().st_size > 1000 and (tmp_path / "iou.png").stat().st_size > 1000
    mosaic = viz.camera_mosaic({n: np.full((4, 6, 3), i, np.uint8) for row in viz.MOSAIC_LAYOUT for i, n in enumerate(row)})
    assert mosaic.shape == (8, 18, 3)
