"""Training and prediction end to end on a small dataroot built from the real nuScenes keyframe (three keyframes
sharing its six real images and calibration, each with its own learnable pseudo-labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from easyocc import cli
from easyocc.config import load_config
from easyocc.data.occ_dataset import DataConfig, OccDataset, split_keyframes
from easyocc.errors import InputError
from easyocc.evaluation.runner import evaluate_dirs
from easyocc.geometry import project_points
from easyocc.losses import PseudoLoss
from easyocc.occ3d import read_prediction
from easyocc.training.checkpoint import load_checkpoint, load_trained_model
from easyocc.training.config import OptimConfig, TrainConfig
from easyocc.training.distributed import EpochSampler
from easyocc.training.loop import learning_rate_factor, train
from model_fixtures import (  # noqa: F401  (torch_single_thread: a fixture)
    TINY_OVERRIDES,
    crash_on_call,
    replicate_keyframe,
    torch_single_thread,
    write_pseudo_labels,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SCENE = "scene-0061"


@pytest.fixture(scope="module")
def dataroot(real_nuscenes_root, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(dataroot, labels dir, sample tokens): three keyframes with pseudo-labels."""
    base = tmp_path_factory.mktemp("model-data")
    tokens = replicate_keyframe(real_nuscenes_root, base / "data", copies=3)
    write_pseudo_labels(base / "labels", SCENE, tokens)
    return base / "data", base / "labels", tokens


def tiny_config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, None, [*TINY_OVERRIDES, *overrides])


def test_dataset_items_and_intrinsics_follow_the_resize_and_crop(dataroot):
    root, labels, tokens = dataroot
    keyframes = split_keyframes(root, "auto", "train")
    assert [kf.token for kf in keyframes] == tokens
    config = DataConfig(image_size=(90, 160), crop=(10, 4, 72, 152))
    dataset = OccDataset(keyframes, config, labels)
    item = dataset[1]
    assert item["images"].shape == (6, 3, 72, 152) and item["images"].dtype == torch.uint8
    assert item["intrinsics"].shape == (6, 3, 3) and item["ego_T_cam"].shape == (6, 4, 4)
    assert item["semantics"].shape == (200, 200, 16) and item["mask_camera"].dtype == torch.bool
    camera = keyframes[1].cameras["CAM_FRONT"]
    np.testing.assert_allclose(item["ego_T_cam"][0].numpy(), keyframes[1].ref_T_cam("CAM_FRONT"), atol=1e-5)
    # A point that lands on original pixel (u, v) lands on ((u + 0.5) * s - 0.5 - crop offset) in the network image.
    points = np.array([[2.0, -1.0, 10.0], [-3.0, 0.5, 25.0], [0.0, 0.0, 5.0]])
    uv_full, _ = project_points(camera.K, points)
    uv_net, _ = project_points(item["intrinsics"][0].numpy().astype(np.float64), points)
    scale = np.array([160 / 1600, 90 / 900])
    np.testing.assert_allclose(uv_net, (uv_full + 0.5) * scale - 0.5 - [4, 10], atol=1e-3)
    # The cheap reduced JPEG decoding gives the picture a full decoding + resize gives.
    with Image.open(camera.image_path) as full:
        reference = np.asarray(full.convert("RGB").resize((160, 90), Image.BILINEAR))[10:82, 4:156]
    difference = np.abs(item["images"][0].numpy().transpose(1, 2, 0).astype(int) - reference.astype(int))
    assert difference.mean() < 3.0


def test_missing_pseudo_labels_are_one_line_error_or_skipped(dataroot, tmp_path, capsys):
    root, labels, tokens = dataroot
    partial = tmp_path / "labels"
    write_pseudo_labels(partial, SCENE, tokens[:2])
    missing = partial / SCENE / tokens[2] / "labels.npz"
    code = cli.main(["train", "--config", str(tmp_path / "none.yaml"), "--data", str(root), "--labels", str(partial),
                     "--out", str(tmp_path / "run")])
    assert code == 2 and "config file not found" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("model:\n  backbone: resnet18\n")
    code = cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--data", str(root), "--labels", str(partial),
                     "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"easyocc train: error: {missing}: pseudo-label file not found (1 of 3")
    assert err.count("\n") == 1
    dataset = OccDataset(split_keyframes(root, "auto", "train"), DataConfig(skip_missing_labels=True), partial)
    assert [kf.token for kf in dataset.keyframes] == tokens[:2]


@pytest.fixture(scope="module")
def trained_run(dataroot, tmp_path_factory) -> Path:
    """A run of three epochs (nine iterations) of the tiny model."""
    root, labels, _ = dataroot
    run = tmp_path_factory.mktemp("trained") / "run"
    train(tiny_config("optim.epochs=3"), root, labels, run, show_progress=False)
    return run


def test_tiny_training_lowers_the_loss_and_fills_the_run_folder(dataroot, trained_run, capsys):
    root, labels, _ = dataroot
    run = trained_run
    assert load_config(TrainConfig, run / "config.yaml") == tiny_config("optim.epochs=3")
    weights = json.loads((run / "class_weights.json").read_text())
    assert weights["region"] == "camera" and weights["counts"][17] > weights["counts"][11] > 0
    assert weights["weights"][11] > weights["weights"][17] and weights["weights"][0] == 0.0
    assert any((run / "tb").iterdir())
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["position"]["epoch"] == 3 and {"optimizer", "scheduler", "rng"} <= state.keys()
    model, config = load_trained_model(run / "model.pt")
    assert not model.training and config.model.backbone == "resnet18"
    with pytest.raises(InputError, match="already holds a training run"):
        train(tiny_config(), root, labels, run, show_progress=False)
    # Training longer: --resume with more epochs continues from the end of the finished run.
    code = cli.main(["train", "--data", str(root), "--labels", str(labels), "--out", str(run), "--resume",
                     "--set", "optim.epochs=4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(run / "model.pt")["iteration"] == 12
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4] and log[-1]["iteration"] == 12
    assert log[-1]["loss"] < 0.85 * log[0]["loss"]
    assert log[-1]["ce"] < log[0]["ce"] and log[-1]["lovasz"] < log[0]["lovasz"]
    for record in log:  # each epoch measures its own cost
        assert 0 < record["iteration_s_median"] <= record["seconds"]
        assert record["peak_memory_mb"] > 100 and record["memory_kind"] == "process max RSS"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


@pytest.mark.slow  # three short trainings
def test_resume_ends_with_the_weights_of_an_uninterrupted_run(dataroot, tmp_path, monkeypatch, capsys):
    root, labels, _ = dataroot
    straight = tmp_path / "straight"
    train(tiny_config("optim.epochs=2", "checkpoint_every=2"), root, labels, straight, show_progress=False)

    # Interrupted: a crash in the middle of epoch 2 (iteration 5); the last checkpoint is from iteration 4.
    interrupted = tmp_path / "interrupted"
    crash_on_call(monkeypatch, PseudoLoss, 5)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config("optim.epochs=2", "checkpoint_every=2"), root, labels, interrupted, show_progress=False)
    monkeypatch.undo()
    position = load_checkpoint(interrupted / "checkpoints" / "last.pt")["position"]
    assert (position["epoch"], position["batch"], position["iteration"]) == (1, 1, 4)
    assert not (interrupted / "model.pt").exists()

    # Resumed through the CLI, which reads the run's own config.yaml.
    code = cli.main(["train", "--data", str(root), "--labels", str(labels), "--out", str(interrupted), "--resume",
                     "--quiet"])
    assert code == 0, capsys.readouterr().err
    expected, got = _weights(straight / "model.pt"), _weights(interrupted / "model.pt")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    straight_log = (straight / "train_log.jsonl").read_text().splitlines()
    resumed_log = (interrupted / "train_log.jsonl").read_text().splitlines()
    for a, b in zip(straight_log, resumed_log, strict=True):
        a, b = json.loads(a), json.loads(b)
        assert a["iteration"] == b["iteration"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)



def test_predict_writes_files_the_evaluator_reads(dataroot, trained_run, tmp_path, capsys):
    root, labels, tokens = dataroot
    run = trained_run
    out = tmp_path / "pred"
    code = cli.main(["predict", "--checkpoint", str(run / "model.pt"), "--data", str(root), "--out", str(out),
                     "--split", "val", "--device", "cpu", "--workers", "1", "--batch-size", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{t}.npz" for t in tokens), "predictions.json"])
    preds = [read_prediction(out / f"{t}.npz") for t in tokens]
    assert all(p.shape == (200, 200, 16) and p.dtype == np.uint8 for p in preds)
    # The evaluator scores them (the pseudo-labels stand in for ground truth: the same gts/ layout).
    report = evaluate_dirs(out, labels, workers=1, progress=False)
    assert report.num_samples == 3 and 0.0 <= report.scores.iou <= 100.0
    # The same images give the same prediction; and a training checkpoint predicts as well as model.pt.
    assert np.array_equal(preds[0], preds[1])
    code = cli.main(["predict", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", str(root),
                     "--out", str(tmp_path / "pred2"), "--device", "cpu", "--workers", "0", "--quiet"])
    assert code == 0 and np.array_equal(read_prediction(tmp_path / "pred2" / f"{tokens[2]}.npz"), preds[2])
    code = cli.main(["predict", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(root), "--out", str(out)])
    assert code == 2 and "checkpoint not found" in capsys.readouterr().err


def test_learning_rate_schedules():
    step = learning_rate_factor(OptimConfig(epochs=12, milestones=(10,), gamma=0.1, warmup_iters=4), 100)
    assert step(0) == pytest.approx(0.25) and step(3) == 1.0 and step(999) == 1.0 and step(1000) == pytest.approx(0.1)
    cosine = learning_rate_factor(OptimConfig(epochs=2, schedule="cosine"), 50)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)


def test_epoch_sampler_is_deterministic_split_and_resumable():
    samplers = [EpochSampler(10, num_replicas=3, rank=r, seed=7) for r in range(3)]
    for s in samplers:
        s.set_epoch(2)
    shares = [s.indices() for s in samplers]
    assert all(len(share) == 4 for share in shares)
    assert set(sum(shares, [])) == set(range(10))  # 12 slots: the permutation, then 2 indices again (padding)
    again = EpochSampler(10, 3, 0, seed=7)
    again.set_epoch(2)
    assert again.indices() == shares[0]
    again.set_epoch(3)
    assert again.indices() != shares[0]
    again.set_epoch(2, start=3)
    assert list(again) == shares[0][3:] and len(again) == 1


def test_simscenes_train_predict_eval(tiny_simscenes, tmp_path, capsys):
    """The whole path on a generated SimScenes (splits.json, v1.0-mini found by itself), its GT as labels."""
    run, preds = tmp_path / "run", tmp_path / "preds"
    config = tiny_config("optim.epochs=1", "data.image_size=[90,160]", "data.crop=[1,0,88,160]")
    train(config, tiny_simscenes, tiny_simscenes / "gts", run, show_progress=False)
    assert json.loads((run / "train_log.jsonl").read_text())["iteration"] == 4  # scene-0001: four keyframes
    code = cli.main(["predict", "--checkpoint", str(run / "model.pt"), "--data", str(tiny_simscenes), "--out",
                     str(preds), "--device", "cpu", "--workers", "0", "--quiet"])
    assert code == 0, capsys.readouterr().err
    code = cli.main(["eval", "--pred", str(preds), "--gt", str(tiny_simscenes / "gts"), "--allow-missing",
                     "--workers", "1", "--json", str(tmp_path / "eval.json")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "eval.json").read_text())["num_samples"] == 4  # scene-0002 (val)


def test_iteration_clock_medians_intervals_and_reports_peak_memory():
    import time

    from easyocc.training.cost import IterationClock

    clock = IterationClock(torch.device("cpu"))
    assert clock.summary()["iteration_s_median"] is None
    for pause in (0.02, 0.2, 0.02):
        time.sleep(pause)
        clock.tick()
    intervals = clock.intervals()
    assert len(intervals) == 3 and intervals[1] >= 0.2
    summary = clock.summary()
    assert 0.02 <= summary["iteration_s_median"] < 0.15  # the median ignores the one slow iteration
    assert summary["peak_memory_mb"] > 50 and summary["memory_kind"] == "process max RSS"
