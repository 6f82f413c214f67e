"""``easyocc labels``: Easy3D pseudo-labels for every keyframe of a nuScenes-format dataroot.

The options are parsed into a :class:`~easyocc.labels.dataset.DatasetLabeler` (the library face: sources, config,
manifest, resume, shards, workers), which writes ``<out>/<scene_name>/<sample_token>/labels.npz`` and
``<out>/manifest.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from easyocc.labels.options import add_config_arguments
    from easyocc.labels.sources import add_source_arguments

    parser.add_argument("--data", type=Path, required=True, help="nuScenes-format dataroot (real or SimScenes)")
    parser.add_argument("--version", default="auto", help="nuScenes table version (default auto: the dataroot's only "
                        "v1.0-* folder, v1.0-trainval among several)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: <out>/<scene>/<token>/labels.npz")
    parser.add_argument("--split", default="train", help="train, val or all (default train)")
    parser.add_argument("--scenes", default=None, help="comma-separated scene names (then --split is not used)")
    parser.add_argument("--ego-masks", type=Path, default=None,
                        help="folder of <CAMERA>_mask.png ego-vehicle masks (dark = car body, dropped)")
    parser.add_argument("--workers", type=int, default=1, help="processes on this machine, a scene per task")
    parser.add_argument("--shard", default=None, metavar="i/n", help="label only shard i of n (scenes split by name)")
    parser.add_argument("--backend", default="auto", help="the 3D stage's implementation: numba (CPU kernels), torch "
                        "(on --device) or auto (default: torch on a GPU, numba on the CPU); the labels are the same")
    add_source_arguments(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from easyocc.errors import EasyOccError
    from easyocc.fileio import require_folder_or_absent
    from easyocc.labels.dataset import DatasetLabeler
    from easyocc.labels.options import config_from_args, parse_shard, scene_names
    from easyocc.labels.sources import sources_from_args

    # Everything is checked before the manifest is written.
    config = config_from_args(args)
    shard = parse_shard(args.shard)
    if args.workers < 1:
        raise EasyOccError(f"--workers must be >= 1, got {args.workers}")
    require_folder_or_absent(args.out)
    if args.cache_dir is not None:
        require_folder_or_absent(args.cache_dir, "2D cache folder")
    semantics, depth = sources_from_args(args, args.data)
    labeler = DatasetLabeler(args.data, semantics, depth, config, version=args.version, ego_masks=args.ego_masks,
                             device=args.device, backend=args.backend)
    scenes = labeler.scenes(args.split, scene_names(args.scenes), shard)
    labeler.claim(args.out)
    for s in scenes:
        if len(s.keyframes) == 1:
            print(f"easyocc labels: note: scene {s.name} has a single keyframe; its labels use that frame alone",
                  file=sys.stderr)
    report = labeler.write(args.out, scenes, args.workers)
    rate = report.written / report.seconds if report.seconds > 0 else 0.0
    print(f"wrote {report.written} keyframes ({report.already} already there) of {report.scenes} scenes in "
          f"{report.seconds:.1f} s ({rate:.2f} keyframes/s) -> {args.out}")
    return 0
