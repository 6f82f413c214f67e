"""``easyocc predict``: run a trained model (EasyOcc or the rendering model: its checkpoint's config says which) over
a split and write Occ3D predictions, ``<out>/<sample_token>.npz`` with key ``pred`` (uint8 200 x 200 x 16, the argmax
of its volume read at the Occ3D voxel centres), which ``easyocc eval`` scores."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="RUN/model.pt (or RUN/checkpoints/last.pt)")
    parser.add_argument("--data", type=Path, required=True, help="nuScenes-format dataroot")
    parser.add_argument("--out", type=Path, required=True, help="folder for <sample_token>.npz")
    parser.add_argument("--split", default="val", help="scenes to predict (default: val)")
    parser.add_argument("--version", help="nuScenes table version (default: the dataroot's only v1.0-* folder)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: the GPU when present)")
    parser.add_argument("--batch-size", type=int, default=1, help="keyframes per forward pass")
    parser.add_argument("--workers", type=int, default=2, help="image loading processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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
    """Predict every keyframe of ``split``; returns the written files (one per keyframe, in index order)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from easyocc.data.occ_dataset import OccDataset, split_keyframes
    from easyocc.occ3d import write_prediction
    from easyocc.training.checkpoint import load_trained_model
    from easyocc.training.distributed import pick_device

    torch_device = pick_device(device)
    model, config = load_trained_model(checkpoint, torch_device)
    keyframes = split_keyframes(data_root, version or config.data.version, split)
    dataset = OccDataset(keyframes, config.data)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, pin_memory=torch_device.type == "cuda")
    use_amp = config.optim.amp and torch_device.type == "cuda"
    amp_dtype = torch.bfloat16 if config.optim.amp_dtype == "bfloat16" else torch.float16
    out_dir = Path(out_dir)
    written = []
    with torch.inference_mode(), torch.autocast(torch_device.type, dtype=amp_dtype, enabled=use_amp):
        for batch in tqdm(loader, desc="predict", unit="keyframe", unit_scale=batch_size, disable=not show_progress):
            logits = model.logits(*(batch[k].to(torch_device, non_blocking=True)
                                    for k in ("images", "intrinsics", "ego_T_cam")))
            labels = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
            for index, pred in zip(batch["index"].tolist(), labels):
                path = out_dir / f"{dataset.keyframes[index].token}.npz"
                write_prediction(path, pred)
                written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    from easyocc.errors import EasyOccError

    if args.batch_size < 1 or args.workers < 0:
        raise EasyOccError("--batch-size must be >= 1 and --workers >= 0")
    files = predict_split(args.checkpoint, args.data, args.out, args.split, args.version, args.device,
                          args.batch_size, args.workers, show_progress=not args.quiet)
    print(f"wrote {len(files)} predictions to {args.out}")
    return 0
