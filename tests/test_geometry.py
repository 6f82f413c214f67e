import numpy as np

from easyocc import geometry as g


def random_pose(rng):
    q = rng.normal(size=4)
    return g.make_transform(q / np.linalg.norm(q), rng.normal(size=3) * 100)


def test_quaternion_round_trip_and_orthonormal():
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = g.quaternion_to_matrix(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(R), 1.0)
        back = g.matrix_to_quaternion(R)
        assert np.allclose(back, q) or np.allclose(back, -q)


def test_inverse_and_relative_transform():
    rng = np.random.default_rng(2)
    A, B = random_pose(rng), random_pose(rng)
    np.testing.assert_allclose(g.invert_transform(A) @ A, np.eye(4), atol=1e-12)
    pts = rng.normal(size=(50, 3))
    via_global = g.transform_points(g.invert_transform(A), g.transform_points(B, pts, np.float64), np.float64)
    np.testing.assert_allclose(g.transform_points(g.relative_transform(A, B), pts, np.float64), via_global, atol=1e-9)


def test_lift_then_project_returns_the_pixel_centres():
    K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    depth = np.random.default_rng(3).uniform(1, 80, size=(9, 16)).astype(np.float32)
    pts = g.lift_depth(depth, K)
    uv, z = g.project_points(K, pts)
    vv, uu = np.mgrid[0:9, 0:16]
    np.testing.assert_allclose(uv, np.stack([uu.ravel(), vv.ravel()], 1), atol=1e-3)
    np.testing.assert_allclose(z, depth.ravel(), rtol=1e-6)


def test_scaled_intrinsics_keep_image_corners():
    K = np.array([[1000.0, 0, 799.5], [0, 1000.0, 449.5], [0, 0, 1]])
    Ks = g.scale_intrinsics(K, 0.25)
    # The image centre (799.5, 449.5) of a 1600x900 image maps to the centre (199.5, 112) of 400x225.
    np.testing.assert_allclose(Ks[:2, 2], [199.5, 112.0])
    point = np.array([[3.0, -2.0, 10.0]])
    uv_full, _ = g.project_points(K, point)
    uv_small, _ = g.project_points(Ks, point)
    np.testing.assert_allclose((uv_small + 0.5), (uv_full + 0.5) * 0.25)


def test_points_behind_camera_have_no_pixel():
    uv, depth = g.project_points(np.eye(3), np.array([[0.0, 0, -1.0], [0, 0, 2.0]]))
    assert np.isnan(uv[0]).all() and not np.isnan(uv[1]).any()


def test_sample_bilinear_is_exact_on_linear_images_and_matches_grid_sample():
    import torch
    import torch.nn.functional as F

    height, width = 7, 11
    vv, uu = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([2.0 * uu + 3.0 * vv, -uu + 0.5 * vv + 4.0, uu * 0 + 9.0], axis=-1)
    rng = np.random.default_rng(4)
    uv = np.column_stack([rng.uniform(0, width - 1, 200), rng.uniform(0, height - 1, 200)])
    uv[:2] = [[width - 1, height - 1], [0, 0]]  # the last pixel centre is inside
    values, valid = g.sample_bilinear(image, uv)
    assert valid.all()
    np.testing.assert_allclose(values[:, 0], 2.0 * uv[:, 0] + 3.0 * uv[:, 1], atol=1e-9)
    np.testing.assert_allclose(values[:, 1], -uv[:, 0] + 0.5 * uv[:, 1] + 4.0, atol=1e-9)
    # The same convention as grid_sample(align_corners=False) at (uv + 0.5) / size * 2 - 1 (geometry's docstring).
    texture = rng.uniform(0, 255, size=(height, width))
    grid = torch.from_numpy((uv + 0.5) / [width, height] * 2 - 1)[None, None]
    expected = F.grid_sample(torch.from_numpy(texture)[None, None], grid, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(g.sample_bilinear(texture, uv)[0], expected[0, 0, 0].numpy(), atol=1e-9)
    outside = np.array([[-0.01, 3.0], [width - 0.99, 3.0], [2.0, height], [np.nan, 1.0]])
    values, valid = g.sample_bilinear(texture, outside)
    assert not valid.any() and (values == 0).all()


def test_reproject_depth_moves_pixels_by_the_parallax():
    K = np.array([[100.0, 0.0, 15.5], [0.0, 100.0, 9.5], [0.0, 0.0, 1.0]])
    depth = np.full((20, 32), 10.0, dtype=np.float32)
    depth[0, 0], depth[0, 1] = np.inf, 0.0  # sky, no depth
    vv, uu = np.mgrid[0:20, 0:32]
    same = g.reproject_depth(depth, K, K, np.eye(4))
    np.testing.assert_allclose(same[1:, :, 0], uu[1:], atol=1e-4)
    np.testing.assert_allclose(same[1:, :, 1], vv[1:], atol=1e-4)
    assert np.isnan(same[0, :2]).all()
    # The destination camera sits 0.5 m to the right (+x) of the source: a plane 10 m ahead shifts 5 px left.
    dst_T_src = g.make_transform(np.eye(3), (-0.5, 0.0, 0.0))
    moved = g.reproject_depth(depth, K, K, dst_T_src)
    np.testing.assert_allclose(moved[1:, :, 0], uu[1:] - 5.0, atol=1e-4)
    np.testing.assert_allclose(moved[1:, :, 1], vv[1:], atol=1e-4)
    # Points behind the destination camera have no pixel.
    behind = g.reproject_depth(depth, K, K, g.make_transform(np.eye(3), (0.0, 0.0, -20.0)))
    assert np.isnan(behind).all()
