"""The README's examples of the pipeline (labels -> train -> predict -> eval) run as written on the tiny SimScenes,
only their paths replaced: the dataroots by the tiny dataset, the output folders by temporary ones, and the
training config file by a tiny one (same keys, a network that trains in seconds)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from easyocc import cli
from easyocc.config import BUILTIN_CONFIG_DIR, config_to_dict, load_config
from easyocc.training.config import TrainConfig
from model_fixtures import TINY_OVERRIDES, torch_single_thread  # noqa: F401

pytestmark = [pytest.mark.usefixtures("torch_single_thread"), pytest.mark.slow]  # eleven commands end to end

README = Path(__file__).resolve().parents[1] / "README.md"

#: The examples, in the order a user would run them (each must appear in the README exactly so).
EXAMPLES = [
    "easyocc labels --data data/simscenes --out labels/ --semantics oracle --depth oracle --oracle-noise realistic",
    "easyocc labels --data data/simscenes --version v1.0-mini --out labels/ --semantics oracle --depth oracle "
    "--oracle-noise realistic --frames 13 --min-points 2 --workers 2",
    "easyocc label-quality --labels labels/ --gt data/simscenes/gts --json quality.json",
    "easyocc train --config configs/demo.yaml --data data/simscenes --labels labels/ --out runs/demo",
    "easyocc train --config configs/demo.yaml --data data/simscenes --out runs/rays "
    "--set loss.pseudo_weight=0 loss.ray_queries.weight=1 sources.oracle_noise=realistic",
    "easyocc train --config configs/demo.yaml --data data/simscenes --labels labels/ --out runs/voxel-rays "
    "--set loss.ray_queries.weight=0.5 sources.oracle_noise=realistic",
    "easyocc train --data data/nuscenes --labels labels/ --out runs/paper --resume",
    "easyocc predict --checkpoint runs/demo/model.pt --data data/simscenes --out preds/ --split val",
    "easyocc eval --pred preds/ --gt data/simscenes/gts",
    "easyocc eval --pred runs/val-preds --gt data/occ3d/gts --json runs/val-eval.json",
    "easyocc eval --pred runs/val-preds --gt data/occ3d/gts --mask none --rayiou --data data/nuscenes",
]


def readme_commands() -> set[str]:
    """Every ``easyocc ...`` command of the README's bash blocks, continuation lines joined, comments dropped."""
    commands = set()
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for command in re.sub(r"\\\n\s*", "", block).splitlines():
            command = command.split("  #")[0].strip()
            if command.startswith("easyocc "):
                commands.add(" ".join(command.split()))
    return commands


def substitute(command: str, paths: dict[str, Path]) -> list[str]:
    """The command's arguments (after ``easyocc``) with each path that starts with a key of ``paths`` moved."""
    out = []
    for token in shlex.split(command)[1:]:
        for old, new in paths.items():
            stem = old.rstrip("/")
            if token == old or token.startswith(stem + "/") or (token == stem and not old.endswith("/")):
                token = str(new) + token[len(stem):].rstrip("/")
                break
        out.append(token)
    return out


def test_readme_pipeline_examples_run_as_written(tiny_simscenes, tmp_path, capsys):
    documented = readme_commands()
    missing = [c for c in EXAMPLES if c not in documented]
    assert not missing, f"README no longer shows: {missing}"
    config = load_config(TrainConfig, None, [*TINY_OVERRIDES, "optim.epochs=1", "data.image_size=[32,64]",
                                             "loss.lovasz_voxels=occupied"])
    tiny_config = tmp_path / "tiny.yaml"
    tiny_config.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    paths = {
        "configs/demo.yaml": tiny_config,
        "data/simscenes": tiny_simscenes, "data/nuscenes": tiny_simscenes, "data/occ3d/gts": tiny_simscenes / "gts",
        "labels/": tmp_path / "labels", "runs/demo": tmp_path / "runs" / "demo", "runs/paper": tmp_path / "runs" / "demo",
        "runs/rays": tmp_path / "runs" / "rays", "runs/voxel-rays": tmp_path / "runs" / "voxel-rays",
        "runs/val-preds": tmp_path / "preds", "runs/val-eval.json": tmp_path / "val-eval.json",
        "preds/": tmp_path / "preds", "quality.json": tmp_path / "quality.json",
    }
    for command in EXAMPLES:
        code = cli.main(substitute(command, paths))
        captured = capsys.readouterr()
        assert code == 0, f"{command}\n{captured.err[-2000:]}"

    labels = sorted((tmp_path / "labels").glob("*/*/labels.npz"))
    assert [p.parts[-3] for p in labels] == ["scene-0001"] * 4  # the train split; the second command resumed
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert quality["camera"]["num_samples"] == 4 and quality["camera"]["mIoU"] > 5.0
    assert (tmp_path / "runs" / "demo" / "model.pt").is_file()
    for run, terms in (("rays", {"ray_queries"}), ("voxel-rays", {"ce", "lovasz", "ray_queries"})):
        log = json.loads((tmp_path / "runs" / run / "train_log.jsonl").read_text().splitlines()[-1])
        assert terms <= set(log) and ("ce" in log) == ("ce" in terms) and np.isfinite(log["loss"])
    manifest = json.loads((tmp_path / "preds" / "predictions.json").read_text())
    assert manifest["split"] == "val" and len(manifest["samples"]) == 4 and manifest["complete"] is True
    scores = json.loads((tmp_path / "val-eval.json").read_text())
    assert scores["num_samples"] == 4 and scores["not_predicted"] == 4 and scores["missing_predictions"] == 0
    assert 0.0 <= scores["IoU"] <= 100.0


#: The rendering model's block ("Training and prediction"), after its ``easyocc synth`` line (whose world the
#: ``sweeps_simscenes`` fixture stands in for: the same generator, smaller).
RENDERING_EXAMPLES = [
    "easyocc train --config occnerf-demo --data data/world --out runs/occnerf-demo",
    "easyocc predict --checkpoint runs/occnerf-demo/model.pt --data data/world --out preds/occnerf-demo",
    "easyocc eval --pred preds/occnerf-demo --gt data/world/gts --rayiou --data data/world --version v1.0-mini",
    "easyocc labels --data data/world --out labels/world --oracle-noise realistic",
    "easyocc train --config occnerf-pseudo-demo --data data/world --labels labels/world --out runs/occnerf-pseudo-demo",
]
RENDERING_SYNTH = ("easyocc synth --out data/world --scenes 6 --keyframes 13 --image-size 320 180 --seed 0 "
                   "--sweeps neighbours")


def tiny_version(name: str, path: Path) -> Path:
    """The shipped config ``name`` with the tiny network, render size and one epoch, written to ``path``."""
    overrides = [*TINY_OVERRIDES, "render.size=[18,32]", "render.chunk_rays=4096", "optim.epochs=1",
                 "optim.warmup_iters=0"]
    config = load_config(TrainConfig, BUILTIN_CONFIG_DIR / f"{name}.yaml", overrides)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path


def test_readme_rendering_examples_run_as_written(sweeps_simscenes, tmp_path, capsys):
    documented = readme_commands()
    missing = [c for c in [RENDERING_SYNTH, *RENDERING_EXAMPLES] if c not in documented]
    assert not missing, f"README no longer shows: {missing}"
    paths = {
        "occnerf-demo": tiny_version("occnerf-demo", tmp_path / "occnerf-demo.yaml"),
        "occnerf-pseudo-demo": tiny_version("occnerf-pseudo-demo", tmp_path / "occnerf-pseudo-demo.yaml"),
        "data/world": sweeps_simscenes, "runs/occnerf-demo": tmp_path / "runs" / "occnerf-demo",
        "runs/occnerf-pseudo-demo": tmp_path / "runs" / "occnerf-pseudo-demo",
        "preds/occnerf-demo": tmp_path / "preds", "labels/world": tmp_path / "labels",
    }
    for command in RENDERING_EXAMPLES:
        code = cli.main(substitute(command, paths))
        captured = capsys.readouterr()
        assert code == 0, f"{command}\n{captured.err[-2000:]}"
        if command.startswith("easyocc eval"):
            assert "RayIoU" in captured.out
    for run, terms in (("occnerf-demo", set()), ("occnerf-pseudo-demo", {"ce", "lovasz"})):
        log = json.loads((tmp_path / "runs" / run / "train_log.jsonl").read_text().splitlines()[-1])
        assert {"photometric", "semantic", *terms} <= set(log) and np.isfinite(log["loss"])
    manifest = json.loads((tmp_path / "preds" / "predictions.json").read_text())
    assert manifest["split"] == "val" and len(manifest["samples"]) == 3
