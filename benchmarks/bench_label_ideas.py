"""The 2026 label ideas (ShelfOcc's future frames, pass-through filtering and rare-class priority) against the
project's recipe, as pseudo-label quality on a SimScenes world like the demo's, with the noisy oracle.

Each variant labels every keyframe of the chosen split in memory (the keyframes are lifted once per noise preset and
shared by all variants) and is scored against SimScenes' exact ground truth: Occ3D mIoU and geometric IoU under the
GT camera mask and on the full scene, and RayIoU (the LiDAR rays of the scene's keyframes, as ``easyocc eval``).
The labels are scored, no model is trained, so no variant is chosen by a val score of a model.

Writes label_ideas.{md,csv,json,png} under --out and prints the JSON. One command reruns the README's table:

    python benchmarks/bench_label_ideas.py --work /tmp/label_ideas --out docs

--data reuses a SimScenes dataroot; without it the demo's world (6 scenes x 13 keyframes, 320x180) is generated
under --work (default: a temporary folder). The whole table takes about 35 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import time
from pathlib import Path

import numpy as np

#: The recipe before the 2026 ideas: the defaults with every idea off (whatever the defaults are now).
BEFORE = dict(future_frames=0, pass_through=False, rare_priority=False)

#: (name, LabelConfig settings on top of BEFORE). The paper's recipe first: no carving, past frames only.
VARIANTS: dict[str, dict] = {
    "paper (no carving)": dict(carve=False),
    "easyocc before (carving)": dict(),
    "+ future frames (13)": dict(future_frames=13),
    "+ pass-through (ratio 0.9)": dict(pass_through=True, pass_through_ratio=0.9),
    "+ pass-through (ratio 0.97)": dict(pass_through=True, pass_through_ratio=0.97),
    "pass-through (0.9) instead of carving": dict(pass_through=True, pass_through_ratio=0.9, carve=False),
    "+ rare-class priority (2 points)": dict(rare_priority=True, rare_min_points=2),
    "+ rare-class priority (5 points)": dict(rare_priority=True, rare_min_points=5),
    "+ all three (0.9, 2 points)": dict(future_frames=13, pass_through=True, pass_through_ratio=0.9,
                                        rare_priority=True, rare_min_points=2),
    "+ future frames + pass-through (0.97): the new default": dict(future_frames=13, pass_through=True,
                                                                    pass_through_ratio=0.97),
}


class OnceObserver:
    """A ``CameraObserver`` that lifts each keyframe once (with rays and depth views) and hands the same frame to
    every variant's ``SceneLabeler``; ``forget`` drops a scene's frames."""

    def __init__(self, observer):
        self.observer = observer
        self.backend = observer.backend
        self.frames: dict = {}

    def observe(self, keyframe, with_rays: bool = True):
        if keyframe.token not in self.frames:
            self.frames[keyframe.token] = self.observer.observe(keyframe, with_rays=True)
        frame = self.frames[keyframe.token]
        return frame if with_rays else frame.past()

    def forget(self) -> None:
        self.frames.clear()


def ensure_world(args: argparse.Namespace) -> Path:
    if args.data is not None:
        return args.data
    from easyocc.data.synthetic.generate import generate_dataset, is_finished_dataset
    from easyocc.demo import DemoSettings, synth_config

    data = args.work / "simscenes"
    config = synth_config(DemoSettings())
    if not is_finished_dataset(data, config):
        generate_dataset(data, config, progress=True)
    return data


def measure(data: Path, presets: list[str], split: str, variants: dict[str, dict], rays: bool) -> list[dict]:
    from tqdm import tqdm

    from easyocc.data.nuscenes_index import DatasetIndex, resolve_version, split_scene_names
    from easyocc.evaluation import ConfusionMatrix
    from easyocc.evaluation.rayiou import RayIoU, lidar_origins_from_poses
    from easyocc.evaluation.runner import find_ground_truth
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.pipeline import CameraObserver, SceneLabeler
    from easyocc.labels.sources import SourceSpec
    from easyocc.occ3d import read_labels

    version = resolve_version(data, "auto")
    index = DatasetIndex(data, version)
    scenes = index.scenes if split == "all" else [
        s for s in index.scenes if s.name in set(split_scene_names(data, version, split))]
    gts = find_ground_truth(data / "gts")
    configs = {name: LabelConfig(**{**BEFORE, **changes}) for name, changes in variants.items()}
    rows = []
    for preset in presets:
        semantics, depth = SourceSpec(oracle_noise=preset).build(data)
        observer = OnceObserver(CameraObserver(semantics, depth, LabelConfig(carve=True)))
        scores = {name: (ConfusionMatrix(), ConfusionMatrix(), RayIoU()) for name in configs}
        seconds = dict.fromkeys(configs, 0.0)
        bar = tqdm(total=sum(len(s.keyframes) for s in scenes) * len(configs), desc=f"noise {preset}", unit="label")
        for scene in scenes:
            poses = np.stack([kf.global_T_ego for kf in scene.keyframes])
            lidars = np.stack([kf.ego_T_lidar for kf in scene.keyframes])
            for name, config in configs.items():
                labeler = SceneLabeler(observer, config)
                start = time.perf_counter()
                for keyframe, labels in labeler.labels(scene):
                    seconds[name] += time.perf_counter() - start
                    gt = read_labels(gts[keyframe.token][1], keys=("semantics", "mask_camera"))
                    camera, full, ray = scores[name]
                    camera.update(gt.semantics, labels.semantics, gt.mask_camera)
                    full.update(gt.semantics, labels.semantics)
                    if rays:
                        ray.update_sample(labels.semantics, gt.semantics,
                                          lidar_origins_from_poses(poses, lidars, keyframe.index))
                    bar.update(1)
                    start = time.perf_counter()
            observer.forget()
        bar.close()
        for name, (camera, full, ray) in scores.items():
            cam, whole = camera.compute(), full.compute()
            row = {"noise": preset, "variant": name, "mIoU_camera": round(cam.miou, 2), "IoU_camera": round(cam.iou, 2),
                   "mIoU_full": round(whole.miou, 2), "IoU_full": round(whole.iou, 2),
                   "RayIoU": round(ray.compute().rayiou, 2) if rays else None,
                   "keyframes": int(camera.num_samples[0]),
                   "label_s_per_keyframe": round(seconds[name] / max(1, int(camera.num_samples[0])), 3)}
            rows.append(row)
    return rows


def with_deltas(rows: list[dict], reference: str) -> list[dict]:
    """Each row with its mIoU (camera mask) change against ``reference``'s row of the same noise preset."""
    base = {r["noise"]: r["mIoU_camera"] for r in rows if r["variant"] == reference}
    return [{**r, "d_mIoU_camera": round(r["mIoU_camera"] - base[r["noise"]], 2)} for r in rows]


def plot_ideas(path: Path, rows: list[dict]) -> None:
    """Horizontal bars: each variant's mIoU (camera mask), one bar per noise preset, the first variant's as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from easyocc.fileio import atomic_write

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    presets = list(dict.fromkeys(r["noise"] for r in rows))
    score = {(r["variant"], r["noise"]): r["mIoU_camera"] for r in rows}
    height = 0.8 / len(presets)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(variants) + 1.2))
    for p, preset in enumerate(presets):
        ys = [len(variants) - 1 - v + (p - (len(presets) - 1) / 2) * height for v in range(len(variants))]
        ax.barh(ys, [score.get((v, preset), 0.0) for v in variants], height=height, label=f"noise {preset}")
        ax.axvline(score[(variants[0], preset)], color=f"C{p}", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(variants)), list(reversed(variants)), fontsize=8)
    ax.set(xlabel="pseudo-labels vs exact GT: mIoU, camera mask (%)", title="The 2026 label ideas, label quality")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def write_tables(out: Path, rows: list[dict], meta: dict) -> None:
    from easyocc.fileio import atomic_write, save_json

    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("-" if r[c] is None else str(r[c]) for c in columns) + " |" for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "label_ideas.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / "label_ideas.csv", "w") as handle:
        handle.write(buffer.getvalue())
    save_json(out / "label_ideas.json", {**meta, "rows": rows})
    plot_ideas(out / "label_ideas.png", rows)


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="SimScenes dataroot (default: generate under --work)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the generated world, kept for reruns (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write label_ideas.{md,csv,json,png} here")
    parser.add_argument("--presets", default="realistic,strong", help="oracle noise presets (default realistic,strong)")
    parser.add_argument("--split", default="all", help="train, val or all (default all: labels are not trained)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the variants' names")
    parser.add_argument("--no-rays", action="store_true", help="skip RayIoU")
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="measure nothing: rewrite the tables and the plot of an earlier run's label_ideas.json "
                             "into --out")
    args = parser.parse_args()
    if args.replot is not None:
        if args.out is None:
            parser.error("--replot needs --out")
        earlier = json.loads(args.replot.read_text())
        write_tables(args.out, earlier.pop("rows"), earlier)
        return
    variants = VARIANTS if args.variants is None else {
        n: VARIANTS[n] for n in (v.strip() for v in args.variants.split(",")) if n}
    import tempfile

    temporary = tempfile.TemporaryDirectory() if args.data is None and args.work is None else None
    if temporary is not None:
        args.work = Path(temporary.name)
    data = ensure_world(args)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    start = time.perf_counter()
    rows = with_deltas(measure(data, presets, args.split, variants, not args.no_rays), next(iter(variants)))
    from easyocc.labels.config import LabelConfig

    meta = {"data": str(data), "split": args.split, "presets": presets, "before": BEFORE,
            "defaults": LabelConfig().manifest(), "variants": {n: variants[n] for n in variants},
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores ({platform.processor() or 'cpu'})",
            "threads": os.environ.get("NUMBA_NUM_THREADS", "all"), "seconds": round(time.perf_counter() - start, 1),
            "protocols": {"mIoU_camera": "Occ3D mIoU, GT camera mask, 17 classes",
                          "mIoU_full": "Occ3D mIoU, no mask", "IoU_camera": "geometric IoU, GT camera mask",
                          "IoU_full": "geometric IoU, no mask", "RayIoU": "mean of RayIoU@1,2,4 m (easyocc eval)",
                          "d_mIoU_camera": "mIoU_camera minus the first variant's"}}
    if args.out is not None:
        write_tables(args.out, rows, meta)
    print(json.dumps({**meta, "rows": rows}, indent=1, default=str))
    if temporary is not None:
        temporary.cleanup()


if __name__ == "__main__":
    main()
