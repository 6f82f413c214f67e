"""SimScenes generation speed: prints JSON.

1. ``dataset``: a 2-scene x 20-keyframe dataset at 400x225 without camera sweeps (target: <= 60 s on 2 cores),
   seconds per stage (world, lidar, rendering, gt, masks, annotations, sweeps, writing).
2. ``sweeps``: the same dataset with ``--sweeps none / neighbours / all``: time, disk (sweeps/ and in all), the
   ratios to none; what exact maps would add per sweep (a keyframe image's sim/ maps against its JPEG); the index
   build time and pickled size with and without the -1 / +1 neighbours; the demo's world (6 x 13 at 320x180)
   with none and with neighbours.
3. ``scaling``: one keyframe at 400x225, 800x450 and 1600x900, per stage (the camera mask always casts ~400x225
   rays per camera, so only rendering, annotations and writing grow with the image).
4. ``ray_casting``: the grid-accelerated caster against the brute-force reference (every ray against every solid)
   on the same camera rays of one keyframe: rays per second of each and the speed-up (median of 3).

Numba compilation is warmed up first and not timed. Usage: ``python benchmarks/bench_synth.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex
from easyocc.data.synthetic.cast import build_scene, cast_rays, cast_rays_bruteforce
from easyocc.data.synthetic import layout
from easyocc.data.synthetic.generate import SynthConfig, generate_dataset
from easyocc.data.synthetic.sensors import SENSORS
from easyocc.data.synthetic.world import build_world
from easyocc.geometry import pixel_rays


def _generate(out: Path, **config) -> dict:
    start = time.perf_counter()
    report = generate_dataset(out, SynthConfig(**config), progress=False)
    total = time.perf_counter() - start
    return {"total_s": round(total, 3), "per_keyframe_s": round(total / report.keyframes, 3),
            "stages_s": {k: round(v, 3) for k, v in report.seconds.items()}}


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _index_build(root: Path, repeats: int) -> dict:
    """Median seconds to build the dataset index (the devkit's table loading included) and its pickled size, with
    the -1 / +1 neighbours (the default) and without."""
    out = {}
    for label, offsets in (("with_neighbours", (-1, 1)), ("without_neighbours", ())):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            index = DatasetIndex(root, "v1.0-mini", neighbour_offsets=offsets)
            times.append(time.perf_counter() - start)
        out[label] = {"build_s": round(statistics.median(times), 3), "pickle_bytes": len(pickle.dumps(index.scenes))}
    out["build_ratio"] = round(out["with_neighbours"]["build_s"] / out["without_neighbours"]["build_s"], 2)
    return out


def _sweeps(tmp: Path, repeats: int, dataset: dict) -> dict:
    """Generation time and disk per sweep mode on the benchmark's dataset (``none`` is the ``dataset`` run)."""
    config = {"scenes": 2, "keyframes": 20, "image_size": (400, 225)}
    modes = {"none": dict(dataset, root=tmp / "dataset")}
    for mode in ("neighbours", "all"):
        modes[mode] = dict(_generate(tmp / mode, **config, sweeps=mode), root=tmp / mode)
    out = {}
    for mode, run in modes.items():
        root = run.pop("root")
        sweep_files = list((root / "sweeps").rglob("*.jpg"))
        out[mode] = {**run, "sweep_images": len(sweep_files), "disk_bytes": _disk_bytes(root),
                     "sweeps_disk_bytes": sum(p.stat().st_size for p in sweep_files),
                     "time_vs_none": round(run["total_s"] / modes["none"]["total_s"], 2),
                     "index": _index_build(root, repeats)}
        out[mode]["disk_vs_none"] = round(out[mode]["disk_bytes"] / out["none"]["disk_bytes"], 2)
    # Exact maps of a sweep would cost what a keyframe image's sim/ maps cost.
    jpegs = sorted((tmp / "dataset" / "samples" / "CAM_FRONT").glob("*.jpg"))
    jpeg_bytes = statistics.median(p.stat().st_size for p in jpegs)
    maps_bytes = statistics.median(
        layout.sim_depth_path(tmp / "dataset", f"samples/CAM_FRONT/{p.name}").stat().st_size
        + layout.sim_semantic_path(tmp / "dataset", f"samples/CAM_FRONT/{p.name}").stat().st_size for p in jpegs)
    out["exact_maps_per_image"] = {"jpeg_bytes": int(jpeg_bytes), "sim_maps_bytes": int(maps_bytes),
                                   "ratio": round(maps_bytes / jpeg_bytes, 1)}
    demo = {"scenes": 6, "keyframes": 13, "image_size": (320, 180)}
    out["demo_world"] = {mode: _generate(tmp / f"demo-{mode}", **demo, sweeps=mode)["total_s"]
                         for mode in ("none", "neighbours")}
    out["demo_world"]["config"] = "6 scenes x 13 keyframes, 320x180 (the demo's)"
    return out


def _median_run(out: Path, repeats: int, **config) -> dict:
    runs = [_generate(out / f"run{i}", **config) for i in range(repeats)]
    best = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]
    return {**best, "runs_total_s": [r["total_s"] for r in runs]}


def _ray_casting(repeats: int) -> dict:
    world = build_world(seed=0, scene_index=0, duration=9.5)
    solids = world.solids_at(0.0)
    scene = build_scene(solids)
    origins, dirs = [], []
    for name in CAMERA_NAMES:
        mount = SENSORS[name]
        local_T_cam = world.local_T_ego(0.0) @ mount.ego_T_sensor
        # Every 4th pixel of 400x225: the brute-force reference is slow.
        rays = pixel_rays(mount.intrinsics(400, 225), 400, 225, stride=4).reshape(-1, 3) @ local_T_cam[:3, :3].T
        origins.append(np.repeat(local_T_cam[None, :3, 3], len(rays), axis=0))
        dirs.append(rays)
    origins, dirs = np.concatenate(origins), np.concatenate(dirs)
    timings = {"grid": [], "bruteforce": []}
    for _ in range(repeats):
        for name, fn in (("grid", lambda: cast_rays(scene, origins, dirs)),
                         ("bruteforce", lambda: cast_rays_bruteforce(solids, origins, dirs))):
            start = time.perf_counter()
            result = fn()
            timings[name].append(time.perf_counter() - start)
            if name == "grid":
                grid_solid = result[1]
            else:
                assert np.array_equal(result[1], grid_solid), "the grid and the reference disagree"
    grid, brute = statistics.median(timings["grid"]), statistics.median(timings["bruteforce"])
    return {"rays": int(len(dirs)), "solids": len(solids), "grid_s": round(grid, 4), "bruteforce_s": round(brute, 4),
            "grid_rays_per_s": int(len(dirs) / grid), "bruteforce_rays_per_s": int(len(dirs) / brute),
            "speedup_vs_bruteforce": round(brute / grid, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the small measurements (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        tmp = Path(tmp)
        generate_dataset(tmp / "warmup", SynthConfig(scenes=1, keyframes=2, image_size=(64, 36)), progress=False)
        result = {
            "benchmark": "simscenes_generation",
            "machine": {"cpus": os.cpu_count(), "numba_threads": int(os.environ.get("NUMBA_NUM_THREADS", 0)) or None,
                        "python": platform.python_version(), "load_average": [round(v, 2) for v in os.getloadavg()]},
            "dataset": {"config": "2 scenes x 20 keyframes, 400x225, no sweeps",
                        **_generate(tmp / "dataset", scenes=2, keyframes=20, image_size=(400, 225), sweeps="none"),
                        "target_s": 60},
        }
        result["sweeps"] = _sweeps(tmp, args.repeats, {k: v for k, v in result["dataset"].items()
                                                       if k not in ("config", "target_s")})
        result |= {
            "scaling": {f"{w}x{h}": _median_run(tmp / f"one-{w}", args.repeats, scenes=1, keyframes=1,
                                                image_size=(w, h))
                        for w, h in ((400, 225), (800, 450), (1600, 900))},
            "ray_casting": _ray_casting(args.repeats),
        }
        result["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
