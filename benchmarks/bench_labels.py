"""Benchmark of the 3D stage of Easy3D-Labels at full nuScenes resolution (6 cameras x 1600x900 per keyframe).

The 2D maps (exact depth and semantics of a toy street, rendered once, with the oracle's "realistic" depth noise so
that the clouds are not unrealistically smooth) are in memory; what is timed is lift + 13-frame aggregation +
voxelization + free space + masks for each keyframe.

- fast: the pipeline (``SceneLabeler``): each frame lifted once into fine cells, a sliding window over the scene.
  Steady-state seconds per keyframe (median over the measured keyframes, each with 13 previous frames).
- reference: a straightforward per-frame implementation: for the keyframe, re-lift all 14 frames pixel by pixel
  (``lift_image``), drop past points in see-through voxels, ``np.unique`` voxelization, and traversal of every
  pixel's ray.

Each implementation runs in its own process (peak RSS measured there, maps included; the maps' size is reported).
The labels of both for the same keyframe are compared voxel by voxel. Prints JSON.

    python benchmarks/bench_labels.py [--measure 3] [--reference 1] [--width 1600 --height 900]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAMES = 13


def build_scene(num_keyframes: int, width: int, height: int):
    from easyocc.labels import toyworld

    world = toyworld.street(length=40.0 + 3.0 * num_keyframes, seed=0)
    scene = toyworld.make_scene("bench", num_keyframes, width, height, speed=3.0, yaw_rate=0.02,
                                camera_time_offsets=True)
    return world, scene


def render_maps(folder: Path, num_keyframes: int, width: int, height: int) -> None:
    """Render every camera of every keyframe to ``folder`` (depth .npy with realistic noise, semantics .npy)."""
    from easyocc.labels import toyworld
    from easyocc.labels.sources.noise import NOISE_PRESETS, add_depth_noise, image_rng

    world, scene = build_scene(num_keyframes, width, height)
    noise = NOISE_PRESETS["realistic"].depth
    for kf in scene.keyframes:
        for cam in kf.cameras.values():
            depth, semantics = toyworld.render(world, cam, kf.index)
            depth = add_depth_noise(depth, noise, image_rng(0, cam.relpath, "depth"))
            np.save(folder / f"{cam.sample_data_token}_depth.npy", depth)
            np.save(folder / f"{cam.sample_data_token}_sem.npy", semantics)


class InMemory:
    """Semantic and depth sources serving pre-rendered maps from memory."""

    def __init__(self, folder: Path, scene):
        from easyocc.labels.sources.base import DepthSource, SemanticSource

        self.maps = {}
        for kf in scene.keyframes:
            for cam in kf.cameras.values():
                t = cam.sample_data_token
                self.maps[t] = (np.load(folder / f"{t}_sem.npy"), np.load(folder / f"{t}_depth.npy"))
        maps = self.maps

        class Sem(SemanticSource):
            name = "memory"

            def semantics(self, camera):
                return maps[camera.sample_data_token][0]

        class Depth(DepthSource):
            name = "memory"

            def depth(self, camera):
                return maps[camera.sample_data_token][1]

        self.semantics, self.depth = Sem(), Depth()

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes + d.nbytes for s, d in self.maps.values())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel on a tiny scene, outside the timings."""
    from easyocc.labels import toyworld
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.pipeline import CameraObserver, SceneLabeler

    world = toyworld.street()
    scene = toyworld.make_scene("warm", 2, 64, 36)
    cfg = LabelConfig(frames=1)
    for _ in SceneLabeler(CameraObserver(toyworld.ToySemantics(world), toyworld.ToyDepth(world), cfg), cfg).labels(scene):
        pass


def run_fast(folder: Path, num_keyframes: int, width: int, height: int, first: int, result) -> None:
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.pipeline import CameraObserver, SceneLabeler

    warm_up()
    _, scene = build_scene(num_keyframes, width, height)
    maps = InMemory(folder, scene)
    rss_maps = peak_rss_mb()
    cfg = LabelConfig(frames=FRAMES, future_frames=0, pass_through=False)  # the reference's recipe
    labeler = SceneLabeler(CameraObserver(maps.semantics, maps.depth, cfg), cfg)
    times, labels = [], {}
    start = time.perf_counter()
    for kf, lab in labeler.labels(scene, wanted=lambda kf: kf.index >= first):
        now = time.perf_counter()
        times.append(now - start)
        labels[kf.index] = lab
        start = time.perf_counter()
    np.savez(folder / "fast_labels.npz", **{f"{k}_{i}": getattr(l, k) for i, l in labels.items()
                                            for k in ("semantics", "mask_camera", "mask_lidar")})
    result.put({"times": times, "peak_rss_mb": peak_rss_mb(), "rss_after_maps_mb": rss_maps,
                "maps_mb": maps.nbytes / 2**20})


def reference_labels(scene, maps, t: int, cfg):
    """The straightforward implementation for keyframe ``t``: see the module docstring."""
    from easyocc.geometry import relative_transform, transform_points
    from easyocc.labels.lift import lift_image
    from easyocc.labels.visibility import (
        FreeSpaceRays,
        camera_rays,
        depth_view,
        label_masks,
        see_through_voxels,
        traverse,
    )
    from easyocc.labels.voxelize import count_points, vote
    from easyocc.occ3d import OCC3D_GRID

    current = scene.keyframes[t]
    views = [depth_view(maps.depth.depth(cam), maps.semantics.semantics(cam), cam.K, current.ref_T_cam(name))
             for name, cam in current.cameras.items()]
    carved = see_through_voxels(views, cfg.carve_margin).astype(bool) if cfg.carve else None
    counts = np.zeros((*OCC3D_GRID.shape, 17), np.uint32)
    current_voxels = None
    for f in range(max(0, t - cfg.frames), t + 1):
        kf = scene.keyframes[f]
        for name, cam in kf.cameras.items():
            sem = maps.semantics.semantics(cam)
            depth = maps.depth.depth(cam)
            cloud = lift_image(depth, sem, cam.K, kf.ref_T_cam(name))
            points = transform_points(relative_transform(current.global_T_ego, kf.global_T_ego), cloud.points)
            classes = cloud.classes
            if f != t:
                keep = ~np.isin(classes, cfg.dynamic_classes)
                if carved is not None:
                    ijk, inside = OCC3D_GRID.indices(points)
                    keep &= ~(inside & carved[tuple(np.where(inside[:, None], ijk, 0).T)])
                points, classes = points[keep], classes[keep]
            frame_counts = count_points(points, classes)
            counts += frame_counts
            if f == t:
                seen = frame_counts.sum(-1) > 0
                current_voxels = seen if current_voxels is None else current_voxels | seen
    semantics, total = vote(counts, cfg.min_points)
    rays = FreeSpaceRays.concatenate([
        camera_rays(maps.depth.depth(cam), maps.semantics.semantics(cam), cam.K, current.ref_T_cam(name), 1)
        for name, cam in current.cameras.items()
    ])
    traversed = traverse(rays)
    mask_camera, mask_lidar = label_masks(semantics != 17, total, traversed, current_voxels)
    return semantics, mask_camera, mask_lidar


def run_reference(folder: Path, num_keyframes: int, width: int, height: int, keyframes: list[int], result) -> None:
    from easyocc.labels.config import LabelConfig

    warm_up()
    _, scene = build_scene(num_keyframes, width, height)
    maps = InMemory(folder, scene)
    rss_maps = peak_rss_mb()
    cfg = LabelConfig(frames=FRAMES, future_frames=0, pass_through=False)  # the reference's recipe
    times, out = [], {}
    for t in keyframes:
        start = time.perf_counter()
        sem, cam, lidar = reference_labels(scene, maps, t, cfg)
        times.append(time.perf_counter() - start)
        out.update({f"semantics_{t}": sem, f"mask_camera_{t}": cam, f"mask_lidar_{t}": lidar})
    np.savez(folder / "reference_labels.npz", **out)
    result.put({"times": times, "peak_rss_mb": peak_rss_mb(), "rss_after_maps_mb": rss_maps,
                "maps_mb": maps.nbytes / 2**20})


def in_process(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", type=int, default=3, help="steady-state keyframes timed (fast path)")
    parser.add_argument("--reference", type=int, default=1, help="keyframes timed with the reference")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()

    first = FRAMES  # the first keyframe with 13 previous ones
    num_keyframes = first + 1 + args.measure  # the first wanted keyframe lifts its whole window: not steady state
    ref_keyframes = list(range(first + 1, first + 1 + args.reference))
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        render_maps(folder, num_keyframes, args.width, args.height)
        render_s = time.perf_counter() - t0
        fast = in_process(run_fast, folder, num_keyframes, args.width, args.height, first)
        ref = in_process(run_reference, folder, num_keyframes, args.width, args.height, ref_keyframes)
        fast_labels, ref_labels = np.load(folder / "fast_labels.npz"), np.load(folder / "reference_labels.npz")
        agreement = {}
        for key in ("semantics", "mask_camera", "mask_lidar"):
            same = [float((fast_labels[f"{key}_{t}"] == ref_labels[f"{key}_{t}"]).mean()) for t in ref_keyframes]
            agreement[key] = min(same)
        occupied = [(fast_labels[f"semantics_{t}"] != 17) | (ref_labels[f"semantics_{t}"] != 17) for t in ref_keyframes]
        agreement["semantics_on_occupied"] = min(
            float((fast_labels[f"semantics_{t}"] == ref_labels[f"semantics_{t}"])[o].mean())
            for t, o in zip(ref_keyframes, occupied))

    steady = fast["times"][1:]
    fast_s = statistics.median(steady)
    ref_s = statistics.median(ref["times"])
    print(json.dumps({
        "benchmark": "labels_3d_stage",
        "resolution": f"6 x {args.width}x{args.height}",
        "frames": FRAMES + 1,
        "fast_s_per_keyframe": round(fast_s, 3),
        "fast_s_per_keyframe_all": [round(t, 3) for t in steady],
        "fast_cold_start_s": round(fast["times"][0], 3),
        "fast_peak_rss_mb": round(fast["peak_rss_mb"]),
        "fast_peak_rss_above_maps_mb": round(fast["peak_rss_mb"] - fast["rss_after_maps_mb"]),
        "reference_s_per_keyframe": round(ref_s, 3),
        "reference_peak_rss_mb": round(ref["peak_rss_mb"]),
        "reference_peak_rss_above_maps_mb": round(ref["peak_rss_mb"] - ref["rss_after_maps_mb"]),
        "speedup": round(ref_s / fast_s, 1),
        "maps_in_memory_mb": round(fast["maps_mb"]),
        "agreement_with_reference": {k: round(v, 5) for k, v in agreement.items()},
        "render_setup_s": round(render_s, 1),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
