"""``easyocc demo``: the whole job on a small SimScenes, end to end, with a report.

SimScenes -> pseudo-labels (the noisy oracle: foundation-model-like errors) -> train the demo config on the train
scenes -> predict the val scenes -> score the model, the pseudo-labels and the trivial baselines with the evaluator
(camera mask, full scene, RayIoU) -> ``OUT/report/`` (report.md, scores.json, per-class and bird's-eye PNGs).

Each stage writes its own folder under ``OUT``; a rerun into the same folder with the same settings reuses the
finished stages (the dataset, the labels, the trained model) and rewrites the rest.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from easyocc.errors import EasyOccError
from easyocc.experiments.stages import VERSION

MARKER = "demo.json"
#: The columns of the demo's score table: (header, mask, metric), see ``stages.score_cell``.
SCORE_COLUMNS = (("mIoU, camera mask", "camera", "mIoU"), ("mIoU, full scene", "none", "mIoU"),
                 ("mIoU_15, camera mask", "camera", "mIoU_15"), ("IoU, camera mask", "camera", "IoU"),
                 ("RayIoU", None, "RayIoU"), ("RayIoU@1 / @2 / @4", None, "RayIoU@1/2/4"))
#: The report's 3D view of one val keyframe (``easyocc view --export``).
VIEWER_EXPORT = "viewer.html"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs; the README gives its measured time (the labels now take minutes, the training most)."""

    scenes: int = 6
    keyframes: int = 13
    image_size: tuple[int, int] = (320, 180)
    seed: int = 0
    noise: str = "realistic"
    frames: int = 13
    min_points: int = 2
    config: str = "demo"
    epochs: int | None = None  # None: the config's
    overrides: tuple[str, ...] = ()


@dataclass
class DemoPaths:
    out: Path
    data: Path = field(init=False)
    labels: Path = field(init=False)
    run: Path = field(init=False)
    predictions: Path = field(init=False)
    baselines: Path = field(init=False)
    report: Path = field(init=False)

    def __post_init__(self):
        self.data = self.out / "simscenes"
        self.labels = self.out / "labels"
        self.run = self.out / "run"
        self.predictions = self.out / "predictions"
        self.baselines = self.out / "baselines"
        self.report = self.out / "report"


# --- the output folder ---------------------------------------------------------------------------------------------

def claim_output(out: Path, settings: DemoSettings) -> None:
    """Use ``out`` if it is new, empty, or an earlier demo with the same settings; refuse anything else."""
    from easyocc.experiments.stages import claim_folder

    wanted = {"format": "easyocc-demo/1", "settings": json.loads(json.dumps(asdict(settings)))}
    claim_folder(out, MARKER, wanted, "demo")


# --- stages --------------------------------------------------------------------------------------------------------

def synth_config(settings: DemoSettings):
    """The SimScenes config of the demo; impossible settings are a one-line error before anything is written."""
    from easyocc.data.synthetic.generate import SynthConfig

    # No camera sweeps: the EasyOcc model trains on keyframes only (neighbours: 1.7-2.1x the world stage).
    try:
        config = SynthConfig(scenes=settings.scenes, keyframes=settings.keyframes,
                             image_size=tuple(settings.image_size), seed=settings.seed, sweeps="none", version=VERSION)
    except ValueError as exc:
        raise EasyOccError(str(exc)) from None
    if settings.scenes < 2:
        raise EasyOccError(f"--scenes must be at least 2 (got {settings.scenes}): the demo trains on the train "
                           "scenes and scores the val scenes")
    if settings.epochs is not None and settings.epochs < 1:
        raise EasyOccError(f"--epochs must be at least 1 (got {settings.epochs})")
    return config


def synthesize(paths: DemoPaths, settings: DemoSettings) -> str:
    from easyocc.experiments.stages import generate_world

    return generate_world(paths.data, synth_config(settings))


def label_config(settings: DemoSettings):
    """The demo's label settings: its window and threshold, the rest (future frames, pass-through) the defaults."""
    from easyocc.labels import LabelConfig

    return LabelConfig(frames=settings.frames, min_points=settings.min_points)


def make_labels(paths: DemoPaths, settings: DemoSettings, workers: int) -> None:
    """The pseudo-labels of every scene (val too, to score the labels themselves); resumable."""
    from easyocc.experiments.stages import run_labels

    run_labels(paths.data, paths.labels, settings.noise, label_config(settings), workers)


def train_config(settings: DemoSettings, run_config: Path | None = None):
    """The training config: ``settings.config`` (or an interrupted run's own ``run_config``) with the demo's
    overrides; a bad name, key or value is a one-line error, checked before anything is written."""
    from easyocc.config import load_config, resolve_config_path
    from easyocc.training.config import TrainConfig

    overrides = list(settings.overrides) + [f"data.version={VERSION}"]
    if settings.epochs is not None:
        overrides.append(f"optim.epochs={settings.epochs}")
    return load_config(TrainConfig, run_config or resolve_config_path(settings.config), overrides)


def train_model(paths: DemoPaths, settings: DemoSettings) -> tuple[Path, str]:
    from easyocc.training.loop import CONFIG_FILE, LAST_CHECKPOINT, MODEL_FILE, train

    model_path = paths.run / MODEL_FILE
    if model_path.is_file():
        return model_path, "reused"
    resume = (paths.run / LAST_CHECKPOINT).is_file()
    config = train_config(settings, paths.run / CONFIG_FILE if resume else None)
    return train(config, paths.data, paths.labels, paths.run, resume=resume), "resumed" if resume else "trained"


def val_keyframes(paths: DemoPaths) -> list:
    from easyocc.experiments.stages import split_keyframes

    return split_keyframes(paths.data, "val")


def write_reference_predictions(paths: DemoPaths, keyframes: list) -> dict[str, Path]:
    """Prediction folders of the references: the pseudo-labels themselves and the trivial baselines."""
    from easyocc.baselines import all_free, height_class_counts, majority_per_height
    from easyocc.data.occ_dataset import label_path
    from easyocc.experiments.stages import split_keyframes, write_label_predictions
    from easyocc.occ3d import prediction_path, read_labels, write_prediction

    train = split_keyframes(paths.data, "train")
    from_labels = majority_per_height(height_class_counts(read_labels(label_path(paths.labels, kf)) for kf in train))
    from_gt = majority_per_height(height_class_counts(read_labels(label_path(paths.data / "gts", kf)) for kf in train))
    folders = {
        "pseudo-labels": paths.baselines / "pseudo_labels",
        "majority per height (train GT)": paths.baselines / "majority_per_height_gt",
        "majority per height (train labels)": paths.baselines / "majority_per_height_labels",
        "all free": paths.baselines / "all_free",
    }
    write_label_predictions(paths.labels, keyframes, folders["pseudo-labels"])
    for kf in keyframes:
        write_prediction(prediction_path(folders["majority per height (train GT)"], kf.token), from_gt)
        write_prediction(prediction_path(folders["majority per height (train labels)"], kf.token), from_labels)
        write_prediction(prediction_path(folders["all free"], kf.token), all_free())
    return folders


def best_baseline(scores: dict) -> tuple[float, str]:
    """(mIoU with the camera mask, name) of the best trivial baseline."""
    return max((v["camera"]["mIoU"] or 0.0, k) for k, v in scores.items() if k.startswith(("majority", "all")))


def score(pred_dir: Path, paths: DemoPaths, expected: int, workers: int) -> dict:
    """The evaluator's reports: camera mask (with RayIoU) and the full scene."""
    from easyocc.experiments.stages import score_predictions

    return score_predictions(pred_dir, paths.data, expected, workers)


# --- the report ----------------------------------------------------------------------------------------------------


def middle_keyframe_panels(paths: DemoPaths, keyframes: list, folders: dict[str, Path]) -> tuple[list, str]:
    from easyocc.data.occ_dataset import label_path
    from easyocc.occ3d import prediction_path, read_labels, read_prediction

    kf = keyframes[len(keyframes) // 2]
    gt = read_labels(label_path(paths.data / "gts", kf))
    pseudo = read_labels(label_path(paths.labels, kf))
    pred = read_prediction(prediction_path(paths.predictions, kf.token))
    baseline = read_prediction(prediction_path(folders["majority per height (train GT)"], kf.token))
    panels = [
        ("ground truth", gt.semantics, gt.mask_camera),
        ("pseudo-labels (noisy oracle)", pseudo.semantics, gt.mask_camera),
        ("EasyOcc demo model", pred, gt.mask_camera),
        ("majority per height", baseline, gt.mask_camera),
    ]
    return panels, f"{kf.scene_name} / {kf.token}"


def write_viewer_export(paths: DemoPaths, keyframe, path: Path) -> None:
    """``easyocc view --export`` of one val keyframe: the prediction shown, every other layer a click away."""
    from easyocc.viewer.app import ViewOptions
    from easyocc.viewer.data import ViewerData, ViewerInputs
    from easyocc.viewer.export import save_export

    data = ViewerData(ViewerInputs(paths.data, VERSION, paths.labels, paths.predictions, paths.data / "gts"))
    save_export(path, data, ViewOptions(scene=keyframe.scene_name, keyframe=keyframe.index, layer="pred"),
                [keyframe.index])


def write_report(paths: DemoPaths, settings: DemoSettings, keyframes: list, scores: dict, folders: dict,
                 seconds: dict, train_info: dict) -> Path:
    from easyocc.experiments.stages import per_class_table, score_table, time_table
    from easyocc.fileio import atomic_write, save_json
    from easyocc.viz import save_bev_panels, save_per_class_chart

    labels = label_config(settings)

    report_dir = paths.report
    report_dir.mkdir(parents=True, exist_ok=True)
    chart = {name: scores[name]["camera"]["per_class"] for name in
             ("EasyOcc demo model", "pseudo-labels", "majority per height (train GT)")}
    chart = {name: {c: (np.nan if v is None else v) for c, v in per.items() if c != "free"} for name, per in chart.items()}
    save_per_class_chart(report_dir / "per_class_iou.png", chart,
                         "Per-class IoU on the val scenes (Occ3D camera mask)")
    panels, which = middle_keyframe_panels(paths, keyframes, folders)
    save_bev_panels(report_dir / "bev.png", panels, title=f"Bird's-eye view, GT camera mask ({which})")
    write_viewer_export(paths, keyframes[len(keyframes) // 2], report_dir / VIEWER_EXPORT)

    model = scores["EasyOcc demo model"]["camera"]
    best, _ = best_baseline(scores)
    w, h = settings.image_size
    lines = [
        "# easyocc demo report",
        "",
        f"SimScenes, {settings.scenes} scenes x {settings.keyframes} keyframes at {w}x{h} (seed {settings.seed}); "
        f"the model trained on the train scenes' pseudo-labels only and is scored on the {len(keyframes)} keyframes "
        f"of the val scenes against the exact ground truth.",
        "",
        f"- pseudo-labels: `easyocc labels` with the oracle sources and `--oracle-noise {settings.noise}` "
        f"(foundation-model-like depth and semantic errors), {settings.frames} past frames, "
        f"{labels.future_frames} future frames (static classes), pass-through filtering "
        f"{f'at ratio {labels.pass_through_ratio}' if labels.pass_through else 'off'}, "
        f"min points {settings.min_points};",
        f"- model: config `{settings.config}` ({train_info['summary']}), {train_info['iterations']} iterations "
        f"in {train_info['epochs']} epochs;",
        f"- the demo model's mIoU (camera mask) is {model['mIoU']:.1f}, against {best:.1f} for the best "
        f"trivial baseline.",
        "",
        "## Val scores (%)",
        "",
        *score_table(scores, SCORE_COLUMNS),
        "",
        "mIoU: the official Occ3D protocol (one confusion matrix over the set, mean over the classes 0-16 present in "
        "GT or prediction) under the GT camera mask, or on every voxel (full scene); mIoU_15 drops `others` and "
        "`other_flat` (OccNeRF's number); IoU: occupied vs free; RayIoU: SparseOcc's definition (no mask). "
        "The pseudo-labels are what the model was trained on (for the train scenes), so they are a reference, not "
        "a baseline. The majority baselines predict, at each height, the most frequent class of the training "
        "scenes' voxels under their camera mask, counted on the GT or on the pseudo-labels.",
        "",
        "## Per-class IoU (camera mask)",
        "",
        *per_class_table(scores),
        "",
        "![per-class IoU](per_class_iou.png)",
        "",
        "## Bird's-eye view",
        "",
        "The highest occupied voxel of each column, within the GT camera mask (dark: not observed).",
        "",
        "![bird's-eye view](bev.png)",
        "",
        "## In 3D",
        "",
        f"[{VIEWER_EXPORT}]({VIEWER_EXPORT}): the same keyframe in the viewer, one self-contained file that opens "
        "offline in a browser (orbit with the mouse; layers — GT, pseudo-labels, prediction, errors — and classes in "
        "its scene tree, top right). Every keyframe, live:",
        "",
        "```bash",
        f"easyocc view --data {paths.data} --labels {paths.labels} --pred {paths.predictions}",
        "```",
        "",
        "## Time (s)",
        "",
        *time_table(seconds),
        "",
        "## The same with the commands",
        "",
        "```bash",
        f"easyocc synth --out {paths.data} --scenes {settings.scenes} --keyframes {settings.keyframes} "
        f"--image-size {w} {h} --seed {settings.seed}",
        f"easyocc labels --data {paths.data} --version {VERSION} --out {paths.labels} --split all "
        f"--semantics oracle --depth oracle --oracle-noise {settings.noise} --frames {settings.frames} "
        f"--min-points {settings.min_points}",
        f"easyocc train --config {settings.config} --data {paths.data} --labels {paths.labels} --out {paths.run}"
        + "".join(f" --set {o}" for o in train_info["overrides"]),
        f"easyocc predict --checkpoint {paths.run / 'model.pt'} --data {paths.data} --out {paths.predictions} "
        "--split val",
        f"easyocc eval --pred {paths.predictions} --gt {paths.data / 'gts'} --allow-missing --rayiou "
        f"--data {paths.data} --version {VERSION}",
        "```",
        "",
    ]
    with atomic_write(report_dir / "report.md", "w") as handle:
        handle.write("\n".join(lines))
    save_json(report_dir / "scores.json", {"settings": asdict(settings), "seconds": {k: v[0] for k, v in seconds.items()},
                                           "training": train_info, "scores": scores})
    return report_dir / "report.md"


def training_summary(paths: DemoPaths) -> dict:
    from easyocc.config import load_config
    from easyocc.training.config import TrainConfig
    from easyocc.training.loop import CONFIG_FILE, LOG_FILE

    config = load_config(TrainConfig, paths.run / CONFIG_FILE)
    log = [json.loads(line) for line in (paths.run / LOG_FILE).read_text().splitlines() if line.strip()]
    h, w = config.data.image_size
    summary = (f"{config.model.backbone}, {w}x{h} inputs, lifting grid 1/{config.model.lift_downsample} of Occ3D, "
               f"loss {config.loss.ce_weight:g} CE + {config.loss.lovasz_weight:g} Lovasz")
    overrides = [f"optim.epochs={config.optim.epochs}", f"data.version={VERSION}"]
    return {"summary": summary, "epochs": len(log), "iterations": log[-1]["iteration"] if log else 0,
            "loss_first_epoch": log[0]["loss"] if log else None, "loss_last_epoch": log[-1]["loss"] if log else None,
            "overrides": overrides}


# --- the command ---------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoSettings()
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    parser.add_argument("--scenes", type=int, default=d.scenes, help=f"SimScenes scenes (default {d.scenes})")
    parser.add_argument("--keyframes", type=int, default=d.keyframes,
                        help=f"keyframes per scene (default {d.keyframes})")
    parser.add_argument("--image-size", type=int, nargs=2, default=d.image_size, metavar=("W", "H"),
                        help=f"camera image size (default {d.image_size[0]} {d.image_size[1]})")
    parser.add_argument("--seed", type=int, default=d.seed, help="world seed (default 0)")
    parser.add_argument("--noise", default=d.noise, choices=("none", "mild", "realistic", "strong"),
                        help=f"oracle noise preset for the pseudo-labels (default {d.noise})")
    parser.add_argument("--config", default=d.config, help="training config: a YAML file or a built-in name "
                        "(default demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override training config values")
    parser.add_argument("--workers", type=int, default=2, help="processes for labelling and evaluation (default 2)")


def run(args: argparse.Namespace) -> int:
    from easyocc.fileio import require_folder_or_absent, sweep_temporaries

    settings = DemoSettings(scenes=args.scenes, keyframes=args.keyframes, image_size=tuple(args.image_size),
                            seed=args.seed, noise=args.noise, config=str(args.config), epochs=args.epochs,
                            overrides=tuple(args.overrides))
    # Every setting is checked before the folder is claimed (a failed check leaves nothing to clean up).
    synth_config(settings)
    train_config(settings)
    if args.workers < 1:
        raise EasyOccError(f"--workers must be at least 1 (got {args.workers})")
    paths = DemoPaths(require_folder_or_absent(args.out))
    claim_output(paths.out, settings)
    sweep_temporaries(paths.out)  # what a killed earlier run left
    seconds: dict[str, tuple[float, str]] = {}
    started = time.perf_counter()

    def stage(number: int, title: str) -> float:
        print(f"[{number}/5] {title}", flush=True)
        return time.perf_counter()

    t = stage(1, f"SimScenes: {settings.scenes} scenes x {settings.keyframes} keyframes -> {paths.data}")
    note = synthesize(paths, settings)
    seconds["SimScenes"] = (time.perf_counter() - t, note)

    t = stage(2, f"pseudo-labels (oracle, {settings.noise} noise, {settings.frames} frames) -> {paths.labels}")
    make_labels(paths, settings, args.workers)
    seconds["pseudo-labels"] = (time.perf_counter() - t, "all scenes")

    t = stage(3, f"training ({settings.config}) -> {paths.run}")
    model_path, note = train_model(paths, settings)
    seconds["training"] = (time.perf_counter() - t, note)

    t = stage(4, f"predicting the val scenes -> {paths.predictions}")
    from easyocc.predict import predict_split

    predict_split(model_path, paths.data, paths.predictions, "val", version=VERSION, workers=min(args.workers, 2))
    seconds["prediction"] = (time.perf_counter() - t, "")

    t = stage(5, "scoring the model, the pseudo-labels and the baselines")
    keyframes = val_keyframes(paths)
    folders = {"EasyOcc demo model": paths.predictions, **write_reference_predictions(paths, keyframes)}
    scores = {name: score(folder, paths, len(keyframes), args.workers) for name, folder in folders.items()}
    seconds["evaluation"] = (time.perf_counter() - t, "camera mask, full scene, RayIoU; 5 predictors")
    seconds["total"] = (time.perf_counter() - started, "")

    report = write_report(paths, settings, keyframes, scores, folders, seconds, training_summary(paths))
    model, best = scores["EasyOcc demo model"]["camera"], best_baseline(scores)
    print(f"val mIoU (camera mask): model {model['mIoU']:.1f}, pseudo-labels "
          f"{scores['pseudo-labels']['camera']['mIoU']:.1f}, best trivial baseline {best[0]:.1f} ({best[1]})")
    print(f"report: {report}")
    return 0
