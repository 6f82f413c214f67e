"""Camera images and LiDAR scans of a SimScenes world: exact depth and semantics, and a shaded RGB image.

Camera rays go through pixel centres (``geometry.pixel_rays``, OpenCV convention) scaled to z = 1 in the camera
frame, so the hit parameter is the depth along the optical axis and lifting the depth map with the same K lands on
the surfaces. Shading: the solid's colour, Lambert lighting from the scene's sun, a few material textures (value
noise, lane markings and crosswalks on roads, paving joints, windows, stripes), distance haze, a sky gradient.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np

from easyocc.data.synthetic.cast import CastScene, cast_rays
from easyocc.data.synthetic.sensors import LidarPattern
from easyocc.data.synthetic.solids import (
    MAT_BUILDING,
    MAT_GLASS,
    MAT_ROAD,
    MAT_SIDEWALK,
    MAT_SIGN,
    MAT_STRIPED,
    MAT_TERRAIN,
    MAT_VEGETATION,
)
from easyocc.data.synthetic.world import RoadGrid
from easyocc.geometry import pixel_rays
from easyocc.occ3d import FREE

SKY_HORIZON = np.array([0.80, 0.85, 0.90])
SKY_ZENITH = np.array([0.35, 0.55, 0.85])
HAZE_DISTANCE = 350.0


@dataclass
class CameraRender:
    """One camera image: rgb (H, W, 3) uint8, depth (H, W) float32 (inf for sky), semantic (H, W) uint8 Occ3D ids
    (17 for sky), solid (H, W) int32 index of the solid seen (-1 for sky)."""

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    solid: np.ndarray


@numba.njit(cache=True, inline="always")
def _hash(ix, iy, iz, seed):
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


@numba.njit(cache=True)
def _noise(x, y, z, seed):
    """Smooth value noise in [-1, 1] at a point (lattice spacing 1)."""
    fx, fy, fz = np.floor(x), np.floor(y), np.floor(z)
    ix, iy, iz = np.int64(fx), np.int64(fy), np.int64(fz)
    ux, uy, uz = x - fx, y - fy, z - fz
    ux = ux * ux * (3.0 - 2.0 * ux)
    uy = uy * uy * (3.0 - 2.0 * uy)
    uz = uz * uz * (3.0 - 2.0 * uz)
    total = 0.0
    for dx in range(2):
        wx = ux if dx else 1.0 - ux
        for dy in range(2):
            wy = uy if dy else 1.0 - uy
            for dz in range(2):
                wz = uz if dz else 1.0 - uz
                total += wx * wy * wz * _hash(ix + dx, iy + dy, iz + dz, seed)
    return 2.0 * total - 1.0


@numba.njit(cache=True, inline="always")
def _nearest(lines, v):
    k = np.searchsorted(lines, v)
    best = np.inf
    for c in (k - 1, k):
        if 0 <= c < lines.shape[0]:
            d = v - lines[c]
            if abs(d) < abs(best):
                best = d
    return best


@numba.njit(cache=True)
def _road_paint(x, y, xs, ys, half_w, lane_w):
    """Paint on a road surface at (x, y): 0 none, 1 white, 2 yellow."""
    dx = _nearest(xs, x)
    dy = _nearest(ys, y)
    in_x = abs(dx) < half_w  # on a N-S road
    in_y = abs(dy) < half_w  # on an E-W road
    if in_x and in_y:
        return 0  # junction box
    if in_y:
        across, along, dist_junction = abs(dy), x, abs(dx)
    elif in_x:
        across, along, dist_junction = abs(dx), y, abs(dy)
    else:
        return 0
    if half_w + 0.6 < dist_junction < half_w + 3.6:
        # Crosswalk stripes across the road.
        return 1 if (across % 1.0) < 0.5 and across < half_w - 0.3 else 0
    if abs(across - 0.12) < 0.06:
        return 2
    if abs(across - lane_w) < 0.07 and (along % 6.0) < 3.0:
        return 1
    if abs(across - (half_w - 0.3)) < 0.07:
        return 1
    return 0


@numba.njit(cache=True, parallel=True)
def _shade_kernel(origin, dirs, t_hit, solid, face, planes, color, material, sun, xs, ys, half_w, lane_w,
                  horizon, zenith, haze_distance):
    n = dirs.shape[0]
    out = np.empty((n, 3), dtype=np.uint8)
    for r in numba.prange(n):
        dx, dy, dz = dirs[r, 0], dirs[r, 1], dirs[r, 2]
        norm = np.sqrt(dx * dx + dy * dy + dz * dz)
        elevation = dz / norm
        s = solid[r]
        if s < 0:
            a = min(max(elevation * 2.5, 0.0), 1.0) ** 0.8
            for c in range(3):
                out[r, c] = np.uint8(255.0 * (horizon[c] * (1.0 - a) + zenith[c] * a))
            continue
        t = t_hit[r]
        px = origin[0] + t * dx
        py = origin[1] + t * dy
        pz = origin[2] + t * dz
        f = face[r]
        if f == 0:
            nx, ny, nz = 0.0, 0.0, -1.0
        elif f == 1:
            nx, ny, nz = 0.0, 0.0, 1.0
        else:
            nx, ny, nz = planes[s, f - 2, 0], planes[s, f - 2, 1], 0.0
        cr, cg, cb = color[s, 0], color[s, 1], color[s, 2]
        mat = material[s]
        grain = 0.05 * _noise(px * 3.0, py * 3.0, pz * 3.0, 1)
        if mat == MAT_ROAD and f == 1:
            paint = _road_paint(px, py, xs, ys, half_w, lane_w)
            if paint == 1:
                cr, cg, cb = 0.85, 0.85, 0.82
            elif paint == 2:
                cr, cg, cb = 0.85, 0.70, 0.15
            grain = 0.06 * _noise(px * 4.0, py * 4.0, 0.0, 2) + 0.05 * _noise(px * 0.3, py * 0.3, 0.0, 3)
        elif mat == MAT_SIDEWALK and f == 1:
            if (px % 1.2) < 0.05 or (py % 1.2) < 0.05:
                cr, cg, cb = cr * 0.75, cg * 0.75, cb * 0.75
            grain = 0.05 * _noise(px * 5.0, py * 5.0, 0.0, 4)
        elif mat == MAT_TERRAIN:
            g = _noise(px * 0.5, py * 0.5, 0.0, 5)
            cr, cg, cb = cr * (1.0 + 0.25 * g), cg * (1.0 + 0.1 * g), cb
            grain = 0.12 * _noise(px * 6.0, py * 6.0, pz * 6.0, 6)
        elif mat == MAT_VEGETATION:
            grain = 0.22 * _noise(px * 4.0, py * 4.0, pz * 4.0, 7) + 0.1 * _noise(px, py, pz, 8)
        elif mat == MAT_BUILDING:
            if f >= 2:
                u = -ny * px + nx * py
                if (u % 2.8) > 0.7 and (u % 2.8) < 2.1 and ((pz - 0.4) % 3.2) > 1.0 and ((pz - 0.4) % 3.2) < 2.6 \
                        and pz > 1.2:
                    cr, cg, cb = 0.16, 0.20, 0.27
            else:
                cr, cg, cb = cr * 0.7, cg * 0.7, cb * 0.7
            grain = 0.04 * _noise(px * 2.0, py * 2.0, pz * 2.0, 9)
        elif mat == MAT_GLASS:
            grain = 0.0
        elif mat == MAT_STRIPED:
            if (pz % 0.3) < 0.15:
                cr, cg, cb = 0.95, 0.95, 0.95
            elif cr > 0.8 and cg > 0.8:
                cr, cg, cb = 0.85, 0.12, 0.10
        elif mat == MAT_SIGN:
            grain = 0.0
        lambert = nx * sun[0] + ny * sun[1] + nz * sun[2]
        light = 0.42 + 0.58 * max(lambert, 0.0)
        if mat == MAT_GLASS:
            # A little sky reflection.
            light = 0.6 + 0.3 * max(nz, 0.0)
        k = light * (1.0 + grain)
        haze = 1.0 - np.exp(-t * norm / haze_distance)
        rgb = (cr * k, cg * k, cb * k)
        for c in range(3):
            v = rgb[c] * (1.0 - haze) + horizon[c] * haze
            out[r, c] = np.uint8(min(max(v, 0.0), 1.0) * 255.0 + 0.5)
    return out


def shade(scene: CastScene, origin: np.ndarray, dirs: np.ndarray, t_hit, solid, face, sun: np.ndarray,
          roads: RoadGrid) -> np.ndarray:
    """RGB (N, 3) uint8 of rays (origin (3,), dirs (N, 3)) with their hits from :func:`cast_rays`."""
    s = scene.solids
    return _shade_kernel(np.asarray(origin, dtype=np.float64).reshape(3), dirs, t_hit, solid, face, scene.planes,
                         s.color.astype(np.float64), s.material, np.asarray(sun, dtype=np.float64),
                         np.asarray(roads.xs, dtype=np.float64), np.asarray(roads.ys, dtype=np.float64),
                         float(roads.half_width), float(roads.lane_width), SKY_HORIZON, SKY_ZENITH, HAZE_DISTANCE)


@functools.lru_cache(maxsize=32)
def _cached_rays(K_key: tuple, width: int, height: int, stride: int, unit: bool) -> np.ndarray:
    rays = pixel_rays(np.array(K_key).reshape(3, 3), width, height, stride).reshape(-1, 3)
    if unit:
        rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    rays.setflags(write=False)
    return rays


def camera_rays(K: np.ndarray, width: int, height: int, stride: int = 1, unit: bool = False) -> np.ndarray:
    """``geometry.pixel_rays`` flattened to (H' * W', 3), z = 1 (or unit length), cached: the rig never changes."""
    return _cached_rays(tuple(np.asarray(K, dtype=np.float64).ravel()), int(width), int(height), int(stride),
                        bool(unit))


def render_camera(scene: CastScene, world_T_cam: np.ndarray, K: np.ndarray, width: int, height: int,
                  sun: np.ndarray, roads: RoadGrid) -> CameraRender:
    """Render one camera: world_T_cam (4, 4) camera -> world (the frame of ``scene``), K (3, 3) for width x height."""
    rays = camera_rays(K, width, height)
    dirs = np.ascontiguousarray(rays @ world_T_cam[:3, :3].T)
    origin = world_T_cam[:3, 3]
    t_hit, solid, face = cast_rays(scene, origin, dirs)
    rgb = shade(scene, origin, dirs, t_hit, solid, face, sun, roads)
    semantic = np.where(solid >= 0, scene.solids.cls[np.maximum(solid, 0)], FREE).astype(np.uint8)
    return CameraRender(
        rgb=rgb.reshape(height, width, 3),
        depth=t_hit.astype(np.float32).reshape(height, width),
        semantic=semantic.reshape(height, width),
        solid=solid.reshape(height, width),
    )


#: LiDAR return strength per Occ3D class (0..255 scale before incidence falloff), roughly nuScenes-like.
REFLECTIVITY = np.array([30, 60, 25, 35, 35, 40, 35, 15, 90, 30, 35, 8, 14, 18, 10, 25, 12, 0], dtype=np.float64)


@dataclass
class LidarScan:
    """points: (N, 5) float32 [x, y, z, intensity, ring] in the LiDAR frame; semantic: (N,) uint8 Occ3D class;
    solid: (N,) int32 index of the solid each return comes from."""

    points: np.ndarray
    semantic: np.ndarray
    solid: np.ndarray


def scan_lidar(scene: CastScene, world_T_lidar: np.ndarray, pattern: LidarPattern) -> LidarScan:
    """Cast the beam pattern from the LiDAR; rays without a return within ``max_range`` are dropped."""
    dirs_lidar = pattern.directions()
    dirs = np.ascontiguousarray(dirs_lidar @ world_T_lidar[:3, :3].T)
    t_hit, solid, face = cast_rays(scene, world_T_lidar[:3, 3], dirs, pattern.max_range)
    keep = solid >= 0
    t, s, f, d_lidar, d = t_hit[keep], solid[keep], face[keep], dirs_lidar[keep], dirs[keep]
    cls = scene.solids.cls[s]
    normal = np.zeros((len(s), 3))
    normal[f == 0, 2] = -1.0
    normal[f == 1, 2] = 1.0
    side = f >= 2
    normal[side, :2] = scene.planes[s[side], f[side] - 2, :2]
    incidence = np.abs((normal * d).sum(axis=1))
    hit_world = world_T_lidar[:3, 3] + t[:, None] * d
    # Deterministic speckle from the hit position, so the same seed gives the same scan.
    cell = np.floor(hit_world * 20.0).astype(np.int64)
    speckle = (((cell[:, 0] * 73856093) ^ (cell[:, 1] * 19349663) ^ (cell[:, 2] * 83492791)) & 0xFFFF) / 65535.0
    intensity = np.clip(REFLECTIVITY[cls] * (0.35 + 0.65 * incidence) * (0.8 + 0.4 * speckle), 0.0, 255.0)
    points = np.empty((len(s), 5), dtype=np.float32)
    points[:, :3] = (t[:, None] * d_lidar).astype(np.float32)
    points[:, 3] = np.round(intensity)
    points[:, 4] = pattern.rings()[keep]
    return LidarScan(points=points, semantic=cls.astype(np.uint8), solid=s.astype(np.int32))
