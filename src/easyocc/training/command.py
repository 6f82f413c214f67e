"""``easyocc train``: train the EasyOcc model on pseudo-labels, or the rendering model (a config with a ``render``
section) on images, sweeps and 2D maps, with or without the pseudo loss (one process, or many under torchrun)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config file, or a built-in name: demo, paper, occnerf, "
                        "occnerf-pseudo, occnerf-demo, occnerf-pseudo-demo (configs/*.yaml); not needed with --resume, "
                        "which reads RUN/config.yaml")
    parser.add_argument("--data", type=Path, required=True, help="nuScenes-format dataroot (nuScenes or SimScenes)")
    parser.add_argument("--labels", type=Path,
                        help="pseudo-labels: LABELS/<scene>/<sample_token>/labels.npz (needed when the config's "
                             "loss.pseudo_weight > 0: EasyOcc, or a rendering model with the pseudo loss; not with "
                             "ray queries alone)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, model.pt)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--split", help="train on this split's scenes (default: the config's data.split)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set optim.epochs=2 model.backbone=resnet18")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: the config's device, 'auto')")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from easyocc.config import load_config, resolve_config_path
    from easyocc.errors import InputError
    from easyocc.training.config import TrainConfig
    from easyocc.training.loop import CONFIG_FILE, train

    overrides = list(args.overrides)
    if args.split:
        overrides.append(f"data.split={args.split}")
    if args.device:
        overrides.append(f"device={args.device}")
    if args.resume:
        # The run's own config is the base; --set may still change e.g. optim.epochs to train longer.
        config = load_config(TrainConfig, args.out / CONFIG_FILE, overrides)
    elif args.config is None:
        raise InputError(args.out, "a new run needs --config FILE")
    else:
        config = load_config(TrainConfig, resolve_config_path(args.config), overrides)
    if args.labels is not None and not config.uses_pseudo_loss:
        print("note: loss.pseudo_weight is 0, so --labels is not read", file=sys.stderr)
    model_path = train(config, args.data, args.labels, args.out, resume=args.resume, show_progress=not args.quiet)
    print(f"trained model: {model_path}")
    return 0
