"""The report of an experiment: ``report.md`` (every protocol named, per-class IoU, cost with ratios against the
reference variant), ``results.json``, ``results.csv``, ``per_class.csv``, ``scores.png`` and ``per_class_iou.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from easyocc.config import config_to_dict
from easyocc.experiments.definition import variant_overrides
from easyocc.experiments.stages import per_class_table, ray_scores, score_cell, score_table, time_table
from easyocc.fileio import atomic_write, save_json

#: Mask -> how the report names it, in the order of its columns (that of ``MASK_KEYS``).
MASK_TITLES = {"camera": "camera mask", "none": "full scene", "lidar": "LiDAR mask",
               "camera+lidar": "camera AND LiDAR mask"}
VOXEL_METRICS = ("mIoU", "mIoU_15", "IoU")
RAY_METRICS = ("RayIoU", "RayIoU@1", "RayIoU@2", "RayIoU@4")
#: Overrides every variant gets (the world's tables, the train split): not shown in the report.
IMPLIED_OVERRIDES = ("data.version=", "data.split=")
#: The report's files -> their names when exported (``easyocc compare --docs DIR``), ``{name}`` the experiment's.
EXPORT_NAMES = {"report.md": "{name}.md", "results.csv": "{name}.csv", "results.json": "{name}.json",
                "scores.png": "{name}.png", "per_class.csv": "{name}_per_class.csv",
                "per_class_iou.png": "{name}_per_class_iou.png"}
#: The cost numbers compared with the reference variant: key -> column title.
RATIO_KEYS = {"iteration_s_median": "s / iteration", "peak_memory_mb": "peak memory", "train_s": "training time"}


def scored_masks(results: dict) -> list[str]:
    """The masks any predictor was scored with, in the report's order."""
    used = {m for r in results.values() for m in r.get("scores", {})}
    return [m for m in MASK_TITLES if m in used]


def score_columns(masks: list[str]) -> list[tuple[str, str | None, str]]:
    """(header, mask, metric) of the quality table: mIoU, mIoU_15 and IoU under each mask, then RayIoU."""
    columns = [(f"{metric}, {MASK_TITLES[m]}", m, metric) for metric in VOXEL_METRICS for m in masks]
    return columns + [("RayIoU", None, "RayIoU"), ("RayIoU@1 / @2 / @4", None, "RayIoU@1/2/4")]


def ratio(value, reference) -> float | None:
    if value is None or reference in (None, 0):
        return None
    return value / reference


def cost_ratios(results: dict, reference: str) -> dict[str, dict[str, float | None]]:
    """variant -> key -> its cost over the reference variant's (same run), for the keys of ``RATIO_KEYS``."""
    ref = results[reference].get("cost") or {}
    return {name: {k: ratio((r.get("cost") or {}).get(k), ref.get(k)) for k in RATIO_KEYS}
            for name, r in results.items() if r["kind"] == "variant"}


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _num(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cost_table(results: dict, reference: str) -> list[str]:
    ratios = cost_ratios(results, reference)
    lines = ["| variant | epochs / iterations | s / iteration (median) | vs ref | peak memory (MiB) | vs ref "
             "| training (s, epochs) | vs ref | wall (s) | mean load (1 min) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        if r["kind"] != "variant":
            continue
        c = r.get("cost") or {}
        q = ratios[name]
        lines.append(f"| {name} | {c.get('epochs', '-')} / {c.get('iterations', '-')} "
                     f"| {_num(c.get('iteration_s_median'), 3)} | {_times(q['iteration_s_median'])} "
                     f"| {_num(c.get('peak_memory_mb'), 0)} | {_times(q['peak_memory_mb'])} "
                     f"| {_num(c.get('train_s'))} | {_times(q['train_s'])} | {_num(c.get('wall_s'))} "
                     f"| {_num(c.get('load_1min_mean'), 2)} |")
    return lines


def summary_table(results: dict, masks: list[str]) -> list[str]:
    """Markdown: one row per predictor with its description, mIoU and IoU under each mask, RayIoU, and (variants)
    the median seconds per iteration and the training's wall time: the table the README quotes."""
    columns = [(f"{metric}, {MASK_TITLES[m]}", m, metric) for metric in ("mIoU", "IoU") for m in masks]
    columns.append(("RayIoU", None, "RayIoU"))
    lines = ["| | " + " | ".join(h for h, _, _ in columns) + " | s / iteration | training wall (s) |",
             "| --- |" + " ---: |" * (len(columns) + 2)]
    for name, r in results.items():
        label = f"`{name}`: {r['description']}" if r["kind"] == "variant" and r.get("description") else f"`{name}`"
        if r["kind"] != "variant":
            label = f"*{name}*"
        cost = r.get("cost") or {}
        cells = [score_cell(r.get("scores", {}), m, k) for _, m, k in columns]
        cells += [_num(cost.get("iteration_s_median"), 2) if cost else "", _num(cost.get("wall_s"), 0) if cost else ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def label_set_summary(settings) -> str:
    """A label set's settings in words: frames and min points, and whatever else differs from the defaults."""
    from easyocc.labels.config import LabelConfig

    default = LabelConfig().manifest()
    mine = settings.manifest()
    extra = [f"{k} {v}" for k, v in mine.items() if k not in ("frames", "min_points") and v != default[k]]
    return ", ".join([f"{settings.frames} past frames", f"min points {settings.min_points}", *extra])


def results_rows(results: dict, masks: list[str], reference: str) -> list[dict]:
    """One flat row per predictor: every score under every mask, RayIoU, cost and its ratios (CSV)."""
    ratios = cost_ratios(results, reference)
    rows = []
    for name, r in results.items():
        scores = r.get("scores", {})
        row = {"predictor": name, "kind": r["kind"], "label_set": r["label_set"], "status": r["status"]}
        for mask in masks:
            for metric in VOXEL_METRICS:
                row[f"{metric} ({MASK_TITLES[mask]})"] = scores.get(mask, {}).get(metric)
        ray = ray_scores(scores) or {}
        row.update({metric: ray.get(metric) for metric in RAY_METRICS})
        cost = r.get("cost") or {}
        for key in ("epochs", "iterations", "iteration_s_median", "peak_memory_mb", "memory_kind", "train_s",
                    "wall_s", "load_1min_mean"):
            row[key] = cost.get(key)
        for key in RATIO_KEYS:
            row[f"{key} / reference"] = ratios.get(name, {}).get(key)
        rows.append(row)
    return rows


def per_class_rows(results: dict) -> list[dict]:
    from easyocc.occ3d import CLASS_NAMES, NUM_SEMANTIC_CLASSES

    rows = []
    for name, r in results.items():
        for mask, report in r.get("scores", {}).items():
            rows.append({"predictor": name, "mask": mask,
                         **{c: report["per_class"][c] for c in CLASS_NAMES[:NUM_SEMANTIC_CLASSES]}})
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                     for row in rows)
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())


def write_plots(report_dir: Path, results: dict, masks: list[str], title: str) -> None:
    from easyocc.viz import save_grouped_bars, save_per_class_chart

    groups = {}
    for name, r in results.items():
        scores = r.get("scores", {})
        values = {f"mIoU, {MASK_TITLES[m]}": scores[m]["mIoU"] for m in masks if m in scores}
        ray = ray_scores(scores)
        if ray is not None:
            values["RayIoU"] = ray["RayIoU"]
        groups[name] = {k: np.nan if v is None else v for k, v in values.items()}
    save_grouped_bars(report_dir / "scores.png", groups, "%", f"{title}: val scores")
    chart_mask = masks[0]
    chart = {name: {c: (np.nan if v is None else v) for c, v in r["scores"][chart_mask]["per_class"].items()
                    if c != "free"} for name, r in results.items() if chart_mask in r.get("scores", {})}
    save_per_class_chart(report_dir / "per_class_iou.png", chart,
                         f"Per-class IoU on the val scenes ({MASK_TITLES[chart_mask]})")


def write_report(experiment, paths, results: dict, seconds: dict, host: dict, num_val: int) -> Path:
    """Write the report folder; returns the path of ``report.md``."""
    config = experiment.config
    reference = config.reference_variant
    masks = scored_masks(results)
    report_dir = paths.report
    report_dir.mkdir(parents=True, exist_ok=True)
    write_plots(report_dir, results, masks, experiment.name)
    rows = results_rows(results, masks, reference)
    write_csv(report_dir / "results.csv", rows)
    write_csv(report_dir / "per_class.csv", per_class_rows(results))
    save_json(report_dir / "results.json", {
        "experiment": experiment.name, "file": str(experiment.path), "definition": config_to_dict(config),
        "reference_variant": reference, "machine": host, "num_val_keyframes": num_val,
        "seconds": {k: round(v[0], 1) for k, v in seconds.items()}, "predictors": results})

    world = config.world
    memory_kind = next((r["cost"]["memory_kind"] for r in results.values() if (r.get("cost") or {}).get("memory_kind")),
                       "n/a")
    protocols, ray_protocols = {}, {}  # column name -> the evaluator's description, for every mask scored
    for mask in masks:
        report = next(r["scores"][mask] for r in results.values() if mask in r.get("scores", {}))
        for key, text in report["protocols"].items():
            if key in VOXEL_METRICS:
                protocols[f"{key}, {MASK_TITLES[mask]}"] = text
            else:
                ray_protocols[key] = text
    protocols.update(ray_protocols)
    failed = [f"- variant `{n}` {r['status']}" for n, r in results.items() if r["status"].startswith("failed")]
    load = (f"{host['load_1min_at_start']:.2f} at the start of the run that wrote this report, "
            f"{host['load_1min_at_end']:.2f} at its end ({host['this_run_s']:.0f} s; the load while each variant "
            "trained is in the cost table)")
    lines = [
        f"# Experiment `{experiment.name}`",
        "",
        *([config.description.strip(), ""] if config.description.strip() else []),
        f"SimScenes, {world.scenes} scenes x {world.keyframes} keyframes at {world.image_size[0]}x"
        f"{world.image_size[1]} (seed {world.seed}"
        + (f", camera sweeps: {world.sweeps}" if world.sweeps != "none" else "")
        + f"); labels from the oracle sources with `{config.sources.noise}` "
        f"noise; every variant trains on the train scenes (on their pseudo-labels, or on what its config names) "
        f"and is scored on the {num_val} keyframes of "
        f"the val scenes against the exact ground truth. Cost ratios are against `{reference}`, measured in the "
        "same run.",
        "",
        f"Machine: {host['cpu']} ({host['cpu_count']} CPUs), GPU: {host['gpu'] or 'none'}, torch {host['torch']} "
        f"({host.get('torch_threads', '?')} threads per process); 1-minute load average {load}.",
        "",
        *failed, *([""] if failed else []),
        "## Summary (scores in %)",
        "",
        *summary_table(results, masks),
        "",
        "## Variants",
        "",
        "| variant | label set | training config and overrides | description |",
        "| --- | --- | --- | --- |",
        *[f"| {n} | {v.labels} | `{v.config or config.training.config}`"
          + "".join(f" `{o}`" for o in variant_overrides(config, n) if not o.startswith(IMPLIED_OVERRIDES))
          + f" | {v.description} |" for n, v in config.variants.items()],
        "",
        "| label set | settings |",
        "| --- | --- |",
        *[f"| {n} | {label_set_summary(config.label_sets[n])} |" for n in config.used_label_sets()],
        "",
        "## Val scores (%)",
        "",
        *score_table({n: r.get("scores", {}) for n, r in results.items()}, score_columns(masks)),
        "",
        "Protocols (the evaluator's own words):",
        "",
        *[f"- `{k}`: {v}" for k, v in protocols.items()],
        "",
        "The pseudo-labels rows score the labels of the val scenes themselves: the teacher, not a baseline.",
        "",
        "![scores](scores.png)",
        "",
        "## Cost of training",
        "",
        *cost_table(results, reference),
        "",
        f"s / iteration: the median over the epochs of each epoch's median wall time per iteration (data loading "
        f"included), measured by the training process itself; peak memory: {memory_kind} of that process (each "
        "variant trains in its own); training: the epochs' seconds summed; wall: the training processes' whole "
        "time (start-up, class statistics, saving). The load includes the training itself.",
        "",
    ]
    for mask in masks:
        lines += [f"## Per-class IoU ({MASK_TITLES[mask]})", "",
                  *per_class_table({n: r.get("scores", {}) for n, r in results.items()}, mask), ""]
    lines += [
        "![per-class IoU](per_class_iou.png)",
        "",
        "## Time (s)",
        "",
        *time_table(seconds),
        "",
        "Each stage as measured when it ran: a stage reused by a later run keeps the seconds of the run that made it.",
        "",
        "Files: `results.json` (everything, confusion matrices included), `results.csv` (one row per predictor), "
        "`per_class.csv`, `scores.png`, `per_class_iou.png`.",
        "",
    ]
    with atomic_write(report_dir / "report.md", "w") as handle:
        handle.write("\n".join(lines))
    return report_dir / "report.md"


def export_report(report_dir: Path, dest: Path, name: str) -> list[Path]:
    """Copy the report in ``report_dir`` into ``dest`` under the names of ``EXPORT_NAMES`` (``region.md``,
    ``region.csv``, ...), the markdown's links and file names renamed to match; returns the files written.
    Each file is written aside and renamed, so an interrupted export leaves whole files."""
    from easyocc.errors import InputError

    missing = [f for f in EXPORT_NAMES if not (report_dir / f).is_file()]
    if missing:
        raise InputError(report_dir, f"not a finished report (no {', '.join(missing)})")
    names = {f: pattern.format(name=name) for f, pattern in EXPORT_NAMES.items()}
    written = []
    for original, exported in names.items():
        data = (report_dir / original).read_bytes()
        if original == "report.md":
            text = data.decode("utf-8")
            for f, new in names.items():
                text = text.replace(f"]({f})", f"]({new})").replace(f"`{f}`", f"`{new}`")
            data = text.encode("utf-8")
        with atomic_write(dest / exported, "wb") as handle:
            handle.write(data)
        written.append(dest / exported)
    return written
