"""``easyocc predict``: run a trained model (EasyOcc or the rendering model: its checkpoint's config says which) over
a split and write Occ3D predictions, ``<out>/<sample_token>.npz`` with key ``pred`` (uint8 200 x 200 x 16, the argmax
of its volume read at the Occ3D voxel centres), which ``easyocc eval`` scores.

The predictions are written as a set: into a temporary folder inside ``out`` first, moved into place only when
every keyframe succeeded, so a failure leaves ``out`` as it was. ``out/predictions.json`` records the run (checkpoint,
data, version, split and the sample tokens), which lets ``easyocc eval`` score exactly the predicted keyframes and
lets a rerun replace them; a non-empty folder without it is refused.

The library: :func:`predict_split`; the command's options are in ``predict_command``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from easyocc.occ3d import PREDICTIONS_MANIFEST, PREDICTIONS_MANIFEST_FORMAT, read_predictions_manifest


def check_output(out: Path) -> dict | None:
    """Refuse an ``out`` that is a file, or a non-empty folder that is not an earlier easyocc predict folder (or
    holds more than its predictions); returns the earlier run's manifest, if any."""
    from easyocc.errors import InputError
    from easyocc.fileio import require_folder_or_absent, sweep_temporaries

    if not require_folder_or_absent(out).is_dir():
        return None
    sweep_temporaries(out, recursive=False)
    earlier = read_predictions_manifest(out)
    expected = {PREDICTIONS_MANIFEST} | ({f"{t}.npz" for t in earlier["samples"]} if earlier else set())
    foreign = sorted(p.name for p in out.iterdir() if p.name not in expected)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        what = ("holds files its predictions.json does not list" if earlier else
                "is not empty and not an easyocc predict folder (no predictions.json)")
        raise InputError(out, f"{what}: {shown}; use a new or empty --out")
    return earlier


def install(out: Path, staging: Path, manifest: dict, earlier: dict | None) -> int:
    """Move the staged predictions into ``out`` and record them; returns how many of the earlier run's files were
    removed (those not predicted again). The manifest says "complete": false while files move, so an evaluation
    of a folder caught half-replaced (the process killed in between) is refused rather than silently mixed."""
    from easyocc.fileio import save_json
    from easyocc.occ3d import prediction_path

    stale = sorted(set(earlier["samples"]) - set(manifest["samples"])) if earlier else []
    for token in stale:
        prediction_path(out, token).unlink(missing_ok=True)
    save_json(out / PREDICTIONS_MANIFEST, {**manifest, "complete": False})
    for token in manifest["samples"]:
        os.replace(prediction_path(staging, token), prediction_path(out, token))
    save_json(out / PREDICTIONS_MANIFEST, {**manifest, "complete": True})
    return len(stale)


def predict_split(
    checkpoint: str | Path,
    data_root: str | Path,
    out_dir: str | Path,
    split: str = "val",
    version: str | None = None,
    device: str = "auto",
    batch_size: int = 1,
    workers: int = 2,
    show_progress: bool = True,
) -> list[Path]:
    """Predict every keyframe of ``split`` into ``out_dir`` as a set (see the module's note); returns the written
    files (one per keyframe, in index order)."""
    import torch
    from tqdm import tqdm

    from easyocc.data.nuscenes_index import resolve_version
    from easyocc.data.occ_dataset import InputLoader, OccDataset, split_keyframes
    from easyocc.devices import resolve_device
    from easyocc.errors import EasyOccError
    from easyocc.fileio import staging_folder
    from easyocc.occ3d import prediction_path, write_prediction
    from easyocc.training.checkpoint import load_trained_model

    if batch_size < 1 or workers < 0:
        raise EasyOccError(f"--batch-size must be >= 1 and --workers >= 0 (got {batch_size} and {workers})")
    out_dir = Path(out_dir)
    earlier = check_output(out_dir)
    torch_device = resolve_device(device, local_rank=0)
    model, config = load_trained_model(checkpoint, torch_device)
    version = resolve_version(data_root, version or config.data.version)
    keyframes = split_keyframes(data_root, version, split)
    if not keyframes:
        raise EasyOccError(f"split '{split}' of {data_root} has no keyframes")
    dataset = OccDataset(keyframes, config.data)
    loader = InputLoader(dataset, batch_size=batch_size, num_workers=workers, pin_memory=torch_device.type == "cuda")
    use_amp = config.optim.amp and torch_device.type == "cuda"
    amp_dtype = torch.bfloat16 if config.optim.amp_dtype == "bfloat16" else torch.float16
    manifest = {"format": PREDICTIONS_MANIFEST_FORMAT, "checkpoint": str(Path(checkpoint).resolve()),
                "data": str(Path(data_root).resolve()), "version": version, "split": split,
                "samples": [kf.token for kf in keyframes]}
    with staging_folder(out_dir, "predictions") as staging:
        with torch.inference_mode(), torch.autocast(torch_device.type, dtype=amp_dtype, enabled=use_amp):
            for batch in tqdm(loader, desc="predict", unit="keyframe", unit_scale=batch_size,
                              disable=not show_progress):
                logits = model.logits(*(batch[k].to(torch_device, non_blocking=True)
                                 for k in ("images", "intrinsics", "ego_T_cam")))
                labels = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
                for index, pred in zip(batch["index"].tolist(), labels):
                    write_prediction(prediction_path(staging, dataset.keyframes[index].token), pred)
        removed = install(out_dir, staging, manifest, earlier)
    if earlier is not None:
        replaced = len(set(earlier["samples"]) & set(manifest["samples"]))
        print(f"easyocc predict: note: replaced the earlier run's predictions in {out_dir} ({replaced} rewritten, "
              f"{removed} of other keyframes removed)", file=sys.stderr)
    return [prediction_path(out_dir, token) for token in manifest["samples"]]
