"""``easyocc label-quality``: how good are pseudo-labels? Scored against ground truth with the project's evaluator.

Two modes:
- ``--labels DIR --gt GTDIR``: score a labels folder (``<scene>/<token>/labels.npz``) against an Occ3D ``gts/`` tree,
  under the GT camera mask (the official protocol) and on the full scene (no mask);
- ``--sweep --data ROOT --gt GTDIR --frames 0,1,3,5,9,13 --min-points 1,2,3,5 --out DIR``: label every keyframe in
  memory for each number of past frames and each occupancy threshold (for each oracle noise preset) and write the
  table (markdown, CSV, JSON) and a plot (:mod:`easyocc.labels.sweep`, the library this command parses flags into).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from easyocc.errors import EasyOccError, InputError


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise EasyOccError(f"{flag} must be comma-separated integers, got '{text}'") from None
    if not values:
        raise EasyOccError(f"{flag} is empty")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from easyocc.labels.options import add_config_arguments
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
    from easyocc.labels.sweep import GT_MASKS
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


def sweep_tasks(args: argparse.Namespace, config, frames: list[int], thresholds: list[int]) -> list:
    """The sweep's tasks (``sweep.SweepTask``: a scene under one noise preset and carving setting, as data): the
    sources built here once per preset, the ego masks read once."""
    import dataclasses

    from easyocc.data.nuscenes_index import CAMERA_NAMES
    from easyocc.evaluation.runner import find_ground_truth
    from easyocc.labels.dataset import select_scenes
    from easyocc.labels.lift import load_ego_masks
    from easyocc.labels.options import scene_names
    from easyocc.labels.sources import SourceSpec
    from easyocc.labels.sweep import SweepTask
    from easyocc.occ3d import label_path

    gts = find_ground_truth(args.gt)
    scenes = select_scenes(args.data, args.version, args.split, scene_names(args.scenes))
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
    masks = load_ego_masks(args.ego_masks, CAMERA_NAMES) if args.ego_masks else None
    spec = SourceSpec.from_args(args)
    tasks = []
    for preset in presets:
        semantics, depth = (spec if preset is None else dataclasses.replace(spec, oracle_noise=preset)).build(args.data)
        tasks += [SweepTask(semantics, depth, preset, dataclasses.replace(config, carve=carves[c]), masks, scene,
                            {kf.token: gts[kf.token][1] for kf in scene.keyframes}, frames, thresholds)
                  for c in settings for scene in scenes]
    return tasks


def run(args: argparse.Namespace) -> int:
    from easyocc.data.nuscenes_index import resolve_version
    from easyocc.evaluation.runner import build_report, format_report
    from easyocc.fileio import require_file_path, require_folder_or_absent, save_json
    from easyocc.labels.options import config_from_args
    from easyocc.labels.sweep import SWEEP_NAME, past_only, run_sweep, sweep_rows, write_sweep

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
    tasks = sweep_tasks(args, config, frames, thresholds)
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
