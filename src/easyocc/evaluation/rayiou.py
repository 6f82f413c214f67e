"""RayIoU as SparseOcc defines it (MCG-NJU/SparseOcc ``loaders/ray_metrics.py``, ``loaders/ego_pose_dataset.py``,
``lib/dvr/dvr.cu`` in "test" mode), without a CUDA build, mmcv or an mmdet3d info file.

Per sample, LiDAR-like rays are cast from up to 8 origins (the LIDAR_TOP positions of the scene's keyframes, in this
keyframe's ego frame) through the predicted and the ground-truth ``semantics`` (no visibility mask):

- 39 pitch angles (10 at ``-(pi/2 - atan(k + 1))``, k = 0..9, then extrapolated by the last spacing up to
  0.219 rad) x 360 azimuths at 1 degree = 14,040 unit rays per origin;
- each ray walks the voxels from the origin's voxel (Amanatides-Woo, dvr's tie order) to the first voxel whose class
  is not free; its depth is the ray parameter where it **leaves** that voxel (dvr's ``exp_d = d[i]``, ``d`` being
  the exit distance of each voxel), in metres. A ray that meets nothing reports the last voxel inside the grid
  (free) and its exit distance;
- rays whose GT hit is free are dropped; per class c (0..16) over all rays of the set: TP = GT and prediction both
  hit class c and |depth error| < tau, IoU = TP / (n_gt + n_pred - TP); RayIoU@tau = mean over classes present,
  tau in {1, 2, 4} m; RayIoU = mean of the three.

The arithmetic follows the reference to the bit where it decides a voxel or a threshold: origins and ray end points
are rounded to float32 voxel coordinates as SparseOcc's tensors are (dividing by float32(0.4)), the walk is in
float64, depths are stored in float32 and scaled by float32(0.4).

Ground-truth voxels with the ignore value 255, as SparseOcc treats them (``main_rayiou`` keeps every ray whose GT
label is not free; ``calc_rayiou`` counts GT and predictions per class 0..17): a 255 voxel is not free, so it stops
the GT ray, and the ray is kept. It adds to no class's GT count, while the prediction along it counts for its own
class: a predicted class there is a false positive, a predicted free nothing. (Real Occ3D files hold no 255; users'
own ground truth may.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from easyocc.evaluation.metrics import CountMetric, nanmean_percent
from easyocc.geometry import invert_transform
from easyocc.occ3d import FREE, NUM_CLASSES, NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid

#: Depth-error thresholds (metres) of RayIoU@1, @2, @4.
RAY_THRESHOLDS: tuple[float, ...] = (1.0, 2.0, 4.0)
#: At most this many origins per sample (SparseOcc's ``EgoPoseDataset``).
MAX_ORIGINS = 8
#: Origins are kept when |x| and |y| (metres, ego frame) are below this.
ORIGIN_MAX_XY = 39.0
#: 39 pitch angles x 360 azimuths.
RAYS_PER_ORIGIN = 14040
#: dvr's loop bound (``MAX_STEP``): a walk stops after this many voxel steps, inside the grid or not.
_MAX_STEP = 1000
_DBL_MAX = np.finfo(np.float64).max


def lidar_pitch_angles() -> np.ndarray:
    """The 39 pitch angles (radians) of SparseOcc's ``generate_lidar_rays``: (39,) float64."""
    pitches = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    # The nuScenes LiDAR looks up to about 0.21 rad: continue with the last spacing until past it.
    while pitches[-1] < 0.21:
        pitches.append(pitches[-1] + (pitches[-1] - pitches[-2]))
    return np.asarray(pitches)


def lidar_ray_directions() -> np.ndarray:
    """Unit ray directions, pitch-major then azimuth 0..359 degrees: (14040, 3) float32 (x forward, y left, z up)."""
    pitch = lidar_pitch_angles()[:, None]
    azimuth = np.deg2rad(np.arange(0, 360, 1))[None, :]
    directions = np.stack(
        [np.cos(pitch) * np.cos(azimuth), np.cos(pitch) * np.sin(azimuth), np.broadcast_to(np.sin(pitch), (39, 360))],
        axis=-1,
    )
    return directions.reshape(-1, 3).astype(np.float32)


def _voxel_scale(grid: VoxelGrid) -> float:
    # SparseOcc divides by a float32 tensor holding the voxel size.
    return float(np.float32(grid.voxel_size))


def select_origins(origins_ego: np.ndarray, max_origins: int = MAX_ORIGINS, max_xy: float = ORIGIN_MAX_XY) -> np.ndarray:
    """SparseOcc's choice among candidate origins (in time order): keep |x|, |y| < max_xy, then at most
    ``max_origins`` spread evenly (``round(linspace(0, n - 1, max_origins))``). (N, 3) -> (T, 3)."""
    origins_ego = np.asarray(origins_ego, dtype=np.float64).reshape(-1, 3)
    kept = origins_ego[(np.abs(origins_ego[:, 0]) < max_xy) & (np.abs(origins_ego[:, 1]) < max_xy)]
    if len(kept) > max_origins:
        kept = kept[np.round(np.linspace(0, len(kept) - 1, max_origins)).astype(np.int64)]
    return kept


def lidar_origins_from_poses(
    global_T_ego: np.ndarray, ego_T_lidar: np.ndarray, ref: int, max_origins: int = MAX_ORIGINS
) -> np.ndarray:
    """Ray origins of keyframe ``ref`` of a scene: every keyframe's LiDAR position in ``ref``'s ego frame.

    global_T_ego, ego_T_lidar: (K, 4, 4) float64 per keyframe of the scene, in time order (the ego pose at the
    LiDAR timestamp). Returns (T, 3) float64, T <= max_origins, the reference frame's own LiDAR among them.
    As SparseOcc: positions go through the reference LiDAR frame, rounded there to float32.
    """
    global_T_lidar = np.asarray(global_T_ego, np.float64) @ np.asarray(ego_T_lidar, np.float64)
    ref_lidar_T_global = invert_transform(global_T_lidar[ref])
    in_ref_lidar = np.stack([(ref_lidar_T_global @ T)[:3, 3] for T in global_T_lidar]).astype(np.float32)
    in_ref_lidar[ref] = 0.0
    ref_ego_T_lidar = np.asarray(ego_T_lidar[ref], np.float64)
    origins = in_ref_lidar.astype(np.float64) @ ref_ego_T_lidar[:3, :3].T + ref_ego_T_lidar[:3, 3]
    return select_origins(origins, max_origins)


def lidar_origins(index, token: str, max_origins: int = MAX_ORIGINS) -> np.ndarray:
    """Ray origins (T, 3) float64 of keyframe ``token`` from an :class:`easyocc.data.nuscenes_index.DatasetIndex`."""
    scene = index.scene_of(token)
    return lidar_origins_from_poses(
        np.stack([kf.global_T_ego for kf in scene.keyframes]),
        np.stack([kf.ego_T_lidar for kf in scene.keyframes]),
        index.keyframes[token].index,
        max_origins,
    )


@dataclass(frozen=True)
class RayHits:
    """What each ray met, for T origins x R rays, origin-major: labels (T*R,) uint8 (the class of the hit voxel,
    or of the last voxel inside the grid), depths (T*R,) float32 metres."""

    pred_label: np.ndarray
    pred_depth: np.ndarray
    gt_label: np.ndarray
    gt_depth: np.ndarray


# ---------------------------------------------------------------------------------------------------------- numba


@numba.njit(cache=True, inline="always")
def _to_voxel_f32(value_m, lower, scale):
    return np.float64(np.float32((value_m - lower) / scale))


@numba.njit(cache=True, inline="always")
def _axis_start(o, d, v):
    """dvr's per-axis set-up: step direction, parameter of the first boundary, parameter per voxel."""
    step = 1 if d >= 0 else -1
    if d != 0:
        boundary = v + (0 if step < 0 else 1)
        return step, (boundary - o) / d, step / d
    return step, _DBL_MAX, _DBL_MAX


@numba.njit(cache=True, nogil=True)
def _cast_one(pred, gt, nx, ny, nz, xo, yo, zo, xe, ye, ze):
    """One ray through both grids, as dvr's ``render_forward`` in test mode.

    Returns (pred flat index, pred exit parameter, gt flat index, gt exit parameter) in voxel units; a ray that
    never enters the grid keeps index 0 and parameter -1 (dvr's untouched outputs).
    """
    rx, ry, rz = xe - xo, ye - yo, ze - zo
    length = math.sqrt(rx * rx + ry * ry + rz * rz)
    dx, dy, dz = rx / length, ry / length, rz / length
    vx, vy, vz = int(xo), int(yo), int(zo)  # C truncation, as dvr
    sx, tx, ddx = _axis_start(xo, dx, vx)
    sy, ty, ddy = _axis_start(yo, dy, vy)
    sz, tz, ddz = _axis_start(zo, dz, vz)
    p_idx, g_idx = 0, 0
    p_d, g_d = -1.0, -1.0
    p_done, g_done = False, False
    was_inside = False
    steps = 0
    while True:
        inside = 0 <= vx < nx and 0 <= vy < ny and 0 <= vz < nz
        if inside:
            was_inside = True
        elif was_inside:
            break
        flat = (vx * ny + vy) * nz + vz
        # dvr's tie order: x only when strictly first, z wins every tie it is part of.
        if tx < ty:
            if tx < tz:
                d = tx
                vx += sx
                tx += ddx
            else:
                d = tz
                vz += sz
                tz += ddz
        elif ty < tz:
            d = ty
            vy += sy
            ty += ddy
        else:
            d = tz
            vz += sz
            tz += ddz
        if inside:
            if not p_done:
                p_idx, p_d = flat, d
                p_done = pred[flat] != FREE
            if not g_done:
                g_idx, g_d = flat, d
                g_done = gt[flat] != FREE
            if p_done and g_done:
                break
        steps += 1
        if steps > _MAX_STEP:
            break
    return p_idx, p_d, g_idx, g_d


@numba.njit(cache=True, parallel=True)
def _cast_kernel(pred, gt, shape, lower, scale, origins_m, directions):
    n_origins, n_rays = origins_m.shape[0], directions.shape[0]
    nx, ny, nz = shape
    total = n_origins * n_rays
    pred_label = np.empty(total, np.uint8)
    gt_label = np.empty(total, np.uint8)
    pred_depth = np.empty(total, np.float32)
    gt_depth = np.empty(total, np.float32)
    voxel_m = np.float32(scale)
    for r in numba.prange(total):
        t, k = r // n_rays, r % n_rays
        o = origins_m[t]
        xo = _to_voxel_f32(o[0], lower[0], scale)
        yo = _to_voxel_f32(o[1], lower[1], scale)
        zo = _to_voxel_f32(o[2], lower[2], scale)
        xe = _to_voxel_f32(np.float64(directions[k, 0]) + o[0], lower[0], scale)
        ye = _to_voxel_f32(np.float64(directions[k, 1]) + o[1], lower[1], scale)
        ze = _to_voxel_f32(np.float64(directions[k, 2]) + o[2], lower[2], scale)
        p_idx, p_d, g_idx, g_d = _cast_one(pred, gt, nx, ny, nz, xo, yo, zo, xe, ye, ze)
        pred_label[r] = pred[p_idx]
        gt_label[r] = gt[g_idx]
        pred_depth[r] = np.float32(p_d) * voxel_m
        gt_depth[r] = np.float32(g_d) * voxel_m
    return pred_label, pred_depth, gt_label, gt_depth


def _check_grids(pred: np.ndarray, gt: np.ndarray, grid: VoxelGrid) -> None:
    if pred.shape != grid.shape or gt.shape != grid.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both have the grid's shape {grid.shape}")


def cast_rays(
    pred: np.ndarray,
    gt: np.ndarray,
    origins_m: np.ndarray,
    directions: np.ndarray | None = None,
    grid: VoxelGrid = OCC3D_GRID,
) -> RayHits:
    """Cast every ray from every origin through the prediction and the GT at once (numba, parallel over rays).

    pred, gt: (X, Y, Z) uint8 class ids (17 = free); origins_m: (T, 3) metres in the grid's frame;
    directions: (R, 3) float32 unit vectors (default: the 14,040 LiDAR rays). Returns :class:`RayHits` of T*R rays.
    """
    _check_grids(pred, gt, grid)
    directions = lidar_ray_directions() if directions is None else np.ascontiguousarray(directions, np.float32)
    origins_m = np.ascontiguousarray(np.asarray(origins_m, np.float64).reshape(-1, 3))
    out = _cast_kernel(
        np.ascontiguousarray(pred, np.uint8).reshape(-1),
        np.ascontiguousarray(gt, np.uint8).reshape(-1),
        tuple(int(s) for s in grid.shape),
        grid.lower_array,
        _voxel_scale(grid),
        origins_m,
        directions,
    )
    return RayHits(*out)


# ---------------------------------------------------------------------------------------------------------- torch


#: The torch walk drops finished rays every this many steps (each drop synchronises with the device).
_COMPACT_EVERY = 8


def _lockstep_walk(pred_flat, gt_flat, base, v, t_next, t_delta, step, shape):
    """Walk all rays one voxel per iteration, with :func:`_cast_one`'s arithmetic and outcomes.

    pred_flat, gt_flat: (B*X*Y*Z,) uint8; base: (N,) flat offset of each ray's sample; v, step: (N, 3) int64
    voxel and step direction; t_next, t_delta: (N, 3) float64. Returns flat voxel index and exit parameter of the
    pred and GT outcome per ray ((base, -1) for a ray that never enters the grid, as dvr leaves its outputs).
    """
    import torch

    n, device = len(v), v.device
    _, ny, nz = shape
    upper = torch.tensor(shape, device=device)
    axes = torch.arange(3, device=device)
    outputs = [base.clone(), torch.full((n,), -1.0, dtype=torch.float64, device=device)]
    outputs += [outputs[0].clone(), outputs[1].clone()]
    # State of the rays still walking; ``alive`` freezes a finished ray until the next compaction.
    ids = torch.arange(n, device=device)
    hit_p, dist_p, hit_g, dist_g = (x.clone() for x in outputs)
    done_p = torch.zeros(n, dtype=torch.bool, device=device)
    done_g, was_inside, alive = done_p.clone(), done_p.clone(), ~done_p
    steps = 0
    while True:
        inside = ((v >= 0) & (v < upper)).all(dim=1)
        left = ~inside & was_inside
        was_inside = was_inside | inside
        flat = base + (v[:, 0] * ny + v[:, 1]) * nz + v[:, 2]
        tx, ty, tz = t_next.unbind(dim=1)
        axis = torch.where(tx < ty, torch.where(tx < tz, 0, 2), torch.where(ty < tz, 1, 2))
        chosen = axis[:, None] == axes
        exit_t = t_next.gather(1, axis[:, None]).squeeze(1)
        v = torch.where(chosen, v + step, v)
        t_next = torch.where(chosen, t_next + t_delta, t_next)
        safe = flat.clamp(0, len(pred_flat) - 1)
        record_p = alive & inside & ~done_p
        hit_p, dist_p = torch.where(record_p, flat, hit_p), torch.where(record_p, exit_t, dist_p)
        done_p = done_p | (record_p & (pred_flat[safe] != FREE))
        record_g = alive & inside & ~done_g
        hit_g, dist_g = torch.where(record_g, flat, hit_g), torch.where(record_g, exit_t, dist_g)
        done_g = done_g | (record_g & (gt_flat[safe] != FREE))
        steps += 1
        alive = alive & ~(left | (done_p & done_g) | (steps > _MAX_STEP))
        if steps % _COMPACT_EVERY == 0 or steps > _MAX_STEP:
            finished = ~alive
            for out, value in zip(outputs, (hit_p, dist_p, hit_g, dist_g)):
                out[ids[finished]] = value[finished]
            if not bool(alive.any()):
                return outputs
            ids, base, v, t_next, t_delta, step = ids[alive], base[alive], v[alive], t_next[alive], t_delta[alive], step[alive]
            hit_p, dist_p, hit_g, dist_g = hit_p[alive], dist_p[alive], hit_g[alive], dist_g[alive]
            done_p, done_g, was_inside, alive = done_p[alive], done_g[alive], was_inside[alive], alive[alive]


def cast_rays_torch(
    pred,
    gt,
    origins_m,
    directions=None,
    grid: VoxelGrid = OCC3D_GRID,
    device=None,
) -> list[RayHits]:
    """:func:`cast_rays` for a batch of samples with torch, all rays stepping in lockstep (GPU or CPU).

    pred, gt: (B, X, Y, Z) or (X, Y, Z) uint8 arrays or tensors; origins_m: one (T_b, 3) array per sample (a single
    array for an unbatched call); device: where to cast (default: the device of ``pred`` if a tensor, else CPU).
    The arithmetic is the numba kernel's, step for step, so both give identical hits. Returns one RayHits per sample.
    """
    import torch

    if device is None:
        device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
    pred_t = torch.as_tensor(pred, device=device).to(torch.uint8)
    gt_t = torch.as_tensor(gt, device=device).to(torch.uint8)
    if pred_t.dim() == 3:
        pred_t, gt_t, origins_m = pred_t[None], gt_t[None], [origins_m]
    if pred_t.shape[1:] != grid.shape or gt_t.shape != pred_t.shape or len(origins_m) != pred_t.shape[0]:
        raise ValueError(f"expected pred and gt (B, {grid.shape}) and B origin arrays")
    dirs = torch.as_tensor(lidar_ray_directions() if directions is None else directions, dtype=torch.float32)
    dirs = dirs.to(device=device, dtype=torch.float64)
    nx, ny, nz = grid.shape
    lower = torch.tensor(grid.lower, dtype=torch.float64, device=device)
    scale = _voxel_scale(grid)

    # Per ray: its sample, origin and end point in float32-rounded voxel coordinates (as the reference's tensors).
    origins = [torch.as_tensor(np.asarray(o, np.float64).reshape(-1, 3), device=device) for o in origins_m]
    counts = [len(o) * len(dirs) for o in origins]
    sample = torch.repeat_interleave(torch.arange(len(origins), device=device), torch.tensor(counts, device=device))
    origin_m = torch.cat([o.repeat_interleave(len(dirs), dim=0) for o in origins])
    end_m = torch.cat([(dirs[None] + o[:, None]).reshape(-1, 3) for o in origins])
    o = ((origin_m - lower) / scale).float().double()
    e = ((end_m - lower) / scale).float().double()
    r = e - o
    length = torch.sqrt(r[:, 0] * r[:, 0] + r[:, 1] * r[:, 1] + r[:, 2] * r[:, 2])
    d = r / length[:, None]
    v = o.trunc().long()
    step = torch.where(d >= 0, 1, -1)
    boundary = (v + (step > 0).long()).double()
    nonzero = d != 0
    t_next = torch.where(nonzero, (boundary - o) / torch.where(nonzero, d, 1.0), _DBL_MAX)
    t_delta = torch.where(nonzero, step.double() / torch.where(nonzero, d, 1.0), _DBL_MAX)

    pred_flat, gt_flat = pred_t.reshape(-1), gt_t.reshape(-1)
    hit_p, dist_p, hit_g, dist_g = _lockstep_walk(
        pred_flat, gt_flat, sample * (nx * ny * nz), v, t_next, t_delta, step, grid.shape
    )
    voxel_m = torch.tensor(scale, dtype=torch.float32, device=device)
    results = [
        pred_flat[hit_p].cpu().numpy(),
        (dist_p.float() * voxel_m).cpu().numpy(),
        gt_flat[hit_g].cpu().numpy(),
        (dist_g.float() * voxel_m).cpu().numpy(),
    ]
    bounds = np.cumsum([0, *counts])
    return [RayHits(*(a[lo:hi] for a in results)) for lo, hi in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------------------------------------- metric


@dataclass(frozen=True)
class RayScores:
    """RayIoU in percent. per_class: (3, 17) IoU per threshold (rows 1, 2, 4 m) and class 0..16, nan where the
    class is absent from both GT and prediction rays; at_threshold: (3,) RayIoU@1/@2/@4; rayiou: their mean."""

    per_class: np.ndarray
    at_threshold: np.ndarray
    rayiou: float


class RayIoU(CountMetric):
    """Ray counts summed over a dataset: per class, GT rays, predicted rays, and true positives per threshold."""

    def __init__(self, thresholds: tuple[float, ...] = RAY_THRESHOLDS):
        self.thresholds = tuple(float(t) for t in thresholds)
        self.gt_count = np.zeros(NUM_CLASSES, dtype=np.int64)
        self.pred_count = np.zeros(NUM_CLASSES, dtype=np.int64)
        self.true_positive = np.zeros((len(self.thresholds), NUM_CLASSES), dtype=np.int64)
        self.num_rays = np.zeros(1, dtype=np.int64)
        self.num_samples = np.zeros(1, dtype=np.int64)

    def _count_arrays(self) -> list[np.ndarray]:
        return [self.gt_count, self.pred_count, self.true_positive, self.num_rays, self.num_samples]

    def update(self, hits: RayHits) -> None:
        """Count one sample's rays: those whose GT hit is not free (an ignored 255 GT hit included, as SparseOcc:
        no GT count, the prediction's class counted)."""
        keep = hits.gt_label != FREE
        gt_label, pred_label = hits.gt_label[keep].astype(np.int64), hits.pred_label[keep].astype(np.int64)
        error = np.abs(hits.pred_depth[keep] - hits.gt_depth[keep])  # float32, as the reference compares
        self.gt_count += np.bincount(gt_label, minlength=NUM_CLASSES)[:NUM_CLASSES]
        self.pred_count += np.bincount(pred_label, minlength=NUM_CLASSES)[:NUM_CLASSES]
        same = gt_label == pred_label
        for row, threshold in enumerate(self.thresholds):
            tp = gt_label[same & (error < threshold)]
            self.true_positive[row] += np.bincount(tp, minlength=NUM_CLASSES)[:NUM_CLASSES]
        self.num_rays += int(keep.sum())
        self.num_samples += 1

    def update_sample(self, pred: np.ndarray, gt: np.ndarray, origins_m: np.ndarray) -> None:
        """Cast the LiDAR rays of one sample with numba and count them. pred, gt: (200, 200, 16) uint8."""
        self.update(cast_rays(pred, gt, origins_m))

    def compute(self) -> RayScores:
        classes = slice(0, NUM_SEMANTIC_CLASSES)
        tp = self.true_positive[:, classes].astype(np.float64)
        union = self.gt_count[classes] + self.pred_count[classes] - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        at_threshold = np.array([nanmean_percent(row) for row in iou])
        return RayScores(per_class=iou * 100.0, at_threshold=at_threshold, rayiou=nanmean_percent(iou))
