"""The engine of ``easyocc compare``: the stages of an experiment, each reused when it finished with the same settings.

world (SimScenes) -> label sets (``easyocc labels``, the noisy oracle) -> per variant: train (``easyocc train`` in
its own process, so that its peak memory is its own; an interrupted training resumes), predict the val scenes,
score them (``easyocc.evaluation``) -> the pseudo-labels scored for reference -> the report (``report.py``).

Folders under ``OUT``: ``experiment.json`` (the world and sources the folder holds), ``simscenes/``,
``label_sets/<name>/`` (``label_set.json``, ``labels.yaml``, ``labels/``), ``variants/<name>/``
(``variant.json``, ``train_config.yaml``, ``run/``, ``cost.json``, ``predictions/``, ``scores.json``),
``references/pseudo-labels-<set>/``, ``report/``. Every marker is checked before anything runs: a world, label set
or variant that exists with other settings is refused, with the differences named.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import easyocc
from easyocc.config import config_from_dict, config_to_dict, save_config
from easyocc.errors import EasyOccError
from easyocc.evaluation.protocols import MASK_KEYS
from easyocc.experiments.definition import Experiment, SourcesConfig, WorldConfig
from easyocc.experiments.stages import (
    VERSION,
    check_claim,
    generate_world,
    run_labels,
    score_predictions,
    split_keyframes,
    write_label_predictions,
)
from easyocc.fileio import atomic_write, save_json
from easyocc.labels.config import LabelConfig
from easyocc.training.config import TrainConfig

MARKER = "experiment.json"
LABEL_SET_MARKER = "label_set.json"
VARIANT_MARKER = "variant.json"
#: Each stage's seconds when it last ran (not reused), so that a report rewritten over finished stages still says
#: what they took.
STAGE_SECONDS = "stage_seconds.json"
FORMAT = "easyocc-experiment/1"
#: Seconds between samples of the load average while a variant trains.
LOAD_SAMPLE_S = 10.0


@dataclass(frozen=True)
class ExperimentPaths:
    out: Path

    @property
    def data(self) -> Path:
        return self.out / "simscenes"

    @property
    def report(self) -> Path:
        return self.out / "report"

    def label_set(self, name: str) -> Path:
        return self.out / "label_sets" / name

    def labels(self, name: str) -> Path:
        return self.label_set(name) / "labels"

    def variant(self, name: str) -> Path:
        return self.out / "variants" / name

    def run(self, name: str) -> Path:
        return self.variant(name) / "run"

    def reference(self, label_set: str) -> Path:
        return self.out / "references" / f"pseudo-labels-{label_set}"


@dataclass(frozen=True)
class RunOptions:
    #: Processes for labelling and evaluation.
    workers: int = 2
    #: Training and prediction device (None: each config's own, ``auto``).
    device: str | None = None
    #: No progress bars.
    quiet: bool = False


def reference_name(label_set: str) -> str:
    return f"pseudo-labels ({label_set})"


# --- claiming the folders ------------------------------------------------------------------------------------------

def _plain(value):
    return json.loads(json.dumps(value))


def label_set_settings(experiment: Experiment, name: str) -> dict:
    return {"noise": experiment.config.sources.noise, **experiment.config.label_sets[name].manifest()}


def training_settings(config) -> dict:
    """A TrainConfig as marker content: everything but the device, which changes where, not what, it trains."""
    settings = config_to_dict(config)
    settings.pop("device", None)
    return settings


def variant_settings(experiment: Experiment, name: str) -> dict:
    """What makes a trained variant what it is: its training config (the device aside) and its labels."""
    label_set = experiment.config.variants[name].labels
    return {"label_set": label_set, "labels": label_set_settings(experiment, label_set),
            "training": training_settings(experiment.training[name])}


def _labels_today(settings: dict) -> dict:
    """Label settings from a marker; a key added to LabelConfig since it was written takes its old behaviour."""
    fields = dict(settings)
    noise = fields.pop("noise")
    return {"noise": noise, **config_from_dict(LabelConfig, {**LabelConfig.before_ideas(), **fields}).manifest()}


def normalized_marker(found: dict) -> dict:
    """A marker read back through today's config classes, so that a setting added since it was written takes its
    default instead of making every earlier folder look different."""
    out = dict(found)
    if "world" in out:
        out["world"] = config_to_dict(config_from_dict(WorldConfig, out["world"]))
        out["sources"] = config_to_dict(config_from_dict(SourcesConfig, out["sources"]))
    if "settings" in out:
        out["settings"] = _labels_today(out["settings"])
    if "training" in out:
        out["labels"] = _labels_today(out["labels"])
        out["training"] = training_settings(config_from_dict(TrainConfig, out["training"]))
    return _plain(out)


def claims(experiment: Experiment, paths: ExperimentPaths) -> list[tuple[Path, str, dict, str]]:
    """(folder, marker, wanted content, kind) of every folder this experiment uses."""
    config = experiment.config
    world = {"format": FORMAT, "world": config_to_dict(config.world), "sources": config_to_dict(config.sources)}
    out = [(paths.out, MARKER, _plain(world), "experiment")]
    for name in config.used_label_sets():
        out.append((paths.label_set(name), LABEL_SET_MARKER,
                    _plain({"format": FORMAT, "settings": label_set_settings(experiment, name)}), "label set"))
    for name in config.variants:
        out.append((paths.variant(name), VARIANT_MARKER,
                    _plain({"format": FORMAT, "variant": name, **variant_settings(experiment, name)}), "variant"))
    return out


def claim_all(experiment: Experiment, paths: ExperimentPaths) -> None:
    """Check every folder's marker first (nothing is written if one is refused), then write the new ones."""
    pending = [(folder, marker, wanted) for folder, marker, wanted, kind in claims(experiment, paths)
               if check_claim(folder, marker, wanted, kind, normalized_marker)]
    for folder, marker, wanted in pending:
        save_json(folder / marker, wanted)


# --- stages --------------------------------------------------------------------------------------------------------

def make_label_set(experiment: Experiment, paths: ExperimentPaths, name: str, workers: int) -> str:
    """Label set ``name`` (its settings kept in ``label_sets/<name>/labels.yaml``) into ``label_sets/<name>/labels/``;
    "reused" when every keyframe was labelled before, else "labelled"."""
    import yaml

    settings = experiment.config.label_sets[name].manifest()
    config_file = paths.label_set(name) / "labels.yaml"
    with atomic_write(config_file, "w") as handle:
        yaml.safe_dump(settings, handle, sort_keys=False)
    before = label_file_count(paths.labels(name))
    run_labels(paths.data, paths.labels(name), experiment.config.sources.noise, experiment.config.label_sets[name],
               workers)
    return "reused" if before and label_file_count(paths.labels(name)) == before else "labelled"


def label_file_count(labels_dir: Path) -> int:
    from easyocc.occ3d import LABELS_FILE

    return sum(1 for _ in labels_dir.glob(f"*/*/{LABELS_FILE}")) if labels_dir.is_dir() else 0


def child_environment() -> dict:
    """The environment of a child ``python -m easyocc``: this very package first on its path."""
    env = dict(os.environ)
    package_root = str(Path(easyocc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def run_child(command: list[str]) -> dict:
    """Run ``command``, passing its output through; returns its exit code, the last error line of its stderr, its
    wall time and the load average sampled every ``LOAD_SAMPLE_S`` seconds while it ran."""
    samples = [os.getloadavg()[0]]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(LOAD_SAMPLE_S):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    process = subprocess.Popen(command, env=child_environment(), stderr=subprocess.PIPE)
    try:
        for chunk in iter(lambda: process.stderr.read1(8192), b""):
            text = decoder.decode(chunk)
            sys.stderr.write(text)
            sys.stderr.flush()
            tail = (tail + text)[-4000:]
    finally:
        code = process.wait()
        stop.set()
        sampler.join()
    errors = [line.strip() for line in tail.replace("\r", "\n").splitlines() if "error:" in line]
    return {"returncode": code, "error": errors[-1] if errors else None,
            "wall_s": round(time.perf_counter() - started, 2),
            "load_1min_mean": round(statistics.fmean(samples), 2), "load_1min_max": round(max(samples), 2)}


def train_variant(experiment: Experiment, paths: ExperimentPaths, name: str, options: RunOptions) -> str:
    """Train variant ``name`` in its own process: "reused" (model.pt is there), "resumed" or "trained"."""
    from easyocc.training.loop import LAST_CHECKPOINT, MODEL_FILE

    run_dir = paths.run(name)
    if (run_dir / MODEL_FILE).is_file():
        return "reused"
    variant_dir = paths.variant(name)
    config_file = variant_dir / "train_config.yaml"
    save_config(config_file, experiment.training[name])
    resume = (run_dir / LAST_CHECKPOINT).is_file()
    command = [sys.executable, "-m", "easyocc", "train", "--data", str(paths.data),
               "--labels", str(paths.labels(experiment.config.variants[name].labels)), "--out", str(run_dir)]
    command += ["--resume"] if resume else ["--config", str(config_file)]
    if options.device:
        command += ["--device", options.device]
    if options.quiet:
        command.append("--quiet")
    session = run_child(command)
    cost_file = variant_dir / "cost.json"
    sessions = json.loads(cost_file.read_text())["sessions"] if cost_file.is_file() else []
    save_json(cost_file, {"sessions": [*sessions, {"resumed": resume, **session}]})
    if session["returncode"] != 0:
        raise EasyOccError(session["error"] or f"easyocc train exited with code {session['returncode']}")
    return "resumed" if resume else "trained"


def predict_variant(paths: ExperimentPaths, name: str, options: RunOptions) -> str:
    """Predictions of the val scenes in ``variants/<name>/predictions/`` (written aside, then renamed)."""
    from easyocc.predict import predict_split
    from easyocc.training.loop import MODEL_FILE

    final = paths.variant(name) / "predictions"
    if final.is_dir():
        return "reused"
    partial = final.with_name("predictions.partial")
    shutil.rmtree(partial, ignore_errors=True)
    predict_split(paths.run(name) / MODEL_FILE, paths.data, partial, "val", version=VERSION,
                  device=options.device or "auto", workers=min(options.workers, 2), show_progress=not options.quiet)
    partial.rename(final)
    return "predicted"


def scored(pred_dir: Path, scores_file: Path, paths: ExperimentPaths, expected: int, masks: list[str],
           workers: int) -> dict:
    """The scores of ``pred_dir`` under ``masks`` (mask -> the evaluator's report), kept in ``scores_file`` and
    reused while the masks are the same."""
    if scores_file.is_file():
        kept = json.loads(scores_file.read_text())
        if kept.get("masks") == masks:
            return kept["scores"]
    scores = score_predictions(pred_dir, paths.data, expected, workers, masks)
    save_json(scores_file, {"masks": masks, "scores": scores})
    return scores


def training_cost(paths: ExperimentPaths, name: str) -> dict | None:
    """What training variant ``name`` cost, from its own log (one record per epoch) and the runner's sessions.

    iteration_s_median: the median over the epochs of each epoch's median seconds per iteration (data loading
    included); peak_memory_mb: the largest peak of the training process(es); train_s: the epochs' seconds summed;
    wall_s: the training processes' wall time (start-up, class statistics and saving included; None when a session
    ended without its record, e.g. killed).
    """
    from easyocc.training.loop import LOG_FILE

    log_file = paths.run(name) / LOG_FILE
    if not log_file.is_file():
        return None
    # One record per epoch: a run resumed from its last checkpoint after its last epoch was logged logs it again.
    log = list({r["epoch"]: r for r in (json.loads(line) for line in log_file.read_text().splitlines()
                                         if line.strip())}.values())
    medians = [r["iteration_s_median"] for r in log if r.get("iteration_s_median") is not None]
    peaks = [r["peak_memory_mb"] for r in log if r.get("peak_memory_mb") is not None]
    cost_file = paths.variant(name) / "cost.json"
    sessions = json.loads(cost_file.read_text())["sessions"] if cost_file.is_file() else []
    # A first recorded session that resumed means an earlier one ended without its record (killed): no wall time.
    complete = bool(sessions) and not sessions[0]["resumed"]
    return {
        "epochs": len(log),
        "iterations": log[-1]["iteration"] if log else 0,
        "iteration_s_median": round(statistics.median(medians), 4) if medians else None,
        "peak_memory_mb": max(peaks) if peaks else None,
        "memory_kind": next((r["memory_kind"] for r in log if r.get("memory_kind")), None),
        "train_s": round(sum(r["seconds"] for r in log), 1),
        "wall_s": round(sum(s["wall_s"] for s in sessions), 1) if complete else None,
        "load_1min_mean": round(statistics.fmean(s["load_1min_mean"] for s in sessions), 2) if sessions else None,
        "loss_last_epoch": log[-1]["loss"] if log else None,
    }


def machine() -> dict:
    """Where this ran: CPU model and count, the torch device, the load average when the experiment started."""
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or platform.machine())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    # The training processes inherit the environment, so they use as many torch threads as this one.
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "load_1min_at_start": round(os.getloadavg()[0], 2)}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def measured_seconds(paths: ExperimentPaths, seconds: dict[str, tuple[float, str]]) -> dict[str, tuple[float, str]]:
    """Each stage's seconds as measured when it ran: a stage that ran now is recorded in ``STAGE_SECONDS``; a reused
    one takes its recorded seconds, or (recorded by none, from an older runner) a variant its training's wall time
    (``cost.json``). The total is the sum of the stages' so measured seconds. Writes ``STAGE_SECONDS``."""
    file = paths.out / STAGE_SECONDS
    recorded = json.loads(file.read_text()) if file.is_file() else {}
    out = {}
    for stage, (sec, note) in seconds.items():
        if stage == "total":
            continue
        if not note.startswith("reused"):
            recorded[stage] = round(sec, 1)
            out[stage] = (sec, note)
        elif stage in recorded:
            out[stage] = (recorded[stage], f"{note}; seconds of the run that made it")
        elif stage.startswith("variant: ") and (cost := training_cost(paths, stage[len("variant: "):])):
            if cost["wall_s"] is not None:
                out[stage] = (cost["wall_s"], f"{note}; the training's wall time (cost.json)")
            else:
                out[stage] = (cost["train_s"], f"{note}; the epochs' seconds (train_log; a killed session's wall "
                                               "time is not known)")
        else:
            out[stage] = (sec, note)
    save_json(file, recorded)
    out["total"] = (sum(sec for sec, _ in out.values()), "the stages' seconds above")
    return out


# --- the whole experiment ------------------------------------------------------------------------------------------

def run_experiment(experiment: Experiment, out: Path, options: RunOptions = RunOptions()) -> Path:
    """Run (or finish) ``experiment`` in ``out``; returns the path of the report's markdown."""
    from easyocc.experiments.report import label_set_summary, write_report

    config = experiment.config
    synth = config.world.synth_config()  # checked by load_experiment
    paths = ExperimentPaths(Path(out))
    claim_all(experiment, paths)
    host = machine()
    label_sets = config.used_label_sets()
    steps = 1 + len(label_sets) + len(config.variants) + 2
    seconds: dict[str, tuple[float, str]] = {}
    started = time.perf_counter()
    step = 0

    def stage(title: str) -> float:
        nonlocal step
        step += 1
        print(f"[{step}/{steps}] {title}", flush=True)
        return time.perf_counter()

    t = stage(f"SimScenes: {config.world.scenes} scenes x {config.world.keyframes} keyframes -> {paths.data}")
    note = generate_world(paths.data, synth, progress=not options.quiet)
    seconds["SimScenes"] = (time.perf_counter() - t, note)
    for name in label_sets:
        t = stage(f"label set '{name}' ({config.sources.noise} oracle, {label_set_summary(config.label_sets[name])})"
                  f" -> {paths.labels(name)}")
        note = make_label_set(experiment, paths, name, options.workers)
        seconds[f"labels: {name}"] = (time.perf_counter() - t, note)

    keyframes = split_keyframes(paths.data, "val")
    results: dict[str, dict] = {}
    failures = []
    for name, variant in config.variants.items():
        t = stage(f"variant '{name}': train, predict the val scenes, score -> {paths.variant(name)}")
        record = {"kind": "variant", "label_set": variant.labels, "description": variant.description,
                  "overrides": list(variant.overrides), "masks": config.masks_of(name)}
        try:
            record["status"] = train_variant(experiment, paths, name, options)
        except EasyOccError as exc:
            record["status"] = f"failed: {exc}"
            failures.append(f"{name} ({exc})")
            print(f"variant '{name}' failed: {exc}", file=sys.stderr, flush=True)
        else:
            predict_variant(paths, name, options)
            record["scores"] = scored(paths.variant(name) / "predictions", paths.variant(name) / "scores.json",
                                      paths, len(keyframes), config.masks_of(name), options.workers)
        record["cost"] = training_cost(paths, name)
        results[name] = record
        seconds[f"variant: {name}"] = (time.perf_counter() - t, record["status"])

    t = stage("the pseudo-labels themselves, scored for reference")
    for label_set in label_sets:
        masks = [m for m in MASK_KEYS
                 if any(m in config.masks_of(v) for v, var in config.variants.items() if var.labels == label_set)]
        folder = paths.reference(label_set)
        predictions = folder / "predictions"
        if not predictions.is_dir():
            write_label_predictions(paths.labels(label_set), keyframes, folder / "predictions.partial")
            (folder / "predictions.partial").rename(predictions)
        results[reference_name(label_set)] = {
            "kind": "reference", "label_set": label_set, "status": "scored", "masks": masks,
            "description": "the pseudo-labels of the val scenes themselves (the variants' teacher)",
            "scores": scored(predictions, folder / "scores.json", paths, len(keyframes), masks, options.workers)}
    seconds["references"] = (time.perf_counter() - t, "scored")

    stage(f"report -> {paths.report}")
    host["load_1min_at_end"] = round(os.getloadavg()[0], 2)
    host["this_run_s"] = round(time.perf_counter() - started, 1)
    report = write_report(experiment, paths, results, measured_seconds(paths, seconds), host, len(keyframes))
    if failures:
        raise EasyOccError(f"variant(s) failed: {'; '.join(failures)}; the report lists the others: {report}")
    return report
