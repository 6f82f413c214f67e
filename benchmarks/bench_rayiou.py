"""Speed of RayIoU casting: ms per sample for 8 origins x 14,040 rays through prediction and GT (200x200x16).

Grids: synthetic Occ3D-like samples (synthetic_occ.py; ground, buildings, vehicles, mostly free), or the real
Occ3D sample with --real PATH (its GT against a one-voxel-shifted copy). Origins: 8 LiDAR positions along a drive.
Measured in the same run:
- numba: ``cast_rays`` + ``RayIoU.update`` (the CPU path of ``easyocc eval --rayiou``), median over samples;
- torch lockstep on the CPU (the GPU path's code, run here on the CPU; identical hits, checked);
- a straightforward pure-numpy reference: dense sampling along every ray (step 0.05 voxel), on one origin and
  scaled by 8; its agreement with the exact casting is reported too.
Prints JSON. Target: <= 100 ms per sample (numba) on the project's 2-core machine.

    python benchmarks/bench_rayiou.py [--samples 5] [--real ../shared/realdata/occ3d-sample/labels.npz]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402

import synthetic_occ  # noqa: E402
from easyocc.evaluation.rayiou import RayIoU, cast_rays, cast_rays_torch, lidar_ray_directions  # noqa: E402
from easyocc.occ3d import FREE, OCC3D_GRID, read_labels  # noqa: E402

#: Eight LiDAR positions (ego frame, metres) of a drive through the keyframe, as SparseOcc's origins look.
ORIGINS = np.stack([np.linspace(-26.0, 22.0, 8), np.linspace(-1.5, 1.0, 8), np.full(8, 1.84)], axis=1)


def dense_sampling_hits(sem: np.ndarray, origin_m: np.ndarray, directions: np.ndarray, step: float = 0.05):
    """Pure-numpy reference: march every ray in fixed steps (voxel units) until the first non-free voxel.
    Returns (labels, depths in metres at the sample that found the voxel)."""
    o = OCC3D_GRID.to_voxel_units(origin_m[None])[0]
    shape = np.array(OCC3D_GRID.shape)
    t = np.arange(0.0, np.linalg.norm(shape) + 1, step)
    labels = np.full(len(directions), FREE, np.uint8)
    depths = np.zeros(len(directions), np.float32)
    for lo in range(0, len(directions), 256):
        d = directions[lo : lo + 256].astype(np.float64)
        points = np.floor(o + t[None, :, None] * d[:, None, :]).astype(np.int64)  # (rays, samples, 3)
        inside = np.all((points >= 0) & (points < shape), axis=2)
        cells = np.where(inside[..., None], points, 0)
        occupied = inside & (sem[cells[..., 0], cells[..., 1], cells[..., 2]] != FREE)
        first = np.argmax(occupied, axis=1)
        hit = occupied[np.arange(len(d)), first]
        idx = cells[np.arange(len(d)), first]
        labels[lo : lo + 256] = np.where(hit, sem[idx[:, 0], idx[:, 1], idx[:, 2]], FREE)
        depths[lo : lo + 256] = np.where(hit, t[first] * OCC3D_GRID.voxel_size, 0.0)
    return labels, depths


def grids(args) -> list[tuple[np.ndarray, np.ndarray]]:
    if args.real:
        gt = read_labels(args.real, keys=("semantics",)).semantics
        pred = np.full_like(gt, FREE)
        pred[1:] = gt[:-1]
        return [(pred, gt)] * args.samples
    out = []
    for seed in range(args.samples):
        sem, _, _, pred = synthetic_occ.sample(1000 + seed)
        out.append((pred, sem))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real", type=Path, help="an Occ3D labels.npz to use instead of synthetic grids")
    args = parser.parse_args()
    samples = grids(args)
    directions = lidar_ray_directions()

    cast_rays(*samples[0], ORIGINS)  # compile / load the cached kernel
    numba_ms, metric = [], RayIoU()
    for pred, gt in samples:
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            hits = cast_rays(pred, gt, ORIGINS)
            RayIoU().update(hits)
            runs.append(time.perf_counter() - t)
        numba_ms.append(min(runs) * 1e3)
        metric.update(hits)

    pred, gt = samples[0]
    t = time.perf_counter()
    torch_hits = cast_rays_torch(pred, gt, ORIGINS)[0]
    torch_ms = (time.perf_counter() - t) * 1e3
    exact = cast_rays(pred, gt, ORIGINS)
    identical = all(np.array_equal(getattr(torch_hits, f), getattr(exact, f))
                    for f in ("pred_label", "pred_depth", "gt_label", "gt_depth"))

    t = time.perf_counter()
    dense_labels, dense_depth = dense_sampling_hits(gt, ORIGINS[0], directions)
    dense_ms = (time.perf_counter() - t) * 1e3 * 2 * len(ORIGINS)  # one grid, one origin -> both grids, 8 origins
    exact_labels = exact.gt_label[: len(directions)]
    agree = float(np.mean(dense_labels == exact_labels))

    median = statistics.median(numba_ms)
    scores = metric.compute()
    print(json.dumps({
        "benchmark": "rayiou",
        "grids": "real Occ3D sample vs shifted copy" if args.real else "synthetic Occ3D-like (synthetic_occ.py)",
        "samples": len(samples),
        "origins_per_sample": len(ORIGINS),
        "rays_per_sample": len(ORIGINS) * len(directions),
        "numba_threads": numba.get_num_threads(),
        "numba_ms_per_sample_median": round(median, 2),
        "numba_ms_per_sample_each": [round(x, 2) for x in numba_ms],
        "target_ms_per_sample": 100,
        "torch_lockstep_cpu_ms_per_sample": round(torch_ms, 1),
        "torch_identical_to_numba": identical,
        "speedup_vs_torch_cpu": round(torch_ms / median, 1),
        "dense_numpy_ms_per_sample_estimated": round(dense_ms, 1),
        "dense_numpy_measured_on": "1 origin x 14,040 rays x 1 grid, scaled x16",
        "dense_numpy_label_agreement": round(agree, 5),
        "speedup_vs_dense_numpy": round(dense_ms / median, 1),
        "RayIoU": round(scores.rayiou, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
