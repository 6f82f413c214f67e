"""Helpers for the model/training tests: a small multi-keyframe dataroot made from the real nuScenes keyframe, and
pseudo-labels for it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from easyocc.occ3d import FREE, GRID_SHAPE, OCC3D_GRID, write_labels

@pytest.fixture(scope="module", autouse=False)
def torch_single_thread():
    """One torch thread for a test module: these tensors are small, and on a shared machine two threads spend more
    time waiting for each other than computing (3x slower measured under load). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: A tiny network and small inputs: a training step takes well under a second on one core.
TINY_OVERRIDES = [
    "model.backbone=resnet18",
    "model.neck_channels=16",
    "model.feature_channels=8",
    "model.lift_downsample=4",
    "model.volume_channels=4",
    "model.volume_blocks=[1,1]",
    "data.image_size=[72,128]",
    "data.num_workers=0",
    "optim.lr=0.01",
    "optim.encoder_lr=0.001",
    "optim.schedule=step",
    "optim.milestones=[2]",
    "optim.gamma=0.5",
    "log_every=1",
]


def crash_on_call(monkeypatch, owner: type, call: int) -> None:
    """Make ``owner.forward`` raise KeyboardInterrupt on its ``call``-th call from now on (a crash in the middle of
    a training run); ``monkeypatch.undo()`` restores it."""
    calls = {"n": 0}
    original = owner.forward

    def crashing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, "forward", crashing)


def replicate_keyframe(source_root: Path, out_root: Path, copies: int) -> list[str]:
    """Copy a one-keyframe dataroot into ``out_root`` with ``copies`` keyframes in its scene: the same images and
    calibration, new tokens and timestamps 0.5 s apart, linked prev/next. Also writes splits.json (all scenes in
    train and val). Returns the sample tokens in order."""
    shutil.copytree(source_root, out_root)
    tables = out_root / "v1.0-mini"
    load = lambda name: json.loads((tables / f"{name}.json").read_text())  # noqa: E731
    scenes, samples, sample_data = load("scene"), load("sample"), load("sample_data")
    first, first_data = samples[0], [sd for sd in sample_data if sd["sample_token"] == samples[0]["token"]]
    tokens = [first["token"]] + [f"{first['token'][:-4]}{i:04d}" for i in range(1, copies)]
    new_samples, new_data = [], []
    for i, token in enumerate(tokens):
        new_samples.append({**first, "token": token, "timestamp": first["timestamp"] + i * 500_000,
                            "prev": tokens[i - 1] if i else "", "next": tokens[i + 1] if i + 1 < copies else ""})
        for sd in first_data:
            new_data.append({**sd, "token": sd["token"] if i == 0 else f"{sd['token'][:-4]}{i:04d}",
                             "sample_token": token, "prev": "", "next": ""})
    scenes[0].update(first_sample_token=tokens[0], last_sample_token=tokens[-1], nbr_samples=copies)
    for name, rows in (("scene", scenes), ("sample", new_samples), ("sample_data", new_data)):
        (tables / f"{name}.json").write_text(json.dumps(rows))
    (out_root / "splits.json").write_text(json.dumps({"train": [scenes[0]["name"]], "val": [scenes[0]["name"]]}))
    return tokens


def synthetic_labels(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learnable pseudo-labels: a road layer, a few boxes of other classes, free above; camera mask = a disc."""
    rng = np.random.default_rng(seed)
    centers = OCC3D_GRID.centers()
    semantics = np.full(GRID_SHAPE, FREE, dtype=np.uint8)
    semantics[:, :, 2] = 11
    for _ in range(6):
        x, y = rng.uniform(-10, 10, size=2)
        inside = (np.abs(centers[..., 0] - x) < 2.5) & (np.abs(centers[..., 1] - y) < 1.5) & (centers[..., 2] < 1.2)
        semantics[inside & (centers[..., 2] > -0.2)] = rng.choice([4, 10, 15, 16])
    radius = np.hypot(centers[..., 0], centers[..., 1])
    mask_camera = ((radius < 12) & (radius > 2)).astype(np.uint8)
    return semantics, np.ones(GRID_SHAPE, dtype=np.uint8), mask_camera


def write_pseudo_labels(labels_dir: Path, scene_name: str, tokens: list[str]) -> None:
    for i, token in enumerate(tokens):
        write_labels(labels_dir / scene_name / token / "labels.npz", *synthetic_labels(i))
