"""``easyocc eval``: score predictions against Occ3D ground truth, every number labelled by its protocol."""

from __future__ import annotations

import argparse

from easyocc.evaluation.protocols import MASK_KEYS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="folder of <sample_token>.npz predictions (key 'pred' or 'arr_0')")
    parser.add_argument("--gt", required=True, help="Occ3D gts/ folder: <scene>/<sample_token>/labels.npz")
    parser.add_argument("--config", help="YAML file of EvalConfig fields (mask, allow_missing, workers, rayiou, "
                        "data_root, version, ray_backend, ray_device); --set and the options below override it")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set mask=none workers=4")
    parser.add_argument("--mask", choices=list(MASK_KEYS),
                        help="voxels counted by mIoU/IoU: camera (official, default), none, lidar, camera+lidar")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--allow-missing", action="store_true", default=None,
                        help="evaluate only the GT samples that have a prediction")
    parser.add_argument("--workers", type=int, help="decoding processes (default: CPU count)")
    parser.add_argument("--rayiou", action="store_true", default=None,
                        help="also compute RayIoU (SparseOcc); needs --data")
    parser.add_argument("--data", metavar="NUSCENES_ROOT", help="nuScenes-format dataroot giving the ray origins")
    parser.add_argument("--version", help="nuScenes table version (default auto: the dataroot's only v1.0-* folder, "
                        "v1.0-trainval among several)")
    parser.add_argument("--ray-backend", help="RayIoU caster: numba (CPU kernels), torch (on --ray-device) or auto "
                        "(default: torch on a GPU, numba on the CPU)")
    parser.add_argument("--ray-device", help="where the torch caster runs: auto (default: the GPU when torch sees "
                        "one), cpu, cuda, cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from easyocc.config import load_config
    from easyocc.evaluation.runner import EvalConfig, evaluate_dirs, format_report
    from easyocc.fileio import require_file_path, save_json

    if args.json:
        require_file_path(args.json)
    config = load_config(EvalConfig, args.config, args.overrides, {
        "mask": args.mask, "allow_missing": args.allow_missing, "workers": args.workers, "rayiou": args.rayiou,
        "data_root": args.data, "version": args.version, "ray_backend": args.ray_backend,
        "ray_device": args.ray_device, "progress": False if args.no_progress else None})
    report = evaluate_dirs(args.pred, args.gt, config)
    print(format_report(report))
    if args.json:
        save_json(args.json, report.to_dict())
    return 0
