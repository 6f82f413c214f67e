"""Scoring predictions: Occ3D mIoU under each named protocol, geometric IoU, RayIoU.

>>> from easyocc.evaluation import evaluate_dirs, format_report       # doctest: +SKIP
>>> print(format_report(evaluate_dirs("preds/", "gts/", mask="camera")))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

# Exported lazily, so that importing a light submodule (the command's --help) does not load numba.
_EXPORTS = {
    "ConfusionMatrix": "metrics",
    "VoxelScores": "metrics",
    "RayIoU": "rayiou",
    "RayScores": "rayiou",
    "cast_rays": "rayiou",
    "cast_rays_torch": "rayiou",
    "lidar_origins": "rayiou",
    "EvalConfig": "runner",
    "EvalReport": "runner",
    "build_report": "runner",
    "evaluate_dirs": "runner",
    "format_report": "runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
