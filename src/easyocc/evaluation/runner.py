"""Evaluate a folder of predictions against an Occ3D ``gts/`` tree: the library behind ``easyocc eval``.

``evaluate_dirs(pred_dir, gt_dir, mask="camera")`` pairs ``<pred>/<token>.npz`` with
``<gt>/<scene>/<token>/labels.npz``, decodes them in a process pool (each worker sums its own counts, the parent
merges them in memory) and returns an :class:`EvalReport`; ``format_report`` prints it as a table whose every number
names its protocol, ``EvalReport.to_dict`` gives the JSON.
"""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from easyocc.devices import BACKENDS
from easyocc.errors import EasyOccError, InputError
from easyocc.evaluation.metrics import ConfusionMatrix, VoxelScores
from easyocc.evaluation.protocols import MASK_DESCRIPTIONS, MASK_KEYS, ray_protocols, voxel_protocols
from easyocc.evaluation.rayiou import MAX_ORIGINS, RAYS_PER_ORIGIN, RayIoU, RayScores, cast_rays_torch, lidar_origins
from easyocc.occ3d import (
    CLASS_NAMES,
    NUM_SEMANTIC_CLASSES,
    PREDICTIONS_MANIFEST,
    read_labels,
    read_prediction,
    read_predictions_manifest,
)
from easyocc.processes import stop_pool

GT_PATTERN = "<scene>/<sample_token>/labels.npz"
#: Samples per task sent to a worker: large enough to amortise the hand-off, small enough for a smooth progress bar.
_CHUNK = 32
_IN_FLIGHT_PER_WORKER = 3


@dataclass(frozen=True)
class EvalConfig:
    """Options of an evaluation.

    mask: which voxels the voxel metrics count (``MASK_KEYS``); allow_missing: evaluate only the GT samples that
    have a prediction instead of failing; workers: decoding processes (None = CPU count, 1 = in this process);
    rayiou: also compute RayIoU, with ray origins from the nuScenes-format ``data_root`` tables of ``version``;
    ray_backend: the RayIoU caster, "numba" (CPU kernels in the workers), "torch" (batched in this process on
    ``ray_device``) or "auto" (torch on a GPU, numba on the CPU); ray_device: where the torch caster runs (auto, cpu,
    cuda, cuda:N, ``easyocc.devices``); progress: show a progress bar.
    """

    mask: str = "camera"
    allow_missing: bool = False
    workers: int | None = None
    rayiou: bool = False
    data_root: str | None = None
    version: str = "auto"
    ray_device: str = "auto"
    ray_backend: str = "auto"
    progress: bool = True

    def __post_init__(self):
        if self.mask not in MASK_KEYS:
            raise ValueError(f"unknown mask '{self.mask}' (known: {', '.join(MASK_KEYS)})")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers (--workers) must be at least 1, got {self.workers}")
        if self.rayiou and not self.data_root:
            raise ValueError("RayIoU needs data_root (--data NUSCENES_ROOT): the nuScenes-format dataroot that gives "
                             "the LiDAR origins")
        if self.ray_device == "numba":
            raise ValueError("ray device 'numba' names an implementation, not a device: use --ray-backend numba "
                             "(ray_backend='numba'); the devices are auto, cpu, cuda, cuda:N")
        if self.ray_backend not in BACKENDS:
            raise ValueError(f"unknown ray backend '{self.ray_backend}' ({', '.join(BACKENDS)})")


# ---------------------------------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Pairing:
    """GT samples matched with prediction files. pairs: (token, gt_path, pred_path) sorted by token;
    not_predicted: GT samples left out because the prediction folder's predictions.json does not list them."""

    pairs: list[tuple[str, Path, Path]]
    missing: list[str]
    unmatched_predictions: int
    scenes: dict[str, str]
    not_predicted: int = 0


def _require_dir(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "directory not found")
    if not path.is_dir():
        raise InputError(path, "not a directory")


def find_ground_truth(gt_dir: str | Path) -> dict[str, tuple[str, Path]]:
    """Sample token -> (scene name, labels.npz path) of an Occ3D ``gts/`` tree (``<scene>/<token>/labels.npz``)."""
    gt_dir = Path(gt_dir)
    _require_dir(gt_dir)
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(gt_dir.glob("*/*/labels.npz")):
        token, scene = path.parent.name, path.parent.parent.name
        if token in found:
            raise InputError(path, f"sample {token} appears twice (also in scene {found[token][0]})")
        found[token] = (scene, path)
    if not found:
        hint = " (this looks like one scene's folder: pass the gts/ folder above it)" if any(
            gt_dir.glob("*/labels.npz")
        ) else ""
        raise InputError(gt_dir, f"no {GT_PATTERN} files: not an Occ3D gts/ tree{hint}")
    return found


def find_predictions(pred_dir: str | Path) -> dict[str, Path]:
    """Sample token -> ``<pred_dir>/<token>.npz``."""
    pred_dir = Path(pred_dir)
    _require_dir(pred_dir)
    found = {p.stem: p for p in sorted(pred_dir.glob("*.npz")) if p.is_file()}
    if not found:
        raise InputError(pred_dir, "no <sample_token>.npz prediction files")
    return found


def pair_samples(pred_dir: str | Path, gt_dir: str | Path, allow_missing: bool = False) -> Pairing:
    """Match predictions to GT samples; missing predictions are an error unless ``allow_missing``.

    A folder written by ``easyocc predict`` names its samples (``predictions.json``, e.g. the val split): only the
    GT samples it lists are expected, the others are counted as ``not_predicted``.
    """
    manifest = read_predictions_manifest(pred_dir)
    if manifest is not None and manifest.get("complete") is not True:
        raise InputError(Path(pred_dir) / PREDICTIONS_MANIFEST, "easyocc predict was stopped while moving these "
                         "predictions into place; rerun it")
    gts = find_ground_truth(gt_dir)
    preds = find_predictions(pred_dir)
    not_predicted = 0
    if manifest is not None:
        listed = set(manifest["samples"])
        not_predicted = len(set(gts) - listed)
        gts = {token: found for token, found in gts.items() if token in listed}
        if not gts:
            raise InputError(Path(pred_dir) / PREDICTIONS_MANIFEST, f"none of its {len(listed)} samples (split "
                             f"{manifest.get('split')!r}) has ground truth in {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    pairs = [(token, gts[token][1], preds[token]) for token in sorted(set(gts) & set(preds))]
    if missing and not allow_missing:
        few = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise InputError(
            pred_dir, f"no prediction for {len(missing)} of {len(gts)} GT samples (e.g. {few}); allow_missing "
            "(--allow-missing) evaluates the others"
        )
    if not pairs:
        raise InputError(pred_dir, f"none of the {len(preds)} prediction files matches a GT sample in {gt_dir}")
    return Pairing(pairs, missing, len(set(preds) - set(gts)), {t: gts[t][0] for t, _, _ in pairs}, not_predicted)


# ------------------------------------------------------------------------------------------------------ workers


def load_pair(gt_path: Path, pred_path: Path, mask: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(gt semantics, prediction, mask or None), each (200, 200, 16) uint8 and read-only, reading only the
    members needed."""
    keys = MASK_KEYS[mask]
    # Read-only arrays: the metrics only read them, and skipping a copy per array matters at 300 samples/s.
    labels = read_labels(gt_path, keys=("semantics", *keys), writable=False)
    pred = read_prediction(pred_path, writable=False)
    voxel_mask = None
    for key in keys:
        member = getattr(labels, key)
        voxel_mask = member if voxel_mask is None else voxel_mask & member
    return labels.semantics, pred, voxel_mask


@dataclass
class _Job:
    samples: list[tuple[Path, Path, np.ndarray | None]]  # gt, pred, ray origins (T, 3) or None
    mask: str
    rays: str | None  # None, "numba" (cast here) or "collect" (send the grids back to the parent)


@dataclass
class _Partial:
    confusion: ConfusionMatrix
    rays: RayIoU | None = None
    grids: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def _run_job(job: _Job) -> _Partial:
    part = _Partial(ConfusionMatrix(), RayIoU() if job.rays == "numba" else None)
    for gt_path, pred_path, origins in job.samples:
        gt, pred, voxel_mask = load_pair(gt_path, pred_path, job.mask)
        try:
            part.confusion.update(gt, pred, voxel_mask)
        except ValueError as exc:  # read_prediction validated values; keep a clear message regardless
            raise InputError(pred_path, str(exc)) from None
        if job.rays == "numba":
            part.rays.update_sample(pred, gt, origins)
        elif job.rays == "collect":
            part.grids.append((pred, gt, origins))
    return part


def init_worker_process(parent_pid: int) -> None:
    """Initialiser of pool processes: they die with the parent; one numba thread each, since the pool already uses
    every core."""
    import numba

    from easyocc.processes import die_with_parent

    die_with_parent(parent_pid)
    numba.set_num_threads(1)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_jobs(jobs: list[_Job], workers: int, progress: bool, on_result) -> None:
    """Run jobs in ``workers`` processes (or here when 1), calling ``on_result(partial)`` in this process."""
    from tqdm import tqdm

    total = sum(len(j.samples) for j in jobs)
    with tqdm(total=total, desc="eval", unit="sample", disable=not progress, dynamic_ncols=True) as bar:
        if workers <= 1:
            for job in jobs:
                on_result(_run_job(job))
                bar.update(len(job.samples))
            return
        # spawn, not fork: numba's thread pool and torch are not fork-safe once started in the parent.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker_process,
                                 initargs=(os.getpid(),)) as pool:
            queue, pending = iter(jobs), {}

            def submit_next() -> None:
                job = next(queue, None)
                if job is not None:
                    pending[pool.submit(_run_job, job)] = len(job.samples)

            # A bounded number of jobs in flight keeps memory flat (the torch path sends whole grids back).
            for _ in range(_IN_FLIGHT_PER_WORKER * workers):
                submit_next()
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        size = pending.pop(future)
                        on_result(future.result())
                        bar.update(size)
                        submit_next()
            except BaseException:
                stop_pool(pool)
                raise


# ------------------------------------------------------------------------------------------------------- report


@dataclass
class EvalReport:
    """The outcome of an evaluation: raw counts (mergeable) and the scores computed from them, in percent."""

    mask: str
    num_samples: int
    confusion: ConfusionMatrix
    scores: VoxelScores
    rays: RayIoU | None = None
    ray_scores: RayScores | None = None
    missing_predictions: int = 0
    unmatched_predictions: int = 0
    #: GT samples outside the samples an ``easyocc predict`` folder lists (e.g. the train split): not scored.
    not_predicted: int = 0
    pred_dir: str | None = None
    gt_dir: str | None = None

    def protocols(self) -> dict[str, str]:
        """Metric name -> what exactly it measures."""
        labels = voxel_protocols(self.mask)
        if self.ray_scores is not None:
            labels.update(ray_protocols(MAX_ORIGINS, RAYS_PER_ORIGIN, self.rays.thresholds))
        return labels

    def to_dict(self) -> dict:
        """JSON-ready: scores in percent (null where undefined), protocols, counts and the confusion matrix."""
        out = {
            "mIoU": _num(self.scores.miou),
            "mIoU_15": _num(self.scores.miou_15),
            "IoU": _num(self.scores.iou),
            "per_class": {name: _num(v) for name, v in zip(CLASS_NAMES, self.scores.per_class)},
            "mask": self.mask,
            "num_samples": self.num_samples,
            "missing_predictions": self.missing_predictions,
            "unmatched_predictions": self.unmatched_predictions,
            "not_predicted": self.not_predicted,
            "protocols": self.protocols(),
            "units": "percent",
            "confusion_matrix": self.confusion.hist.tolist(),
        }
        if self.pred_dir is not None:
            out["pred_dir"], out["gt_dir"] = self.pred_dir, self.gt_dir
        if self.ray_scores is not None:
            rs = self.ray_scores
            out["rayiou"] = {
                "RayIoU": _num(rs.rayiou),
                **{f"RayIoU@{t:g}": _num(v) for t, v in zip(self.rays.thresholds, rs.at_threshold)},
                "per_class": {
                    name: {f"@{t:g}": _num(v) for t, v in zip(self.rays.thresholds, rs.per_class[:, c])}
                    for c, name in enumerate(CLASS_NAMES[:NUM_SEMANTIC_CLASSES])
                },
                "num_rays": int(self.rays.num_rays[0]),
            }
        return out


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def build_report(
    confusion: ConfusionMatrix, mask: str, rays: RayIoU | None = None, **extra
) -> EvalReport:
    """An :class:`EvalReport` from summed metrics (for callers that accumulate in memory)."""
    return EvalReport(
        mask=mask,
        num_samples=int(confusion.num_samples[0]),
        confusion=confusion,
        scores=confusion.compute(),
        rays=rays,
        ray_scores=rays.compute() if rays is not None else None,
        **extra,
    )


def _fmt(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{value:6.2f}"


def format_report(report: EvalReport) -> str:
    """A readable table: per-class IoU (and RayIoU), then every summary number labelled by its protocol."""
    rays = report.ray_scores
    thresholds = report.rays.thresholds if rays is not None else ()
    header = f"{'class':<22}{'IoU':>8}" + "".join(f"{f'RayIoU@{t:g}':>11}" for t in thresholds)
    lines = [
        f"{report.num_samples} samples, {MASK_DESCRIPTIONS[report.mask]}"
        + (f"; {report.missing_predictions} GT samples without prediction skipped" if report.missing_predictions else "")
        + (f"; {report.unmatched_predictions} predictions without GT ignored" if report.unmatched_predictions else "")
        + (f"; {report.not_predicted} GT samples outside the predicted samples (predictions.json) not scored"
           if report.not_predicted else ""),
        header,
        "-" * len(header),
    ]
    for c, name in enumerate(CLASS_NAMES):
        row = f"{name:<22}{_fmt(report.scores.per_class[c]):>8}"
        if rays is not None and c < NUM_SEMANTIC_CLASSES:
            row += "".join(f"{_fmt(v):>11}" for v in rays.per_class[:, c])
        if c == len(CLASS_NAMES) - 1:
            row += "   (in the matrix, not in the means)"
        lines.append(row)
    lines.append("-" * len(header))
    values = {"mIoU": report.scores.miou, "mIoU_15": report.scores.miou_15, "IoU": report.scores.iou}
    if rays is not None:
        values["RayIoU"] = rays.rayiou
        values.update({f"RayIoU@{t:g}": v for t, v in zip(thresholds, rays.at_threshold)})
    protocols = report.protocols()
    width = max(len(p) for p in protocols.values())
    lines += [f"{protocols[key]:<{width}}  {_fmt(values[key])}" for key in values]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ drivers


def _ray_origins(pairing: Pairing, data_root: str, version: str) -> dict[str, np.ndarray]:
    from easyocc.data.nuscenes_index import DatasetIndex

    # Index only the scenes of the GT tree (the devkit still loads every table of the version).
    index = DatasetIndex(data_root, version, cameras=(), scene_names=sorted(set(pairing.scenes.values())))
    origins = {}
    for token, gt_path, _ in pairing.pairs:
        if token not in index.keyframes:
            raise InputError(gt_path, f"sample {token} is not a keyframe of the nuScenes tables in {data_root}/{version}")
        origins[token] = lidar_origins(index, token)
    return origins


def ray_caster(config: EvalConfig):
    """("numba", None) or ("torch", torch.device): the RayIoU caster ``config`` asks for, its device checked
    (``easyocc.devices``). numba runs on the CPU, so it refuses a CUDA device rather than ignore it."""
    from easyocc.devices import resolve_backend, resolve_device

    try:
        device = resolve_device(config.ray_device)
    except EasyOccError as exc:
        raise EasyOccError(f"ray device: {exc}") from None
    backend = resolve_backend(config.ray_backend, device)
    if backend == "numba" and device.type == "cuda" and config.ray_device != "auto":
        raise EasyOccError(f"ray backend numba runs on the CPU and does not use ray device {config.ray_device} "
                           "(the torch backend casts on the GPU)")
    return backend, device if backend == "torch" else None


def evaluate_dirs(
    pred_dir: str | Path, gt_dir: str | Path, config: EvalConfig | None = None, **overrides
) -> EvalReport:
    """Evaluate ``<pred_dir>/<token>.npz`` against ``<gt_dir>/<scene>/<token>/labels.npz``.

    ``config`` (an :class:`EvalConfig`) and/or keyword overrides of its fields, e.g.
    ``evaluate_dirs("preds", "gts", mask="none", workers=2)``. Bad input raises :class:`InputError`.
    """
    config = dataclasses.replace(config or EvalConfig(), **overrides)
    backend, ray_device = ray_caster(config) if config.rayiou else (None, None)
    pairing = pair_samples(pred_dir, gt_dir, config.allow_missing)
    origins = _ray_origins(pairing, config.data_root, config.version) if config.rayiou else {}
    ray_mode = {None: None, "numba": "numba", "torch": "collect"}[backend]
    samples = [(gt, pred, origins.get(token)) for token, gt, pred in pairing.pairs]
    workers = max(1, min(config.workers or default_workers(), len(samples)))
    # A few jobs per worker balance the load; the torch path casts a whole job at once, so keep those GPU-sized.
    chunk = max(1, min(_CHUNK if ray_mode != "collect" else 8, math.ceil(len(samples) / (4 * workers))))
    jobs = [_Job(samples[i : i + chunk], config.mask, ray_mode) for i in range(0, len(samples), chunk)]

    confusion = ConfusionMatrix()
    rays = RayIoU() if ray_mode else None

    def on_result(part: _Partial) -> None:
        confusion.merge(part.confusion)
        if part.rays is not None:
            rays.merge(part.rays)
        if part.grids:
            preds, gts, orig = zip(*part.grids)
            for hits in cast_rays_torch(np.stack(preds), np.stack(gts), list(orig), device=ray_device):
                rays.update(hits)

    _run_jobs(jobs, workers, config.progress, on_result)
    return build_report(
        confusion,
        config.mask,
        rays,
        missing_predictions=len(pairing.missing),
        unmatched_predictions=pairing.unmatched_predictions,
        not_predicted=pairing.not_predicted,
        pred_dir=str(pred_dir),
        gt_dir=str(gt_dir),
    )
