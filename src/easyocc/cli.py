"""``easyocc <command>``: one entry point; each command lives in its own module, imported only when it runs.

A command module provides ``add_arguments(parser)`` and ``run(args) -> int | None``. Errors meant for the user
(:class:`~easyocc.errors.EasyOccError`) are printed in one line with exit code 2, without a traceback; Ctrl-C and
SIGTERM stop a command cleanly (its worker processes too) with exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from easyocc import __version__
from easyocc.errors import EasyOccError
from easyocc.processes import terminate_as_interrupt

#: name -> (module, one-line help). Keep in pipeline order; the README lists the same commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("easyocc.data.synthetic.command",
              "generate SimScenes: a procedural nuScenes-format dataset with exact Occ3D ground truth"),
    "labels": ("easyocc.labels.command", "3D pseudo-labels (Easy3D-Labels) from 2D semantics and depth"),
    "label-quality": ("easyocc.labels.quality", "score pseudo-labels against ground truth; sweep frames/min-points"),
    "train": ("easyocc.training.command", "train the EasyOcc model on pseudo-labels (CPU, GPU, torchrun)"),
    "predict": ("easyocc.predict_command", "write Occ3D predictions of a trained model for a split"),
    "eval": ("easyocc.evaluation.command", "score predictions against Occ3D ground truth (mIoU, IoU, RayIoU)"),
    "demo": ("easyocc.demo", "the whole job on a small SimScenes: labels, training, prediction, scores, a report"),
    "compare": ("easyocc.experiments.command",
                "train named variants on one SimScenes world and compare quality and cost (the paper's tables)"),
    "view": ("easyocc.viewer.command", "interactive 3D viewer in the browser: data, pseudo-labels, predictions, errors"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="easyocc",
        description="Camera-only 3D semantic occupancy from 3D pseudo-labels (EasyOcc), with an Occ3D evaluator.",
    )
    parser.add_argument("--version", action="version", version=f"easyocc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        with terminate_as_interrupt():  # SIGTERM unwinds like Ctrl-C: workers stopped, temporaries removed
            return int(module.run(args) or 0)
    except EasyOccError as exc:
        print(f"easyocc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"easyocc {args.command}: interrupted", file=sys.stderr)
        return 130
