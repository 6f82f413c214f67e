"""Stages shared by ``easyocc demo`` and ``easyocc compare``: a claimed output folder, a SimScenes world,
pseudo-labels from the noisy oracle, the pseudo-labels as predictions, scores from the evaluator, and the markdown
tables of a report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from easyocc.errors import EasyOccError, InputError

#: The nuScenes table version SimScenes worlds are written with here.
VERSION = "v1.0-mini"
#: Scored by default: the official camera mask (with RayIoU) and the full scene.
DEFAULT_MASKS = ("camera", "none")


# --- the output folder ---------------------------------------------------------------------------------------------

def check_claim(folder: Path, marker: str, wanted: dict, kind: str,
                normalize: Callable[[dict], dict] | None = None) -> bool:
    """Whether ``folder`` may be used for ``wanted`` (plain JSON): True if it is new or empty (the marker is still to
    be written), False if its ``marker`` was written with ``wanted``; anything else is refused with an InputError
    (``kind`` names what the folder holds: "demo"). Writes nothing.

    ``normalize`` maps the marker found to today's form before the comparison (e.g. settings read back through
    today's config classes, so that a field added since takes its default); if it fails, the marker differs.
    """
    from easyocc.config import differences

    path = folder / marker
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(path, f"invalid JSON ({exc})") from None
        if isinstance(found, dict) and normalize is not None and found != wanted:
            try:
                found = normalize(found)
            except (EasyOccError, ValueError, KeyError, TypeError):
                pass
        if not isinstance(found, dict) or found != wanted:
            diff = differences(found, wanted) if isinstance(found, dict) else ["not a mapping"]
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise InputError(path, f"an earlier {kind} with other settings is here ({shown}); use another --out or "
                                   f"delete {folder}")
        return False
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(folder, f"not empty and not an earlier {kind} folder; use a new or empty --out")
    return True


def claim_folder(folder: Path, marker: str, wanted: dict, kind: str) -> None:
    """Use ``folder`` if it is new, empty, or holds ``marker`` written with ``wanted``; refuse anything else."""
    from easyocc.fileio import save_json

    if check_claim(folder, marker, wanted, kind):
        save_json(folder / marker, wanted)


# --- stages --------------------------------------------------------------------------------------------------------

def generate_world(data_dir: Path, config, progress: bool = True) -> str:
    """The SimScenes dataset of ``config`` (a SynthConfig) in ``data_dir``: "reused" when it is there, finished."""
    from easyocc.data.synthetic.generate import generate_dataset, is_finished_dataset

    if is_finished_dataset(data_dir, config):
        return "reused"
    generate_dataset(data_dir, config, progress=progress)
    return "generated"


def run_labels(data_dir: Path, labels_dir: Path, noise: str, config, workers: int) -> None:
    """The pseudo-labels of every scene (val too, to score the labels themselves) with the oracle sources spoiled
    by the ``noise`` preset and the label settings ``config`` (a LabelConfig), written to ``labels_dir``
    (``easyocc labels``' library: manifest, resume). Resumable."""
    from easyocc.labels import DatasetLabeler
    from easyocc.labels.sources import SourceSpec

    semantics, depth = SourceSpec(oracle_noise=noise).build(data_dir)
    labeler = DatasetLabeler(data_dir, semantics, depth, config, version=VERSION)
    labeler.write(labels_dir, labeler.scenes("all"), workers)


def split_keyframes(data_dir: Path, split: str) -> list:
    from easyocc.data.occ_dataset import split_keyframes as keyframes_of

    return keyframes_of(data_dir, VERSION, split)


def write_label_predictions(labels_dir: Path, keyframes: list, out_dir: Path) -> Path:
    """The pseudo-labels' semantics of ``keyframes`` written as predictions ``out_dir/<token>.npz``."""
    from easyocc.data.occ_dataset import label_path
    from easyocc.occ3d import prediction_path, read_labels, write_prediction

    for kf in keyframes:
        write_prediction(prediction_path(out_dir, kf.token), read_labels(label_path(labels_dir, kf)).semantics)
    return out_dir


def score_predictions(pred_dir: Path, data_dir: Path, expected: int, workers: int,
                      masks: Sequence[str] = DEFAULT_MASKS) -> dict[str, dict]:
    """mask -> the evaluator's report (``EvalReport.to_dict``) of ``pred_dir`` against the world's exact GT; the
    first mask's report also holds RayIoU (which uses no mask). Fails unless exactly ``expected`` keyframes count."""
    from easyocc.evaluation.runner import evaluate_dirs

    reports = {}
    for i, mask in enumerate(masks):
        report = evaluate_dirs(pred_dir, data_dir / "gts", mask=mask, allow_missing=True, workers=workers,
                               progress=False, rayiou=i == 0, data_root=str(data_dir), version=VERSION)
        if report.num_samples != expected:  # a prediction missing for a val keyframe
            raise EasyOccError(f"{pred_dir}: scored {report.num_samples} keyframes, expected {expected}")
        reports[mask] = report.to_dict()
    return reports


# --- report tables -------------------------------------------------------------------------------------------------

def pct(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def ray_scores(reports: dict) -> dict | None:
    """The RayIoU scores among one predictor's reports (mask -> report), or None."""
    return next((r["rayiou"] for r in reports.values() if r.get("rayiou")), None)


def score_cell(reports: dict, mask: str | None, metric: str) -> str:
    """One table cell: ``metric`` (mIoU, mIoU_15, IoU) under ``mask``, or with mask None a RayIoU number
    (``RayIoU``, ``RayIoU@1`` ...; ``RayIoU@1/2/4`` gives the three thresholds in one cell)."""
    if mask is not None:
        return pct(reports[mask][metric]) if mask in reports else "-"
    ray = ray_scores(reports)
    if ray is None:
        return "-"
    if metric == "RayIoU@1/2/4":
        return " / ".join(pct(ray[f"RayIoU@{t}"]) for t in (1, 2, 4))
    return pct(ray[metric])


def score_table(scores: dict[str, dict], columns: Sequence[tuple[str, str | None, str]]) -> list[str]:
    """Markdown rows: one per predictor of ``scores`` (name -> mask -> report), one column per (header, mask,
    metric) of ``columns`` (see :func:`score_cell`)."""
    lines = ["| | " + " | ".join(header for header, _, _ in columns) + " |",
             "| --- |" + " ---: |" * len(columns)]
    for name, reports in scores.items():
        lines.append(f"| {name} | " + " | ".join(score_cell(reports, m, k) for _, m, k in columns) + " |")
    return lines


def per_class_table(scores: dict[str, dict], mask: str = "camera") -> list[str]:
    """Markdown: per-class IoU under ``mask``, one column per predictor; classes undefined everywhere are left out."""
    from easyocc.occ3d import CLASS_NAMES

    names = [n for n in scores if mask in scores[n]]
    lines = ["| class | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for cls in CLASS_NAMES:
        values = [scores[n][mask]["per_class"][cls] for n in names]
        if all(v is None for v in values):
            continue
        lines.append(f"| {cls} | " + " | ".join(pct(v) for v in values) + " |")
    return lines


def time_table(seconds: dict[str, tuple[float, str]]) -> list[str]:
    """Markdown: the seconds of each stage (stage -> (seconds, note))."""
    return ["| stage | seconds | |", "| --- | ---: | --- |",
            *[f"| {stage} | {sec:.1f} | {note} |" for stage, (sec, note) in seconds.items()]]
