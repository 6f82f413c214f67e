"""The label sweep: every keyframe labelled in memory for each number of past frames and each occupancy threshold
(for each oracle noise preset and carving setting), scored against ground truth; written as a table (markdown,
CSV, JSON) and a plot: the paper's temporal-aggregation and occupancy-threshold figures (``easyocc label-quality
--sweep``).

The sweep counts each keyframe's points once: the current frame first, then past frames one by one, taking a
snapshot at each requested number of frames; each snapshot's vote is thresholded at every ``min_points``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from easyocc.labels.config import LabelConfig

if TYPE_CHECKING:
    from easyocc.data.nuscenes_index import Scene
    from easyocc.labels.sources.base import DepthSource, SemanticSource

SWEEP_NAME = "label_sweep"
GT_MASKS = ("camera", "none")


@dataclass
class SweepTask:
    """One scene under one noise preset and carving setting (picklable data, for worker processes).

    preset: the oracle noise preset the sources were built with (None for other sources), named in the rows;
    config: the 3D stage's settings (its ``carve`` is the setting swept); ego_masks: {camera: (H, W) bool keep};
    gt: {sample token: its ground-truth labels.npz}; frames, min_points: the values swept.
    """

    semantics: SemanticSource
    depth: DepthSource
    preset: str | None
    config: LabelConfig
    ego_masks: dict[str, np.ndarray] | None
    scene: Scene
    gt: dict[str, Path]
    frames: list[int]
    min_points: list[int]

    @property
    def carve(self) -> bool:
        return self.config.carve


def past_only(config: LabelConfig, **changes) -> LabelConfig:
    """The sweep's settings: past frames only, every 2026 label idea off (it counts past frames one by one; the
    ideas are measured by ``benchmarks/bench_label_ideas.py``)."""
    import dataclasses

    return dataclasses.replace(config, future_frames=0, pass_through=False, rare_priority=False, **changes)


def sweep_scene(task: SweepTask) -> dict:
    """{(frames, min_points): {mask: hist (18, 18)}} for one scene."""
    from easyocc.evaluation import ConfusionMatrix
    from easyocc.geometry import relative_transform
    from easyocc.labels.aggregate import accumulate_frame
    from easyocc.labels.pipeline import CameraObserver
    from easyocc.labels.visibility import see_through_voxels
    from easyocc.labels.voxelize import vote
    from easyocc.occ3d import FREE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, read_labels

    config = task.config
    observer = CameraObserver(task.semantics, task.depth, config, task.ego_masks)
    matrices = {(f, m): {mask: ConfusionMatrix() for mask in GT_MASKS} for f in task.frames for m in task.min_points}
    most = max(task.frames)
    window = {}
    for kf in task.scene.keyframes:
        t = kf.index
        for old in [i for i in window if i < t - most]:
            del window[old]
        current = observer.observe(kf, with_rays=config.carve)
        window[t] = current.past()
        carved = see_through_voxels(list(current.views), config.carve_margin) if config.carve else None
        gt = read_labels(task.gt[kf.token], keys=("semantics", "mask_camera"))
        counts = np.zeros((*OCC3D_GRID.shape, NUM_SEMANTIC_CLASSES), np.uint32)
        accumulate_frame(counts, window[t].cells, np.eye(4))
        for past in range(0, most + 1):
            if past:
                if t - past >= 0:
                    frame = window[t - past]
                    accumulate_frame(counts, frame.cells, relative_transform(kf.global_T_ego, frame.global_T_ego),
                                     config.dynamic_classes, blocked=carved)
            if past not in task.frames:
                continue
            voted, total = vote(counts, 1)
            for m in task.min_points:
                pseudo = np.where(total >= m, voted, FREE).astype(np.uint8)
                matrices[(past, m)]["camera"].update(gt.semantics, pseudo, gt.mask_camera)
                matrices[(past, m)]["none"].update(gt.semantics, pseudo)
    return {key: {mask: cm.hist for mask, cm in value.items()} for key, value in matrices.items()}


def _init_sweep_worker(threads: int, parent_pid: int) -> None:
    import numba

    from easyocc.processes import die_with_parent

    die_with_parent(parent_pid)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def run_sweep(tasks: list[SweepTask], workers: int) -> dict:
    """{(preset, carve, frames, min_points): {mask: ConfusionMatrix}} summed over the tasks' scenes."""
    import os

    from tqdm import tqdm

    from easyocc.evaluation import ConfusionMatrix

    totals: dict = {}

    def add(task: SweepTask, result: dict) -> None:
        for (f, m), hists in result.items():
            entry = totals.setdefault((task.preset, task.carve, f, m), {mask: ConfusionMatrix() for mask in GT_MASKS})
            for mask, hist in hists.items():
                entry[mask].hist += hist
                entry[mask].num_samples += len(task.scene.keyframes)

    bar = tqdm(total=sum(len(t.scene.keyframes) for t in tasks), unit="keyframe", desc="sweep", dynamic_ncols=True)
    with bar:
        if workers <= 1:
            for task in tasks:
                add(task, sweep_scene(task))
                bar.update(len(task.scene.keyframes))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            from easyocc.processes import stop_pool

            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_sweep_worker,
                                     initargs=(threads, os.getpid())) as pool:
                try:
                    for task, result in zip(tasks, pool.map(sweep_scene, tasks)):
                        add(task, result)
                        bar.update(len(task.scene.keyframes))
                except BaseException:
                    stop_pool(pool)
                    raise
    return totals


def sweep_rows(totals: dict) -> list[dict]:
    rows = []
    for (preset, carve, f, m), cms in sorted(totals.items(), key=lambda kv: (str(kv[0][0]), not kv[0][1], *kv[0][2:])):
        cam, full = cms["camera"].compute(), cms["none"].compute()
        rows.append({"noise": preset or "-", "carving": "on" if carve else "off", "frames": f, "min_points": m,
                     "mIoU_camera": round(cam.miou, 2),
                     "IoU_camera": round(cam.iou, 2), "mIoU_full": round(full.miou, 2), "IoU_full": round(full.iou, 2),
                     "keyframes": int(cms["camera"].num_samples[0])})
    return rows


def write_sweep(out: Path, rows: list[dict], meta: dict, min_points: int = 2) -> None:
    """label_sweep.md / .csv / .json / .png under ``out``."""
    import csv
    import io

    from easyocc.fileio import atomic_write, save_json

    columns = list(rows[0])
    header = ("| noise | carving | past frames | min points | mIoU (camera mask) | IoU (camera mask) "
              "| mIoU (full scene) | IoU (full scene) | keyframes |")
    lines = [header, "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    with atomic_write(out / f"{SWEEP_NAME}.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / f"{SWEEP_NAME}.csv", "w") as handle:
        handle.write(buffer.getvalue())
    save_json(out / f"{SWEEP_NAME}.json", {**meta, "rows": rows})
    plot_sweep(out / f"{SWEEP_NAME}.png", rows, min_points)


def plot_sweep(path: Path, rows: list[dict], min_points: int = 2) -> None:
    """Left: mIoU (camera mask) against past frames at ``min_points`` (or the nearest threshold swept); right: against
    the threshold at the most frames. One line per noise preset and carving setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from easyocc.fileio import atomic_write

    variants = list(dict.fromkeys((r["noise"], r["carving"]) for r in rows))
    frames = sorted({r["frames"] for r in rows})
    thresholds = sorted({r["min_points"] for r in rows})
    shown = min(thresholds, key=lambda m: abs(m - min_points))

    def miou(variant, f, m):
        return next(r["mIoU_camera"] for r in rows if (r["noise"], r["carving"]) == variant
                    and r["frames"] == f and r["min_points"] == m)

    colours = plt.get_cmap("tab10")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for v, variant in enumerate(variants):
        label = f"noise {variant[0]}" + ("" if variant[1] == "on" else ", no carving")
        style = dict(color=colours(v), linestyle="-" if variant[1] == "on" else "--", marker="o")
        left.plot(frames, [miou(variant, f, shown) for f in frames], label=label, **style)
        right.plot(thresholds, [miou(variant, frames[-1], m) for m in thresholds], label=label, **style)
    left.set(xlabel="past keyframes aggregated", ylabel="mIoU vs GT, camera mask (%)",
             title=f"Temporal aggregation (min points {shown})")
    right.set(xlabel="occupancy threshold (min points per voxel)", ylabel="mIoU vs GT, camera mask (%)",
              title=f"Occupancy threshold ({frames[-1]} past frames)")
    left.set_xticks(frames)
    right.set_xticks(thresholds)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
