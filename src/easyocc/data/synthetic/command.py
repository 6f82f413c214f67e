"""``easyocc synth``: generate a SimScenes dataset (a procedural nuScenes-format world with exact Occ3D GT)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset directory (new, empty, or an earlier SimScenes dataset)")
    parser.add_argument("--scenes", type=int, default=4, help="number of scenes (default 4; the last ~25%% are val)")
    parser.add_argument("--keyframes", type=int, default=20, help="keyframes per scene, 2 Hz (default 20 = 10 s)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(800, 450), metavar=("W", "H"),
                        help="camera image size (default 800 450, half the nuScenes resolution)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0); the same seed gives the same bytes")
    parser.add_argument("--sweeps", choices=("all", "neighbours", "none"),
                        help="camera sweeps (the 12 Hz images between keyframes) to write: all, neighbours (the one "
                             "before and the one after each keyframe image; the default) or none")
    parser.add_argument("--preview", metavar="PNG", help="also draw the middle keyframe of the first scene to PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import json

    from easyocc.data.synthetic.generate import SynthConfig, generate_dataset
    from easyocc.errors import EasyOccError
    from easyocc.fileio import require_file_path

    if args.preview:
        require_file_path(args.preview)
    sweeps = {} if args.sweeps is None else {"sweeps": args.sweeps}  # SynthConfig holds the default
    try:
        config = SynthConfig(scenes=args.scenes, keyframes=args.keyframes, image_size=tuple(args.image_size),
                             seed=args.seed, **sweeps)
    except ValueError as exc:
        raise EasyOccError(str(exc)) from None
    report = generate_dataset(args.out, config, progress=not args.quiet)
    summary = {"out": str(report.out_dir), "scenes": report.scene_names, "keyframes": report.keyframes,
               "images": report.images, "sweeps": report.sweeps, "annotations": report.annotations,
               "seconds": {k: round(v, 2) for k, v in report.seconds.items()}}
    print(json.dumps(summary))
    if args.preview:
        from easyocc.data.synthetic.preview import save_keyframe_preview

        print(f"preview: {save_keyframe_preview(args.out, args.preview, version=config.version)}")
    return 0
