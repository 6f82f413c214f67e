"""``easyocc predict``: the options of :func:`easyocc.predict.predict_split`, which writes the predictions."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="RUN/model.pt (or RUN/checkpoints/last.pt)")
    parser.add_argument("--data", type=Path, required=True, help="nuScenes-format dataroot")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for <sample_token>.npz: new, empty, or an earlier easyocc predict folder")
    parser.add_argument("--split", default="val", help="scenes to predict (default: val)")
    parser.add_argument("--version", help="nuScenes table version (default: the run's, 'auto' = the dataroot's "
                        "only v1.0-* folder)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: the GPU when present)")
    parser.add_argument("--batch-size", type=int, default=1, help="keyframes per forward pass")
    parser.add_argument("--workers", type=int, default=2, help="image loading processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from easyocc.predict import predict_split

    files = predict_split(args.checkpoint, args.data, args.out, args.split, args.version, args.device,
                          args.batch_size, args.workers, show_progress=not args.quiet)
    print(f"wrote {len(files)} predictions (split {args.split}) to {args.out}")
    return 0
