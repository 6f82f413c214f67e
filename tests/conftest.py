"""Shared fixtures: paths to the real data excerpts, and a devkit-loadable copy of the real nuScenes keyframe."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

# ../shared/realdata beside the repository; EASYOCC_REALDATA points elsewhere; from a git worktree (/work/wt/NAME)
# the nearest ancestor folder holding shared/realdata.
REALDATA = Path(os.environ.get("EASYOCC_REALDATA") or next(
    (p / "shared" / "realdata" for p in Path(__file__).resolve().parents[1:] if (p / "shared" / "realdata").is_dir()),
    Path(__file__).resolve().parents[1].parent / "shared" / "realdata",
))
REAL_KEYFRAME = REALDATA / "nuscenes-scene0061-kf0"
REAL_OCC3D_LABELS = REALDATA / "occ3d-sample" / "labels.npz"
REAL_EGO_MASKS = REALDATA / "ego-masks"
REAL_SAMPLE_TOKEN = "ca9a282c9e77460f8360f564131a8af5"


def require(path: Path) -> Path:
    """Skip the calling test, with the reason, when a real-data excerpt is absent."""
    if not path.exists():
        pytest.skip(f"real data excerpt not found: {path} (the tests look for ../shared/realdata beside the repo)")
    return path


@pytest.fixture(scope="session")
def real_nuscenes_root(tmp_path_factory) -> Path:
    """A temporary copy of the real keyframe whose tables nuscenes-devkit loads.

    The excerpt lacks the log, map, instance and sample_annotation tables and the prev/next links; minimal rows
    are added here, leaving every real value (poses, calibration, timestamps) untouched.
    """
    src = require(REAL_KEYFRAME)
    root = tmp_path_factory.mktemp("nuscenes-real")
    shutil.copytree(src / "samples", root / "samples")
    tables = root / "v1.0-mini"
    shutil.copytree(src / "v1.0-mini", tables)

    def load(name):
        return json.loads((tables / f"{name}.json").read_text())

    def dump(name, rows):
        (tables / f"{name}.json").write_text(json.dumps(rows))

    scenes, samples, sample_data = load("scene"), load("sample"), load("sample_data")
    for scene in scenes:
        scene["first_sample_token"] = scene["last_sample_token"] = samples[0]["token"]
    for rec in samples + sample_data:
        rec.setdefault("prev", "")
        rec.setdefault("next", "")
    dump("scene", scenes)
    dump("sample", samples)
    dump("sample_data", sample_data)
    log_token = scenes[0]["log_token"]
    dump("log", [{"token": log_token, "logfile": "", "vehicle": "n015", "date_captured": "2018-07-24",
                  "location": "singapore-onenorth"}])
    dump("map", [{"token": "map0", "log_tokens": [log_token], "category": "semantic_prior", "filename": ""}])
    dump("instance", [])
    dump("sample_annotation", [])
    return root


#: The small SimScenes dataset the tests of every stage share: 2 scenes x 4 keyframes of 160x90 images, seed 0,
#: no camera sweeps.
TINY_SIMSCENES = {"scenes": 2, "keyframes": 4, "image_size": (160, 90), "seed": 0, "sweeps": "none"}
#: SimScenes with every camera sweep (12 Hz): 2 scenes x 3 keyframes of 320x180 images, seed 0 (~4 s to generate).
SWEEPS_SIMSCENES = {"scenes": 2, "keyframes": 3, "image_size": (320, 180), "seed": 0, "sweeps": "all"}


@pytest.fixture(scope="session")
def tiny_simscenes(tmp_path_factory) -> Path:
    """A generated SimScenes dataroot (nuScenes tables in ``v1.0-mini``, Occ3D GT in ``gts/``, exact depth and
    semantics in ``sim/``): scene-0001 is train, scene-0002 val. Read-only: copy it before changing anything."""
    from easyocc.data.synthetic.generate import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("simscenes") / "tiny"
    generate_dataset(root, SynthConfig(**TINY_SIMSCENES), progress=False)
    return root


@pytest.fixture(scope="session")
def sweeps_simscenes(tmp_path_factory) -> Path:
    """A SimScenes dataroot with all camera sweeps (``sweeps/CAM_*``, five between two keyframes), larger images
    than ``tiny_simscenes`` so that sub-pixel geometry shows. Read-only."""
    from easyocc.data.synthetic.generate import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("simscenes-sweeps") / "sweeps"
    generate_dataset(root, SynthConfig(**SWEEPS_SIMSCENES), progress=False)
    return root
