"""``easyocc eval``: score predictions against Occ3D ground truth, every number labelled by its protocol."""

from __future__ import annotations

import argparse

from easyocc.evaluation.protocols import MASK_KEYS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="folder of <sample_token>.npz predictions (key 'pred' or 'arr_0')")
    parser.add_argument("--gt", required=True, help="Occ3D gts/ folder: <scene>/<sample_token>/labels.npz")
    parser.add_argument(
        "--mask",
        choices=list(MASK_KEYS),
        default="camera",
        help="voxels counted by mIoU/IoU: camera (official, default), none, lidar, camera+lidar",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument(
        "--allow-missing", action="store_true", help="evaluate only the GT samples that have a prediction"
    )
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    parser.add_argument("--rayiou", action="store_true", help="also compute RayIoU (SparseOcc); needs --data")
    parser.add_argument("--data", metavar="NUSCENES_ROOT", help="nuScenes-format dataroot giving the ray origins")
    parser.add_argument("--version", default="auto", help="nuScenes table version (default auto: the dataroot's only "
                        "v1.0-* folder, v1.0-trainval among several)")
    parser.add_argument("--ray-backend", default="auto",
                        help="RayIoU caster: numba (CPU kernels), torch (on --ray-device) or auto (default: torch on a "
                             "GPU, numba on the CPU)")
    parser.add_argument("--ray-device", default="auto",
                        help="where the torch caster runs: auto (default: the GPU when torch sees one), cpu, cuda, "
                             "cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from easyocc.errors import EasyOccError
    from easyocc.evaluation.runner import EvalConfig, evaluate_dirs, format_report
    from easyocc.fileio import require_file_path, save_json

    if args.rayiou and not args.data:
        raise EasyOccError("--rayiou needs --data NUSCENES_ROOT (the LiDAR origins come from its tables)")
    if args.workers is not None and args.workers < 1:
        raise EasyOccError("--workers must be at least 1")
    if args.json:
        require_file_path(args.json)
    try:
        config = EvalConfig(mask=args.mask, allow_missing=args.allow_missing, workers=args.workers,
                            rayiou=args.rayiou, data_root=args.data, version=args.version, ray_device=args.ray_device,
                            ray_backend=args.ray_backend, progress=not args.no_progress)
    except ValueError as exc:
        raise EasyOccError(str(exc)) from None
    report = evaluate_dirs(args.pred, args.gt, config)
    print(format_report(report))
    if args.json:
        save_json(args.json, report.to_dict())
    return 0
