"""Cost of the OccNeRF / GaussianOcc drop-in (``easyocc.losses.occnerf``) per training step, on their nusc-sem grid.

One step = ``OccNeRFPseudoLoss`` forward and backward on a (1, 18, 300, 300, 24) volume (the 640,000 Occ3D points
read trilinearly as their evaluation reads them, then CE + Lovász in float32) against realistic Occ3D-like labels
(benchmarks/synthetic_occ.py, ~7 % of voxels in the camera mask). Reference in the same run: ``PseudoLoss`` alone on
logits already on the Occ3D grid (1, 18, 200, 200, 16), i.e. the loss without the sampling. Medians; memory: the
most allocated during a step above what was allocated before it (CUDA), or the process's peak RSS (CPU). Also the
start-up cost: ``pseudo_class_weights`` over --label-files synthetic label files (written to a temporary folder,
so read from the page cache). Prints JSON.

    python benchmarks/bench_occnerf_dropin.py [--device cpu|cuda] [--iterations 5] [--half] [--label-files 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from easyocc.losses import LossConfig, PseudoLoss, class_counts, class_weights_from_counts  # noqa: E402
from easyocc.losses.occnerf import OCCNERF_NUSC_SEM, OccNeRFPseudoLoss, pseudo_class_weights  # noqa: E402
from easyocc.occ3d import label_path, write_labels  # noqa: E402


def labels(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    import synthetic_occ

    semantics, _, camera, _ = synthetic_occ.sample(0)
    weights = class_weights_from_counts(class_counts(semantics, camera) + 1)
    return torch.from_numpy(semantics)[None].to(device), torch.from_numpy(camera)[None].to(device), weights


def measure(step, device: torch.device, iterations: int) -> dict:
    """Median seconds of ``step`` after one warm-up, and its peak memory above the memory held before it."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    seconds = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    for _ in range(iterations):
        sync()
        start = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - start)
    result = {"median_s": statistics.median(seconds), "runs_s": [round(s, 4) for s in seconds]}
    if device.type == "cuda":
        result["peak_extra_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return result


def class_weight_seconds_per_file(files: int) -> float:
    """Seconds per file of ``pseudo_class_weights`` over ``files`` label files (10 distinct scenes' worth)."""
    import synthetic_occ

    samples = [synthetic_occ.sample(i)[:3] for i in range(10)]
    with tempfile.TemporaryDirectory() as root:
        for i in range(files):
            write_labels(label_path(root, f"scene-{i % 10:04d}", f"{i:032x}"), *samples[i % 10])
        start = time.perf_counter()
        pseudo_class_weights(root)
        return (time.perf_counter() - start) / files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--half", action="store_true", help="a float16 volume (the loss is still float32)")
    parser.add_argument("--label-files", type=int, default=200, help="label files for the class weights (0: skip)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    semantics, mask, weights = labels(device)
    dtype = torch.float16 if args.half else torch.float32
    volume = torch.randn(1, 18, *OCCNERF_NUSC_SEM.shape, device=device, dtype=dtype, requires_grad=True)
    logits = torch.randn(1, 18, 200, 200, 16, device=device, requires_grad=True)
    dropin = OccNeRFPseudoLoss(OCCNERF_NUSC_SEM, LossConfig(), weights).to(device)
    reference = PseudoLoss(LossConfig(), weights).to(device)

    def dropin_step():
        dropin(volume, semantics, mask)["loss"].backward()

    def reference_step():
        reference(logits, semantics, mask)["loss"].backward()

    report = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "volume": [1, 18, *OCCNERF_NUSC_SEM.shape],
        "volume_dtype": str(dtype),
        "camera_mask_voxels": int(mask.sum()),
        "reference_pseudo_loss_on_occ3d_logits": measure(reference_step, device, args.iterations),
        "dropin_sample_and_loss": measure(dropin_step, device, args.iterations),
    }
    report["time_ratio_to_reference"] = (report["dropin_sample_and_loss"]["median_s"]
                                         / report["reference_pseudo_loss_on_occ3d_logits"]["median_s"])
    if args.label_files:
        report["class_weights_ms_per_label_file"] = 1000 * class_weight_seconds_per_file(args.label_files)
    if device.type == "cpu":
        report["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
