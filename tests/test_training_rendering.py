"""The rendering model through the training stack, on SimScenes with camera sweeps (the ``sweeps_simscenes``
fixture: scene-0001 train, scene-0002 val, three keyframes each): the dataset's render items (sources, poses, 2D
maps), the photometric warp through them, every loss's gradient through a training step, the pseudo loss on a
contracted volume, training from 2D sources alone, resume, prediction and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from easyocc import cli
from easyocc.config import load_config
from easyocc.data.occ_dataset import DataConfig, OccDataset, RenderTargets, split_keyframes
from easyocc.errors import EasyOccError, InputError
from easyocc.geometry import relative_transform, scale_intrinsics
from easyocc.labels.sources.spec import SourceSpec
from easyocc.losses import PseudoLoss
from easyocc.losses.rendering import RenderingLoss, photometric_loss, reprojection_error, unit_images
from easyocc.models.easyocc import EasyOccModel
from easyocc.models.rendering import RenderingOccModel, build_occupancy_model
from easyocc.models.volume import occ3d_logits
from easyocc.occ3d import NUM_CLASSES, read_prediction
from easyocc.training.checkpoint import load_checkpoint, load_trained_model
from easyocc.training.config import TrainConfig
from easyocc.training.loop import render_targets, train
from easyocc.training.objective import build_objective, train_step
from model_fixtures import TINY_OVERRIDES, crash_on_call, torch_single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: The tiny network of the EasyOcc tests on a contracted grid (74 x 74 x 6 cells, the inner 50 x 50 x 4 at 1.6 m),
#: rendering 18 x 32 rays per 72 x 128 camera, from the exact oracle's 2D maps, without the pseudo loss.
RENDER_OVERRIDES = [*TINY_OVERRIDES, "model.contraction=0.66667", "render={size: [18, 32], chunk_rays: 4096}",
                    "loss.pseudo_weight=0", "optim.warmup_iters=0", "data.version=auto"]
TERMS = ("photometric", "smoothness", "semantic", "entropy", "distortion", "depth")


def render_config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, None, [*RENDER_OVERRIDES, *overrides])


#: SimScenes' exact 2D maps.
EXACT = SourceSpec(semantics="oracle", depth="oracle")


def test_dataset_gives_sources_poses_and_2d_maps_at_the_render_size(sweeps_simscenes):
    root = sweeps_simscenes
    keyframes = split_keyframes(root, "auto", "train")
    semantics, depth = EXACT.build(root)
    dataset = OccDataset(keyframes, DataConfig(image_size=(180, 320)), render=RenderTargets(
        size=(90, 160), semantics=semantics, depth=depth))
    first, middle = dataset[0], dataset[1]
    assert first["source_images"].shape == (6, 2, 3, 180, 320) and first["source_images"].dtype == torch.uint8
    assert first["source_T_cam"].shape == (6, 2, 4, 4) and first["source_intrinsics"].shape == (6, 2, 3, 3)
    assert first["semantics_2d"].shape == (6, 90, 160) and first["semantics_2d"].dtype == torch.uint8
    assert first["depth_2d"].shape == (6, 90, 160) and first["render_intrinsics"].shape == (6, 3, 3)
    # A scene's first keyframe has no image before it: flagged, zeros, identity (not a copy of another source).
    assert first["source_valid"].tolist() == [[False, True]] * 6 and middle["source_valid"].all()
    assert first["source_images"][:, 0].max() == 0 and torch.equal(first["source_T_cam"][:, 0], torch.eye(4).expand(6, 4, 4))
    # Poses: keyframe camera -> neighbour camera through the global frame; the neighbour is 1/12 s away.
    kf = keyframes[1]
    for c, name in enumerate(dataset.cameras):
        for s, offset in enumerate((-1, 1)):
            neighbour = kf.neighbour(name, offset)
            expected = relative_transform(neighbour.global_T_cam, kf.cameras[name].global_T_cam)
            np.testing.assert_allclose(middle["source_T_cam"][c, s].numpy(), expected, atol=2e-6)
            assert abs(neighbour.timestamp - kf.cameras[name].timestamp) == 83_333
    moved = middle["source_T_cam"][:, :, :3, 3].norm(dim=-1)
    assert 0.2 < moved.min().item() and moved.max().item() < 1.0  # the ego's motion in 1/12 s
    # Render intrinsics: the network's at half size; the 2D maps read at the render pixels' centres.
    np.testing.assert_allclose(middle["render_intrinsics"][0].numpy(),
                               scale_intrinsics(middle["intrinsics"][0].numpy(), 0.5), atol=1e-5)
    camera = kf.cameras["CAM_FRONT"]
    np.testing.assert_array_equal(middle["semantics_2d"][0].numpy(), semantics.semantics(camera)[1::2, 1::2])
    np.testing.assert_array_equal(middle["depth_2d"][0].numpy(), depth.depth(camera)[1::2, 1::2])
    assert dataset.count_sources() == (24, 36)  # all but the first keyframe's -1 and the last's +1 (6 cameras each)


def test_photometric_warp_through_the_dataset_is_best_at_the_true_depth(sweeps_simscenes):
    """The sweeps, their poses, the dataset's intrinsics and the warp together: the exact depth reconstructs the
    keyframe from its -1 / +1 sweeps clearly better than the same depth x 1.2, better than x 0.95 and x 1.05, and
    far better than no warp at all."""
    root = sweeps_simscenes
    dataset = OccDataset(split_keyframes(root, "auto", "train"), DataConfig(image_size=(90, 160)),
                         render=RenderTargets(size=(90, 160), depth=EXACT.depth_source(root)))
    item = dataset[1]
    depth = item["depth_2d"].clone()
    depth[depth == 0] = 1000.0  # sky: far away
    target, sources = unit_images(item["images"]), unit_images(item["source_images"])

    def loss(scale: float) -> float:  # without auto-masking: every pixel's warp counts
        return photometric_loss(target, sources, depth[:, None] * scale, item["intrinsics"], item["source_intrinsics"],
                                item["source_T_cam"], automask=False, source_valid=item["source_valid"])[0].item()

    losses = {scale: loss(scale) for scale in (0.95, 1.0, 1.05, 1.2)}
    no_warp = reprojection_error(sources.flatten(0, 1), target.repeat_interleave(2, dim=0)).mean().item()
    assert losses[1.0] < 0.85 * losses[1.2]  # measured 0.032 against 0.042
    assert losses[1.0] < min(losses[0.95], losses[1.05])
    assert losses[1.0] < 0.4 * no_warp  # measured 0.11


def _dataset_batch(root: Path, config: TrainConfig, labels: Path | None = None) -> dict:
    dataset = OccDataset(split_keyframes(root, "auto", "train"), config.data, labels,
                         render=render_targets(config, root))
    item = dataset[1]
    return {k: v[None] if isinstance(v, torch.Tensor) else v for k, v in item.items()}


@pytest.mark.parametrize("term", [*TERMS, "pseudo"])
def test_every_loss_sends_gradient_to_the_volume_and_the_encoder_through_a_training_step(sweeps_simscenes, term):
    weights = [f"render_loss.{name}_weight={float(name == term)}" for name in TERMS]
    config = render_config(*weights, f"loss.pseudo_weight={float(term == 'pseudo')}")
    batch = _dataset_batch(sweeps_simscenes, config, sweeps_simscenes / "gts" if term == "pseudo" else None)
    torch.manual_seed(0)
    model = build_occupancy_model(config.model, config.render).train()
    with torch.no_grad():  # p ~ 1e-3 per sample: rays do not all end at their first samples (prob rendering)
        model.voxel_cnn.head.bias[NUM_CLASSES - 1] = 7.0
    objective = build_objective(config, np.ones(NUM_CLASSES, np.float32), np.ones(NUM_CLASSES, np.float32))
    volumes = []
    model.voxel_cnn.register_forward_hook(lambda module, inputs, output: volumes.append(output) or output.retain_grad())
    # Under CPU mixed precision, as a GPU run would train (the rendering itself stays in float32).
    losses = train_step(model, objective, batch, torch.autocast("cpu", dtype=torch.bfloat16))
    assert set(losses) == {"loss", *(("ce", "lovasz") if term == "pseudo" else (term,))}
    assert torch.isfinite(losses["loss"]) and losses["loss"].item() > 0
    losses["loss"].backward()
    assert volumes[0].grad.abs().sum().item() > 0
    assert model.backbone.conv1.weight.grad.abs().sum().item() > 0


def test_pseudo_term_on_a_contracted_volume_is_the_pseudo_loss_at_the_occ3d_centres(sweeps_simscenes):
    config = render_config("loss.pseudo_weight=0.5", "render_loss.class_weighting=none")
    batch = _dataset_batch(sweeps_simscenes, config, sweeps_simscenes / "gts")
    torch.manual_seed(1)
    model = build_occupancy_model(config.model, config.render).eval()
    assert model.lifter.grid.is_contracted and not model.lifter.grid.is_occ3d_aligned  # read trilinearly
    weights = np.linspace(0.5, 1.5, NUM_CLASSES).astype(np.float32)
    objective = build_objective(config, weights, None)
    with torch.no_grad():
        outputs = objective.model_outputs(model, batch)
        losses = objective(outputs, batch)
        pseudo = PseudoLoss(config.loss, weights)(occ3d_logits(outputs["volume"], model.lifter.grid),
                                                  batch["semantics"], batch["mask_camera"])
        rendering = RenderingLoss(config.render_loss)(
            outputs, batch["images"], batch["intrinsics"], batch["source_images"], batch["source_T_cam"],
            batch["source_intrinsics"], semantics=batch["semantics_2d"], source_valid=batch["source_valid"])
    assert list(losses) == ["loss", "ce", "lovasz", "photometric", "smoothness", "semantic", "entropy", "distortion"]
    assert torch.equal(outputs["logits"], occ3d_logits(outputs["volume"], model.lifter.grid))
    assert losses["ce"].item() == pseudo["ce"].item() and losses["lovasz"].item() == pseudo["lovasz"].item()
    assert losses["loss"].item() == pytest.approx(0.5 * pseudo["loss"].item() + rendering["loss"].item(), rel=1e-6)


@pytest.fixture(scope="module")
def rendering_run(sweeps_simscenes, tmp_path_factory) -> Path:
    """Four epochs (twelve iterations) of the tiny rendering model from 2D sources alone (no 3D labels); the
    semantic term weighs as much as the photometric one, so that twelve steps move the sum clearly."""
    run = tmp_path_factory.mktemp("rendering") / "run"
    config = render_config("optim.epochs=4", "render_loss.semantic_weight=1", "optim.lr=0.03", "optim.milestones=[4]")
    train(config, sweeps_simscenes, None, run, show_progress=False)
    return run


def test_rendering_model_trains_from_2d_sources_alone(rendering_run):
    log = [json.loads(line) for line in (rendering_run / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [3, 6, 9, 12]
    assert set(log[0]) == {"epoch", "iteration", "seconds", "loss", *TERMS[:-1],  # the config's terms, no depth
                           "iteration_s_median", "peak_memory_mb", "memory_kind"}  # and the cost
    assert log[-1]["loss"] < 0.9 * log[0]["loss"]  # measured 0.87
    assert log[-1]["semantic"] < 0.9 * log[0]["semantic"]
    record = json.loads((rendering_run / "class_weights.json").read_text())
    assert set(record) == {"semantic_2d"} and record["semantic_2d"]["method"] == "maps"
    counts, weights = np.array(record["semantic_2d"]["counts"]), np.array(record["semantic_2d"]["weights"])
    assert counts.sum() == 3 * 6 * 18 * 32 and counts[11] > 0 and counts[17] > 0  # every render pixel (exact maps)
    present = counts > 0
    product = weights[present] * np.sqrt(counts[present])  # 1 / sqrt(frequency), up to a factor
    np.testing.assert_allclose(product, product[0], rtol=1e-5)
    assert np.all(weights[~present] == 0)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(rendering_run / "tb")).Reload()
    assert {"train/photometric", "train/semantic", "epoch/loss"} <= set(events.Tags()["scalars"])
    model, config = load_trained_model(rendering_run / "model.pt")
    assert isinstance(model, RenderingOccModel) and config.render.size == (18, 32)


def test_predict_writes_occ3d_predictions_from_a_rendering_checkpoint(rendering_run, sweeps_simscenes, tmp_path,
                                                                      capsys):
    out = tmp_path / "pred"
    code = cli.main(["predict", "--checkpoint", str(rendering_run / "model.pt"), "--data", str(sweeps_simscenes),
                     "--out", str(out), "--device", "cpu", "--workers", "0", "--quiet"])
    assert code == 0, capsys.readouterr().err
    keyframes = split_keyframes(sweeps_simscenes, "auto", "val")
    expected = sorted(f"{kf.token}.npz" for kf in keyframes) + ["predictions.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # the set, as for EasyOcc
    assert json.loads((out / "predictions.json").read_text())["samples"] == [kf.token for kf in keyframes]
    pred = read_prediction(out / f"{keyframes[0].token}.npz")
    assert pred.shape == (200, 200, 16) and pred.dtype == np.uint8 and pred.max() < NUM_CLASSES
    # Exactly EasyOcc's prediction from the same weights: the volume read at the Occ3D voxel centres.
    model, config = load_trained_model(rendering_run / "model.pt")
    easyocc = EasyOccModel(config.model).eval()
    easyocc.load_state_dict(model.state_dict())
    item = OccDataset(keyframes, config.data)[0]
    with torch.no_grad():
        logits = easyocc(item["images"][None], item["intrinsics"][None], item["ego_T_cam"][None])
    np.testing.assert_array_equal(pred, logits.argmax(dim=1)[0].numpy())


@pytest.mark.slow  # three short rendering trainings
def test_resume_gives_the_weights_of_an_uninterrupted_rendering_run(sweeps_simscenes, tmp_path, monkeypatch,
                                                                    capsys):
    config = render_config("optim.epochs=2", "checkpoint_every=2", "sources.oracle_noise=realistic")
    straight = tmp_path / "straight"
    train(config, sweeps_simscenes, None, straight, show_progress=False)
    interrupted = tmp_path / "interrupted"
    crash_on_call(monkeypatch, RenderingLoss, 5)  # in the middle of epoch 2; the last checkpoint is iteration 4's
    with pytest.raises(KeyboardInterrupt):
        train(config, sweeps_simscenes, None, interrupted, show_progress=False)
    monkeypatch.undo()
    position = load_checkpoint(interrupted / "checkpoints" / "last.pt")["position"]
    assert (position["epoch"], position["batch"], position["iteration"]) == (1, 1, 4)
    code = cli.main(["train", "--data", str(sweeps_simscenes), "--out", str(interrupted), "--resume", "--quiet"])
    assert code == 0, capsys.readouterr().err
    expected, got = load_checkpoint(straight / "model.pt")["model"], load_checkpoint(interrupted / "model.pt")["model"]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip((straight / "train_log.jsonl").read_text().splitlines(),
                    (interrupted / "train_log.jsonl").read_text().splitlines(), strict=True):
        a, b = json.loads(a), json.loads(b)
        assert a.keys() == b.keys() and a["photometric"] == pytest.approx(b["photometric"], rel=1e-5)


def test_what_the_rendering_model_needs_is_a_one_line_error(sweeps_simscenes, tiny_simscenes, tmp_path, capsys):
    with pytest.raises(EasyOccError, match="the pseudo loss needs 3D labels"):
        train(render_config("loss.pseudo_weight=1"), sweeps_simscenes, None, tmp_path / "a", show_progress=False)
    with pytest.raises(InputError, match="the photometric loss needs camera sweeps"):
        train(render_config(), tiny_simscenes, None, tmp_path / "b", show_progress=False)
    (tmp_path / "c.yaml").write_text("loss:\n  pseudo_weight: 0\n")
    code = cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--data", str(sweeps_simscenes), "--out",
                     str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "nothing would train" in err and err.count("\n") == 1
