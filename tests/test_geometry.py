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
