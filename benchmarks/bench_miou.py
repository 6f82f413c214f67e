"""Speed of the voxel evaluation (``easyocc eval``): decoding + confusion matrix over an Occ3D-val-sized set.

Generates (once, cached) N samples of 200x200x16 with realistic structure (synthetic_occ.py): GT labels.npz with
the three keys and prediction npz files, compressed like the real ones. Then times:
- full: ``evaluate_dirs`` on the whole set, camera mask, decoding included (median of --repeats runs), and
- matrix: the confusion-matrix update alone on arrays already in memory, against the devkit's numpy formula
  (boolean mask, ``bincount(18 * gt + pred)``) measured in the same run.
Prints JSON. Target: >= 300 samples/s for the full evaluation on the project's 2-core machine.

    python benchmarks/bench_miou.py [--samples 6019] [--workers N] [--repeats 3] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from easyocc.evaluation.metrics import ConfusionMatrix  # noqa: E402
from easyocc.evaluation.runner import init_worker_process, default_workers, evaluate_dirs, load_pair  # noqa: E402
from easyocc.fileio import save_json  # noqa: E402
from easyocc.occ3d import write_labels, write_prediction  # noqa: E402

SAMPLES_PER_SCENE = 40


def token(i: int) -> str:
    return f"{i:032x}"


def write_sample(args: tuple[Path, int]) -> None:
    import synthetic_occ

    root, i = args
    sem, lidar, camera, pred = synthetic_occ.sample(i)
    write_labels(root / "gts" / f"scene-{i // SAMPLES_PER_SCENE:04d}" / token(i) / "labels.npz", sem, lidar, camera)
    write_prediction(root / "pred" / f"{token(i)}.npz", pred)


def ensure_dataset(cache_dir: Path, samples: int, workers: int) -> Path:
    """The cached set for ``samples``, generated in parallel when absent (a marker file says it is complete)."""
    root = cache_dir / f"occ3d-like-{samples}"
    marker = root / "complete.json"
    if marker.is_file():
        return root
    print(f"generating {samples} samples in {root} ...", file=sys.stderr)
    from tqdm import tqdm

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker_process,
                             initargs=(os.getpid(),)) as pool:
        jobs = [(root, i) for i in range(samples)]
        for _ in tqdm(pool.map(write_sample, jobs, chunksize=16), total=samples, unit="sample"):
            pass
    save_json(marker, {"samples": samples})
    return root


def cpu_seconds() -> float:
    """CPU time of this process plus its waited-for children (the pool's workers once it has shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def devkit_update(hist: np.ndarray, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> None:
    """The Occ3D devkit's Metric_mIoU.add_batch + hist_info, as written there (numpy)."""
    g, p = gt[mask.astype(bool)], pred[mask.astype(bool)]
    k = (g >= 0) & (g < 18)
    hist += np.bincount(18 * g[k].astype(int) + p[k], minlength=18**2).reshape(18, 18)


def time_matrix(root: Path, n: int = 200, repeats: int = 5) -> dict:
    pairs = sorted((root / "gts").glob("*/*/labels.npz"))[:n]
    arrays = [load_pair(p, root / "pred" / f"{p.parent.name}.npz", "camera") for p in pairs]
    ours, devkit = [], []
    for _ in range(repeats):
        cm = ConfusionMatrix()
        t = time.perf_counter()
        for gt, pred, mask in arrays:
            cm.update(gt, pred, mask)
        ours.append((time.perf_counter() - t) / len(arrays))
        hist = np.zeros((18, 18), np.int64)
        t = time.perf_counter()
        for gt, pred, mask in arrays:
            devkit_update(hist, gt, pred, mask)
        devkit.append((time.perf_counter() - t) / len(arrays))
    assert np.array_equal(hist, cm.hist), "confusion matrices differ from the devkit formula"
    decode = []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in pairs[:100]:
            load_pair(p, root / "pred" / f"{p.parent.name}.npz", "camera")
        decode.append((time.perf_counter() - t) / min(100, len(pairs)))
    ms = lambda xs: round(statistics.median(xs) * 1e3, 4)  # noqa: E731
    return {
        "matrix_ms_per_sample": ms(ours),
        "devkit_numpy_ms_per_sample": ms(devkit),
        "matrix_speedup_vs_devkit": round(statistics.median(devkit) / statistics.median(ours), 2),
        "decode_ms_per_sample_one_process": ms(decode),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6019)
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "easyocc" / "bench")
    args = parser.parse_args()
    workers = args.workers or default_workers()
    root = ensure_dataset(args.cache_dir, args.samples, workers)

    runs, cpu, report = [], [], None
    for _ in range(args.repeats):
        t, c = time.perf_counter(), cpu_seconds()
        report = evaluate_dirs(root / "pred", root / "gts", mask="camera", workers=workers, progress=False)
        runs.append(time.perf_counter() - t)
        cpu.append(cpu_seconds() - c)
    assert report.num_samples == args.samples
    seconds = statistics.median(runs)
    cpu_per_sample = statistics.median(cpu) / args.samples
    print(json.dumps({
        "benchmark": "miou",
        "samples": args.samples,
        "workers": workers,
        "cpus": default_workers(),
        "full_eval_seconds_median": round(seconds, 3),
        "full_eval_seconds_runs": [round(r, 3) for r in runs],
        "samples_per_second": round(args.samples / seconds, 1),
        "target_samples_per_second": 300,
        # CPU seconds of this process and its finished workers: on a shared machine, what the work costs.
        "cpu_ms_per_sample_all_processes": round(cpu_per_sample * 1e3, 3),
        "projected_samples_per_second_if_cpus_idle": round(default_workers() / cpu_per_sample, 1),
        **time_matrix(root),
        "mIoU_camera": round(report.scores.miou, 4),
    }, indent=2))


if __name__ == "__main__":
    main()
