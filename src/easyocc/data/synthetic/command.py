"""``easyocc synth``: generate a SimScenes dataset (a procedural nuScenes-format world with exact Occ3D GT)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from easyocc.data.synthetic.generate import SynthConfig

    d = SynthConfig()
    parser.add_argument("--out", required=True, help="dataset directory (new, empty, or an earlier SimScenes dataset)")
    parser.add_argument("--config", help="YAML file of SynthConfig fields (scenes, keyframes, image_size, seed, sweeps, "
                        "lidar, style, ...); --set and the options below override it")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set style.ego_speed=[3,5] jpeg_quality=95")
    parser.add_argument("--scenes", type=int, help=f"number of scenes (default {d.scenes}; the last ~25%% are val)")
    parser.add_argument("--keyframes", type=int, help=f"keyframes per scene, 2 Hz (default {d.keyframes} = 10 s)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"),
                        help=f"camera image size (default {d.image_size[0]} {d.image_size[1]}, half the nuScenes "
                             "resolution)")
    parser.add_argument("--seed", type=int, help=f"world seed (default {d.seed}); the same seed gives the same bytes")
    parser.add_argument("--sweeps", choices=("all", "neighbours", "none"),
                        help="camera sweeps (the 12 Hz images between keyframes) to write: all, neighbours (the one "
                             f"before and the one after each keyframe image) or none (default {d.sweeps})")
    parser.add_argument("--preview", metavar="PNG", help="also draw the middle keyframe of the first scene to PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import json

    from easyocc.config import load_config
    from easyocc.data.synthetic.generate import SynthConfig, generate_dataset
    from easyocc.fileio import require_file_path

    if args.preview:
        require_file_path(args.preview)
    config = load_config(SynthConfig, args.config, args.overrides, {
        "scenes": args.scenes, "keyframes": args.keyframes, "seed": args.seed, "sweeps": args.sweeps,
        "image_size": None if args.image_size is None else list(args.image_size)})
    report = generate_dataset(args.out, config, progress=not args.quiet)
    summary = {"out": str(report.out_dir), "scenes": report.scene_names, "keyframes": report.keyframes,
               "images": report.images, "sweeps": report.sweeps, "annotations": report.annotations,
               "seconds": {k: round(v, 2) for k, v in report.seconds.items()}}
    print(json.dumps(summary))
    if args.preview:
        from easyocc.data.synthetic.preview import save_keyframe_preview

        print(f"preview: {save_keyframe_preview(args.out, args.preview, version=config.version)}")
    return 0
