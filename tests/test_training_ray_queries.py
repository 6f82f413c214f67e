"""Ray-query supervision (QueryOcc) as a term of ``easyocc train``, on the tiny SimScenes (scene-0001 train, four
keyframes): the config field, the dataset's 2D maps at the network's input size, a training step alone and beside
the pseudo loss, a run without 3D labels, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from easyocc import cli
from easyocc.config import config_to_dict, load_config, save_config
from easyocc.data.occ_dataset import OccDataset, split_keyframes
from easyocc.errors import EasyOccError, InputError
from easyocc.models.easyocc import build_model
from easyocc.occ3d import NUM_CLASSES
from easyocc.training.config import TrainConfig
from easyocc.training.loop import render_targets, train
from easyocc.training.objective import build_objective, train_step
from model_fixtures import TINY_OVERRIDES, torch_single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: Ray queries alone, from the exact oracle's maps (few rays: a step stays well under a second).
RAYS = [*TINY_OVERRIDES, "loss.pseudo_weight=0", "loss.ray_queries.weight=1", "loss.ray_queries.rays_per_image=256",
        "optim.warmup_iters=0", "data.version=auto"]


def rays_config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, None, [*RAYS, *overrides])


def test_the_config_field_round_trips_and_old_configs_load_with_it_off(tmp_path):
    config = rays_config("loss.ray_queries.free_per_ray=6", "loss.ray_queries.behind=0.2")
    save_config(tmp_path / "c.yaml", config)
    again = load_config(TrainConfig, tmp_path / "c.yaml")
    assert again == config and again.loss.ray_queries.free_per_ray == 6 and again.loss.ray_queries.behind == 0.2
    assert again.uses_ray_queries and not again.uses_pseudo_loss and again.reads_2d_depth
    old = config_to_dict(load_config(TrainConfig, None, TINY_OVERRIDES))
    del old["loss"]["ray_queries"]  # a run config written before the field existed
    (tmp_path / "old.yaml").write_text(json.dumps(old))
    loaded = load_config(TrainConfig, tmp_path / "old.yaml")
    assert loaded.loss.ray_queries.weight == 0 and not loaded.uses_ray_queries and not loaded.reads_2d_depth
    with pytest.raises(InputError, match="rays_per_image must be >= 1"):
        rays_config("loss.ray_queries.rays_per_image=0")
    with pytest.raises(InputError, match="class_weighting 'labels' takes the pseudo loss's class weights"):
        rays_config("loss.ray_queries.class_weighting=labels")


def _batch(root, config: TrainConfig, labels=None) -> dict:
    dataset = OccDataset(split_keyframes(root, "auto", "train"), config.data, labels,
                         render=render_targets(config, root))
    return {k: v[None] if isinstance(v, torch.Tensor) else v for k, v in dataset[1].items()}


def test_the_dataset_gives_depth_and_semantics_at_the_network_input_size(tiny_simscenes):
    config = rays_config()
    batch = _batch(tiny_simscenes, config)
    assert "semantics" not in batch and "source_images" not in batch  # no 3D labels, no sweeps
    assert batch["depth_2d"].shape == batch["semantics_2d"].shape == (1, 6, 72, 128)
    torch.testing.assert_close(batch["render_intrinsics"], batch["intrinsics"])
    sky = batch["semantics_2d"] == 17
    assert sky.any() and (batch["depth_2d"][sky] == 0).all() and (batch["depth_2d"][~sky] > 0).float().mean() > 0.99
    assert render_targets(load_config(TrainConfig, None, TINY_OVERRIDES), tiny_simscenes) is None  # EasyOcc alone


def _step(config: TrainConfig, batch: dict, seed: int = 0):
    torch.manual_seed(0)
    model = build_model(config.model, load_weights=False).train()
    objective = build_objective(config, np.ones(NUM_CLASSES, np.float32), None)
    torch.manual_seed(seed)  # the queries' draw
    return model, objective, train_step(model, objective, batch, torch.autocast("cpu", enabled=False))


def test_a_step_with_ray_queries_alone_has_a_finite_loss_whose_gradient_reaches_the_whole_model(tiny_simscenes):
    config = rays_config()
    model, objective, losses = _step(config, _batch(tiny_simscenes, config))
    assert objective.keys == ("loss", "ray_queries", "ray_free", "ray_occupied") and set(losses) == set(objective.keys)
    assert torch.isfinite(losses["loss"]) and losses["loss"].item() > 0
    # At initialisation the logits are near uniform over the 18 classes: CE ~ log 18.
    assert abs(losses["ray_free"].item() - np.log(18)) < 0.5 and abs(losses["ray_occupied"].item() - np.log(18)) < 0.5
    losses["loss"].backward()
    for name, part in (("encoder", model.backbone), ("3D CNN", model.voxel_cnn)):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum().item() for g in grads) > 0, name


def test_beside_the_pseudo_loss_the_total_is_pseudo_plus_weight_times_ray_queries(tiny_simscenes):
    both = rays_config("loss.pseudo_weight=0.5", "loss.ray_queries.weight=0.3")
    batch = _batch(tiny_simscenes, both, tiny_simscenes / "gts")
    _, objective, losses = _step(both, batch)
    assert objective.keys == ("loss", "ce", "lovasz", "ray_queries", "ray_free", "ray_occupied")
    _, _, pseudo = _step(rays_config("loss.pseudo_weight=0.5", "loss.ray_queries.weight=0"), batch)
    _, _, rays = _step(rays_config("loss.ray_queries.weight=0.3"), batch)
    torch.testing.assert_close(losses["loss"], pseudo["loss"] + 0.3 * rays["ray_queries"])
    torch.testing.assert_close(pseudo["loss"], 0.5 * (pseudo["ce"] + pseudo["lovasz"]))
    assert rays["ray_queries"].item() > 0.1 and pseudo["loss"].item() > 0.1


def test_training_with_ray_queries_alone_needs_no_labels_folder(tiny_simscenes, tmp_path, capsys):
    config = rays_config("optim.epochs=1")
    config_file = tmp_path / "rays.yaml"
    save_config(config_file, config)
    code = cli.main(["train", "--config", str(config_file), "--data", str(tiny_simscenes), "--out",
                     str(tmp_path / "run"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    log = json.loads((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[-1])
    assert log["iteration"] == 4 and {"ray_queries", "ray_free", "ray_occupied"} <= set(log) and "ce" not in log
    assert np.isfinite(log["loss"]) and log["loss"] == pytest.approx(log["ray_queries"])
    assert json.loads((tmp_path / "run" / "class_weights.json").read_text()) == {}  # nothing counted: no labels
    assert (tmp_path / "run" / "model.pt").is_file()


def test_ray_queries_without_a_depth_source_are_a_one_line_error(tiny_simscenes, tmp_path, capsys):
    config = rays_config("sources.depth=npy")
    with pytest.raises(EasyOccError, match=r"loss.ray_queries needs depth maps from sources.depth \('npy'\): the npy "
                                           r"source needs --depth-dir .*sources.depth_dir"):
        train(config, tiny_simscenes, None, tmp_path / "a", show_progress=False)
    assert not (tmp_path / "a").exists()  # nothing left behind
    save_config(tmp_path / "b.yaml", rays_config("sources.depth=npy", f"sources.depth_dir={tmp_path / 'none'}"))
    code = cli.main(["train", "--config", str(tmp_path / "b.yaml"), "--data", str(tiny_simscenes), "--out",
                     str(tmp_path / "b"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "loss.ray_queries needs depth maps" in err and "not found" in err


def test_the_rendering_model_takes_ray_queries_from_its_render_size_maps(tiny_simscenes):
    from easyocc.models.rendering import build_occupancy_model

    terms = ("photometric", "smoothness", "entropy", "distortion", "depth")
    config = rays_config("render={size: [18, 32], chunk_rays: 4096}", "render_loss.semantic_weight=0.05",
                         *(f"render_loss.{name}_weight=0" for name in terms))
    batch = _batch(tiny_simscenes, config)
    assert batch["depth_2d"].shape == batch["semantics_2d"].shape == (1, 6, 18, 32) and "source_images" not in batch
    torch.manual_seed(0)
    model = build_occupancy_model(config.model, config.render).train()
    objective = build_objective(config, None, np.ones(NUM_CLASSES, np.float32))
    losses = train_step(model, objective, batch, torch.autocast("cpu", enabled=False))
    assert objective.keys == ("loss", "semantic", "ray_queries", "ray_free", "ray_occupied")
    torch.testing.assert_close(losses["loss"], losses["semantic"] * 0.05 + losses["ray_queries"])
