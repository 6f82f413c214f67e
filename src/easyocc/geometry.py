"""Frames and projections: small pure functions, numpy in and out.

Conventions: ``A_T_B`` is the 4x4 matrix mapping points in frame B to frame A (``ego_T_cam``, ``global_T_ego``).
Poses are composed in float64 (global nuScenes coordinates reach thousands of metres) before points are cast
to float32. Camera frames follow nuScenes/OpenCV: x right, y down, z forward (depth = z). Pixel coordinates follow OpenCV, as
calibration toolboxes define K: the centre of pixel (column u, row v) is at (u, v), so a projected point belongs to
pixel ``round(uv)``, and ``grid_sample(align_corners=False)`` takes ``(uv + 0.5) / size * 2 - 1``.
"""

from __future__ import annotations

import numpy as np


def _check_points(points: np.ndarray, name: str = "points") -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {points.shape}")
    return points


def _check_transform(T: np.ndarray, name: str = "transform") -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got {T.shape}")
    return T


def quaternion_to_matrix(wxyz) -> np.ndarray:
    """Rotation matrix (3, 3) float64 of a quaternion [w, x, y, z] (nuScenes order); normalised first."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Quaternion [w, x, y, z] (w >= 0) of a rotation matrix (3, 3)."""
    R = np.asarray(R, dtype=np.float64)
    m = R
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


def make_transform(rotation: np.ndarray, translation) -> np.ndarray:
    """4x4 float64 transform from a rotation ((3, 3) matrix or [w, x, y, z] quaternion) and a translation (3,)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(rotation) if rotation.shape == (4,) else rotation
    T[:3, 3] = np.asarray(translation, dtype=np.float64)
    return T


def yaw_rotation(yaw: float) -> np.ndarray:
    """Rotation (3, 3) about +z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse (4, 4) of a rigid transform, exact for rotation + translation."""
    T = _check_transform(T)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def relative_transform(global_T_a: np.ndarray, global_T_b: np.ndarray) -> np.ndarray:
    """``a_T_b`` from two poses in a common frame, composed in float64."""
    return invert_transform(global_T_a) @ _check_transform(global_T_b)


def transform_points(A_T_B: np.ndarray, points: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Map points (N, 3) from frame B to frame A; the result has ``dtype`` (float32 by default)."""
    points = _check_points(points)
    T = _check_transform(A_T_B, "A_T_B")
    out = points.astype(np.float64, copy=False) @ T[:3, :3].T + T[:3, 3]
    return out.astype(dtype, copy=False)


def project_points(K: np.ndarray, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection.

    K: (3, 3) intrinsics; points_cam: (N, 3) in the camera frame.
    Returns uv (N, 2) float64 pixel coordinates (pixel centres at integers) and depth (N,) = z.
    Points with depth <= 0 get uv = nan.
    """
    points_cam = _check_points(points_cam, "points_cam")
    K = np.asarray(K, dtype=np.float64)
    depth = points_cam[:, 2].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = points_cam.astype(np.float64) @ K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
    uv[depth <= 0] = np.nan
    return uv, depth


def pixel_rays(K: np.ndarray, width: int, height: int, stride: int = 1) -> np.ndarray:
    """Camera-frame rays through pixel centres with z = 1, so ``point = depth * ray``.

    Returns (H', W', 3) float64 for rows 0, stride, 2*stride, ... and the same columns.
    """
    K = np.asarray(K, dtype=np.float64)
    u = np.arange(0, width, stride, dtype=np.float64)
    v = np.arange(0, height, stride, dtype=np.float64)
    uu, vv = np.meshgrid(u, v, indexing="xy")
    x = (uu - K[0, 2] - K[0, 1] * (vv - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (vv - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def lift_depth(depth: np.ndarray, K: np.ndarray, stride: int = 1) -> np.ndarray:
    """Back-project a depth map (H, W) of z-depths to camera-frame points (H' * W', 3) float32, row-major."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must have shape (H, W), got {depth.shape}")
    rays = pixel_rays(K, depth.shape[1], depth.shape[0], stride)
    d = depth[::stride, ::stride].astype(np.float64)[..., None]
    return (rays * d).reshape(-1, 3).astype(np.float32)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Intrinsics after resizing an image by (sx, sy): image corners map to corners, so with pixel centres at
    integers the principal point moves by half a pixel as well (``c' = s * (c + 0.5) - 0.5``)."""
    sy = sx if sy is None else sy
    S = np.array([[sx, 0.0, 0.5 * (sx - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)], [0.0, 0.0, 1.0]])
    return S @ np.asarray(K, dtype=np.float64)


def crop_intrinsics(K: np.ndarray, left: float, top: float) -> np.ndarray:
    """Intrinsics after cropping ``left`` columns and ``top`` rows off an image."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= left
    K[1, 2] -= top
    return K


def resample_nearest(image: np.ndarray, K_image: np.ndarray, K_out: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map of a camera (labels, depth) read on the pixel grid of other intrinsics of the same camera (a resize and
    crop of it): each output pixel takes the input pixel nearest to its centre (clipped to the image).

    image: (H, W) or (H, W, C); K_image: (3, 3) for it; K_out: (3, 3) for the output; size: (h, w).
    The intrinsics must differ by scale and shift only (no skew). Returns (h, w) or (h, w, C), the image's dtype.
    """
    K_image, K_out = np.asarray(K_image, dtype=np.float64), np.asarray(K_out, dtype=np.float64)
    height, width = image.shape[:2]
    scale = K_image[[0, 1], [0, 1]] / K_out[[0, 1], [0, 1]]
    columns = np.floor((np.arange(size[1]) - K_out[0, 2]) * scale[0] + K_image[0, 2] + 0.5).astype(np.int64)
    rows = np.floor((np.arange(size[0]) - K_out[1, 2]) * scale[1] + K_image[1, 2] + 0.5).astype(np.int64)
    return image[np.clip(rows, 0, height - 1)[:, None], np.clip(columns, 0, width - 1)[None, :]]


def reproject_depth(depth: np.ndarray, K_src: np.ndarray, K_dst: np.ndarray, dst_T_src: np.ndarray) -> np.ndarray:
    """Where every pixel of a source camera lands in a destination camera, given the source's z-depth.

    depth: (H, W) z-depth of the source image (non-finite or <= 0: no surface); K_src, K_dst: (3, 3);
    dst_T_src: (4, 4) source camera -> destination camera. Returns uv (H, W, 2) float64 in the destination's
    pixel coordinates, nan where the depth is no surface or the point lies behind the destination camera.
    """
    depth = np.asarray(depth)
    surface = np.isfinite(depth) & (depth > 0)
    points = lift_depth(np.where(surface, depth, 1.0), K_src)
    uv, _ = project_points(K_dst, transform_points(dst_T_src, points, np.float64))
    uv[~surface.reshape(-1)] = np.nan
    return uv.reshape(*depth.shape, 2)


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image`` (H, W) or (H, W, C) at pixel coordinates uv (N, 2) (pixel centres at integers).

    Returns values (N,) or (N, C) float64 (0 where not valid) and valid (N,) bool: uv inside the pixel centres'
    hull [0, W - 1] x [0, H - 1], so that all four neighbours exist.
    """
    image = np.asarray(image)
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    height, width = image.shape[:2]
    with np.errstate(invalid="ignore"):
        valid = (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= height - 1)
    u, v = np.where(valid, uv[:, 0], 0.0), np.where(valid, uv[:, 1], 0.0)
    u0 = np.minimum(np.floor(u).astype(np.int64), max(width - 2, 0))
    v0 = np.minimum(np.floor(v).astype(np.int64), max(height - 2, 0))
    u1, v1 = np.minimum(u0 + 1, width - 1), np.minimum(v0 + 1, height - 1)
    fu, fv = u - u0, v - v0
    if image.ndim == 3:
        fu, fv = fu[:, None], fv[:, None]
    pixels = image.astype(np.float64, copy=False)
    top = pixels[v0, u0] * (1 - fu) + pixels[v0, u1] * fu
    bottom = pixels[v1, u0] * (1 - fu) + pixels[v1, u1] * fu
    values = top * (1 - fv) + bottom * fv
    values[~valid] = 0.0
    return values, valid
