"""``easyocc label-quality``: how good are pseudo-labels? Scored against ground truth with the project's evaluator.

Two modes:
- ``--labels DIR --gt GTDIR``: score a labels folder (``<scene>/<token>/labels.npz``) against an Occ3D ``gts/`` tree,
  under the GT camera mask (the official protocol) and on the full scene (no mask);
- ``--sweep --data ROOT --gt GTDIR --frames 0,1,3,5,9,13 --min-points 1,2,3,5 --out DIR``: label every keyframe in
  memory for each number of past frames and each occupancy threshold (for each oracle noise preset) and write the
  table (markdown, CSV, JSON) and a plot: the paper's temporal-aggregation and occupancy-threshold figures.

The sweep counts each keyframe's points once: the current frame first, then past frames one by one, taking a
snapshot at each requested number of frames; each snapshot's vote is thresholded at every ``min_points``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from easyocc.errors import EasyOccError, InputError

SWEEP_NAME = "label_sweep"
GT_MASKS = ("camera", "none")


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise EasyOccError(f"{flag} must be comma-separated integers, got '{text}'") from None
    if not values:
        raise EasyOccError(f"{flag} is empty")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from easyocc.labels.command import add_config_arguments
    from easyocc.labels.sources import add_source_arguments

    parser.add_argument("--gt", type=Path, required=True, help="Occ3D gts/ folder: <scene>/<sample_token>/labels.npz")
    parser.add_argument("--labels", type=Path, default=None, help="pseudo-labels folder to score (easyocc labels --out)")
    parser.add_argument("--json", type=Path, default=None, help="write the scores as JSON here")
    sweep = parser.add_argument_group("sweep (--sweep): label in memory over frames x min-points")
    sweep.add_argument("--sweep", action="store_true", help="sweep instead of scoring a labels folder")
    sweep.add_argument("--data", type=Path, default=None, help="nuScenes-format dataroot (SimScenes)")
    sweep.add_argument("--version", default="auto", help="nuScenes table version (default auto: the dataroot's only "
                       "v1.0-* folder, v1.0-trainval among several)")
    sweep.add_argument("--split", default="all", help="train, val or all (default all)")
    sweep.add_argument("--scenes", default=None, help="comma-separated scene names (then --split is not used)")
    sweep.add_argument("--sweep-frames", default="0,1,3,5,9,13", help="numbers of past frames (default 0,1,3,5,9,13)")
    sweep.add_argument("--sweep-min-points", default="1,2,3,5", help="occupancy thresholds (default 1,2,3,5)")
    sweep.add_argument("--noise-presets", default="none,realistic",
                       help="oracle noise presets to sweep (oracle sources only; default none,realistic)")
    sweep.add_argument("--sweep-carve", default="on", help="carving settings to sweep: on, off or on,off (default on)")
    sweep.add_argument("--ego-masks", type=Path, default=None, help="ego-vehicle masks folder (see easyocc labels)")
    sweep.add_argument("--workers", type=int, default=1, help="processes, a scene per task")
    sweep.add_argument("--out", type=Path, default=None, help="folder for label_sweep.{md,csv,json,png}")
    add_source_arguments(parser)
    add_config_arguments(parser)


# --- scoring a labels folder --------------------------------------------------------------------------------------

def score_folder(labels_dir: Path, gt_dir: Path):
    """Confusion matrices of pseudo-labels against GT: {"camera": ..., "none": ...}, and keyframe counts."""
    from easyocc.evaluation import ConfusionMatrix
    from easyocc.evaluation.runner import find_ground_truth
    from easyocc.occ3d import find_label_files, labels_as_prediction, read_labels

    labels = find_label_files(labels_dir)
    gts = find_ground_truth(gt_dir)
    missing_gt = sorted(set(labels) - set(gts))
    if missing_gt:
        raise InputError(labels[missing_gt[0]], f"no ground truth for this keyframe in {gt_dir} "
                                                f"({len(missing_gt)} of {len(labels)} labelled keyframes lack one)")
    matrices = {mask: ConfusionMatrix() for mask in GT_MASKS}
    for token, path in labels.items():
        gt = read_labels(gts[token][1], keys=("semantics", "mask_camera"))
        pseudo = labels_as_prediction(read_labels(path, keys=("semantics",)).semantics)
        matrices["camera"].update(gt.semantics, pseudo, gt.mask_camera)
        matrices["none"].update(gt.semantics, pseudo)
    return matrices, len(labels), len(gts) - len(labels)


# --- the sweep ----------------------------------------------------------------------------------------------------

@dataclass
class SweepTask:
    """One scene under one noise preset and carving setting (picklable, for worker processes)."""

    args: argparse.Namespace
    preset: str | None
    carve: bool
    scene: object
    gt: dict
    frames: list[int]
    min_points: list[int]


def past_only(config, **changes):
    """The sweep's settings: past frames only, every 2026 label idea off (it counts past frames one by one; the
    ideas are measured by ``benchmarks/bench_label_ideas.py``)."""
    return dataclasses.replace(config, future_frames=0, pass_through=False, rare_priority=False, **changes)


def sweep_sources(args: argparse.Namespace, preset: str | None):
    from easyocc.labels.sources import sources_from_args

    args = copy.copy(args)
    if preset is not None:
        args.oracle_noise = preset
    return sources_from_args(args, args.data)


def sweep_scene(task: SweepTask) -> dict:
    """{(frames, min_points): {mask: hist (18, 18)}} for one scene."""
    from easyocc.data.nuscenes_index import CAMERA_NAMES
    from easyocc.evaluation import ConfusionMatrix
    from easyocc.geometry import relative_transform
    from easyocc.labels.aggregate import accumulate_frame
    from easyocc.labels.command import config_from_args
    from easyocc.labels.lift import load_ego_masks
    from easyocc.labels.pipeline import CameraObserver
    from easyocc.labels.visibility import see_through_voxels
    from easyocc.labels.voxelize import vote
    from easyocc.occ3d import FREE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, read_labels

    config = past_only(config_from_args(task.args), carve=task.carve)
    semantics, depth = sweep_sources(task.args, task.preset)
    masks = load_ego_masks(task.args.ego_masks, CAMERA_NAMES) if task.args.ego_masks else None
    observer = CameraObserver(semantics, depth, config, masks)
    matrices = {(f, m): {mask: ConfusionMatrix() for mask in GT_MASKS} for f in task.frames for m in task.min_points}
    most = max(task.frames)
    window = {}
    for kf in task.scene.keyframes:
        t = kf.index
        for old in [i for i in window if i < t - most]:
            del window[old]
        current = observer.observe(kf, with_rays=config.carve)
        window[t] = current.past()
        carved = see_through_voxels(list(current.views), config.carve_margin) if config.carve else None
        gt = read_labels(task.gt[kf.token], keys=("semantics", "mask_camera"))
        counts = np.zeros((*OCC3D_GRID.shape, NUM_SEMANTIC_CLASSES), np.uint32)
        accumulate_frame(counts, window[t].cells, np.eye(4))
        for past in range(0, most + 1):
            if past:
                if t - past >= 0:
                    frame = window[t - past]
                    accumulate_frame(counts, frame.cells, relative_transform(kf.global_T_ego, frame.global_T_ego),
                                     config.dynamic_classes, blocked=carved)
            if past not in task.frames:
                continue
            voted, total = vote(counts, 1)
            for m in task.min_points:
                pseudo = np.where(total >= m, voted, FREE).astype(np.uint8)
                matrices[(past, m)]["camera"].update(gt.semantics, pseudo, gt.mask_camera)
                matrices[(past, m)]["none"].update(gt.semantics, pseudo)
    return {key: {mask: cm.hist for mask, cm in value.items()} for key, value in matrices.items()}


def _init_sweep_worker(threads: int, parent_pid: int) -> None:
    import numba

    from easyocc.processes import die_with_parent

    die_with_parent(parent_pid)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def run_sweep(tasks: list[SweepTask], workers: int) -> dict:
    """{(preset, carve, frames, min_points): {mask: ConfusionMatrix}} summed over the tasks' scenes."""
    import os

    from tqdm import tqdm

    from easyocc.evaluation import ConfusionMatrix

    totals: dict = {}

    def add(task: SweepTask, result: dict) -> None:
        for (f, m), hists in result.items():
            entry = totals.setdefault((task.preset, task.carve, f, m), {mask: ConfusionMatrix() for mask in GT_MASKS})
            for mask, hist in hists.items():
                entry[mask].hist += hist
                entry[mask].num_samples += len(task.scene.keyframes)

    bar = tqdm(total=sum(len(t.scene.keyframes) for t in tasks), unit="keyframe", desc="sweep", dynamic_ncols=True)
    with bar:
        if workers <= 1:
            for task in tasks:
                add(task, sweep_scene(task))
                bar.update(len(task.scene.keyframes))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            from easyocc.processes import stop_pool

            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_sweep_worker,
                                     initargs=(threads, os.getpid())) as pool:
                try:
                    for task, result in zip(tasks, pool.map(sweep_scene, tasks)):
                        add(task, result)
                        bar.update(len(task.scene.keyframes))
                except BaseException:
                    stop_pool(pool)
                    raise
    return totals


def sweep_rows(totals: dict) -> list[dict]:
    rows = []
    for (preset, carve, f, m), cms in sorted(totals.items(), key=lambda kv: (str(kv[0][0]), not kv[0][1], *kv[0][2:])):
        cam, full = cms["camera"].compute(), cms["none"].compute()
        rows.append({"noise": preset or "-", "carving": "on" if carve else "off", "frames": f, "min_points": m,
                     "mIoU_camera": round(cam.miou, 2),
                     "IoU_camera": round(cam.iou, 2), "mIoU_full": round(full.miou, 2), "IoU_full": round(full.iou, 2),
                     "keyframes": int(cms["camera"].num_samples[0])})
    return rows


def write_sweep(out: Path, rows: list[dict], meta: dict, min_points: int = 2) -> None:
    """label_sweep.md / .csv / .json / .png under ``out``."""
    import csv
    import io

    from easyocc.fileio import atomic_write, save_json

    columns = list(rows[0])
    header = ("| noise | carving | past frames | min points | mIoU (camera mask) | IoU (camera mask) "
              "| mIoU (full scene) | IoU (full scene) | keyframes |")
    lines = [header, "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    with atomic_write(out / f"{SWEEP_NAME}.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / f"{SWEEP_NAME}.csv", "w") as handle:
        handle.write(buffer.getvalue())
    save_json(out / f"{SWEEP_NAME}.json", {**meta, "rows": rows})
    plot_sweep(out / f"{SWEEP_NAME}.png", rows, min_points)


def plot_sweep(path: Path, rows: list[dict], min_points: int = 2) -> None:
    """Left: mIoU (camera mask) against past frames at ``min_points`` (or the nearest threshold swept); right: against
    the threshold at the most frames. One line per noise preset and carving setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from easyocc.fileio import atomic_write

    variants = list(dict.fromkeys((r["noise"], r["carving"]) for r in rows))
    frames = sorted({r["frames"] for r in rows})
    thresholds = sorted({r["min_points"] for r in rows})
    shown = min(thresholds, key=lambda m: abs(m - min_points))

    def miou(variant, f, m):
        return next(r["mIoU_camera"] for r in rows if (r["noise"], r["carving"]) == variant
                    and r["frames"] == f and r["min_points"] == m)

    colours = plt.get_cmap("tab10")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for v, variant in enumerate(variants):
        label = f"noise {variant[0]}" + ("" if variant[1] == "on" else ", no carving")
        style = dict(color=colours(v), linestyle="-" if variant[1] == "on" else "--", marker="o")
        left.plot(frames, [miou(variant, f, shown) for f in frames], label=label, **style)
        right.plot(thresholds, [miou(variant, frames[-1], m) for m in thresholds], label=label, **style)
    left.set(xlabel="past keyframes aggregated", ylabel="mIoU vs GT, camera mask (%)",
             title=f"Temporal aggregation (min points {shown})")
    right.set(xlabel="occupancy threshold (min points per voxel)", ylabel="mIoU vs GT, camera mask (%)",
              title=f"Occupancy threshold ({frames[-1]} past frames)")
    left.set_xticks(frames)
    right.set_xticks(thresholds)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def sweep_tasks(args: argparse.Namespace, frames: list[int], thresholds: list[int]) -> list[SweepTask]:
    from easyocc.evaluation.runner import find_ground_truth
    from easyocc.labels.command import select_scenes
    from easyocc.occ3d import label_path

    gts = find_ground_truth(args.gt)
    scenes = select_scenes(args)
    for scene in scenes:
        for kf in scene.keyframes:
            if kf.token not in gts:
                raise InputError(label_path(args.gt, scene.name, kf.token), "ground truth not found")
    oracle = args.semantics == "oracle" or args.depth == "oracle"
    presets = [p.strip() for p in args.noise_presets.split(",") if p.strip()] if oracle else [None]
    carves = {"on": True, "off": False}
    settings = [c.strip() for c in args.sweep_carve.split(",") if c.strip()]
    if not settings or any(c not in carves for c in settings):
        raise EasyOccError(f"--sweep-carve must be on, off or on,off; got '{args.sweep_carve}'")
    return [SweepTask(args, preset, carves[c], scene, {kf.token: gts[kf.token][1] for kf in scene.keyframes}, frames,
                      thresholds)
            for preset in presets for c in settings for scene in scenes]


def run(args: argparse.Namespace) -> int:
    from easyocc.data.nuscenes_index import resolve_version
    from easyocc.evaluation.runner import build_report, format_report
    from easyocc.labels.command import config_from_args
    from easyocc.fileio import require_file_path, require_folder_or_absent, save_json

    if args.json is not None:
        require_file_path(args.json)
    if not args.sweep:
        if args.labels is None:
            raise EasyOccError("give --labels DIR to score, or --sweep to label and score in memory")
        unused = [flag for flag, value in (("--data", args.data), ("--out", args.out)) if value is not None]
        if unused:
            raise EasyOccError(f"{' and '.join(unused)} belong to --sweep; scoring --labels does not use them")
        matrices, scored, unlabelled = score_folder(args.labels, args.gt)
        reports = {mask: build_report(cm, mask) for mask, cm in matrices.items()}
        print(f"{scored} labelled keyframes scored against {args.gt}"
              + (f" ({unlabelled} GT keyframes without labels ignored)" if unlabelled else ""))
        for report in reports.values():
            print()
            print(format_report(report))
        if args.json:
            save_json(args.json, {mask: r.to_dict() for mask, r in reports.items()})
        return 0

    if args.labels is not None:
        raise EasyOccError("--sweep labels in memory and does not read --labels; drop one of them")
    if args.data is None or args.out is None:
        raise EasyOccError("--sweep needs --data ROOT and --out DIR")
    require_folder_or_absent(args.out)
    args.version = resolve_version(args.data, args.version)
    if args.workers < 1:
        raise EasyOccError(f"--workers must be >= 1, got {args.workers}")
    frames = _int_list(args.sweep_frames, "--sweep-frames")
    thresholds = _int_list(args.sweep_min_points, "--sweep-min-points")
    if frames[0] < 0 or thresholds[0] < 1:
        raise EasyOccError("--sweep-frames must be >= 0 and --sweep-min-points >= 1")
    ideas = [flag for flag, value in (("--future-frames", args.future_frames), ("--pass-through", args.pass_through),
                                      ("--rare-priority", args.rare_priority)) if value]
    if ideas:
        raise EasyOccError(f"--sweep counts past frames only and does not use {', '.join(ideas)} (the 2026 label "
                           "ideas are measured by benchmarks/bench_label_ideas.py)")
    config = past_only(config_from_args(args))  # checked before the sweep, not after it
    tasks = sweep_tasks(args, frames, thresholds)
    rows = sweep_rows(run_sweep(tasks, args.workers))
    meta = {"data": str(args.data), "gt": str(args.gt), "semantics": args.semantics, "depth": args.depth,
            "settings": config.manifest(),
            "protocols": {"mIoU_camera": "Occ3D mIoU, GT camera mask, 17 classes",
                          "mIoU_full": "Occ3D mIoU, no mask (all voxels), 17 classes",
                          "IoU_camera": "geometric IoU (occupied vs free), GT camera mask",
                          "IoU_full": "geometric IoU (occupied vs free), no mask"}}
    write_sweep(args.out, rows, meta, config.min_points)
    print((args.out / f"{SWEEP_NAME}.md").read_text())
    print(f"wrote {args.out}/{SWEEP_NAME}.{{md,csv,json,png}}")
    if args.json:
        save_json(args.json, {**meta, "rows": rows})
    return 0
