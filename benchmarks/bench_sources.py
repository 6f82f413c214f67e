"""Speed of the 2D-source machinery on nuScenes-sized images (1600x900), printed as JSON (medians).

- oracle noise ("realistic" preset): semantics and depth, per image;
- the cache: a hit (read + validate) against recomputing the noisy oracle map, and the bytes stored per image;
- Grounded-SAM mask fusion (MaskFusion, 60 masks) against a dense reference (argmax over an (N, H, W) score
  stack), with the check that both give the same labels.

Foundation models themselves are not timed here: their weights cannot be present on the project's machines.
Run: python benchmarks/bench_sources.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from sources_util import sim_scene  # noqa: E402
from timing import median_ms  # noqa: E402

from easyocc.labels.sources.cache import CachedDepth, CachedSemantics  # noqa: E402
from easyocc.labels.sources.grounded_sam import MaskFusion  # noqa: E402
from easyocc.labels.sources.noise import NOISE_PRESETS  # noqa: E402
from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics  # noqa: E402
from easyocc.occ3d import IGNORE  # noqa: E402

WIDTH, HEIGHT = 1600, 900


def random_masks(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, H, W) bool box-shaped masks of random size, scores and classes."""
    masks = np.zeros((count, HEIGHT, WIDTH), bool)
    for mask in masks:
        x0, y0 = rng.integers(0, WIDTH - 50), rng.integers(0, HEIGHT - 50)
        mask[y0 : y0 + rng.integers(20, 500), x0 : x0 + rng.integers(20, 800)] = True
    return masks, rng.random(count).astype(np.float32), rng.integers(0, 18, count)


def dense_fusion(masks: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Reference: materialise every mask's score, argmax over masks (first wins ties)."""
    stack = np.where(masks, scores[:, None, None], -np.inf)
    best = stack.argmax(axis=0)
    labels = np.asarray(classes, np.uint8)[best]
    labels[~masks.any(axis=0)] = IGNORE
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    repeats = parser.parse_args().repeats
    import torch

    torch.set_num_threads(1)  # the comparison is with single-threaded numpy
    results: dict[str, object] = {"image": f"{WIDTH}x{HEIGHT}", "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        camera, _, _ = sim_scene(root, width=WIDTH, height=HEIGHT)
        noise = NOISE_PRESETS["realistic"]
        semantics = OracleSemantics(root, noise.semantics)
        depth = OracleDepth(root, noise.depth)
        results["oracle_exact_semantics_ms"] = median_ms(lambda: OracleSemantics(root).semantics(camera), repeats)
        results["oracle_exact_depth_ms"] = median_ms(lambda: OracleDepth(root).depth(camera), repeats)
        results["oracle_realistic_semantics_ms"] = median_ms(lambda: semantics.semantics(camera), repeats)
        results["oracle_realistic_depth_ms"] = median_ms(lambda: depth.depth(camera), repeats)

        cached_sem, cached_depth = CachedSemantics(semantics, root / "cache"), CachedDepth(depth, root / "cache")
        cached_sem.semantics(camera), cached_depth.depth(camera)  # fill
        results["cache_hit_semantics_ms"] = median_ms(lambda: cached_sem.semantics(camera), repeats)
        results["cache_hit_depth_ms"] = median_ms(lambda: cached_depth.depth(camera), repeats)
        results["cache_hit_over_recompute_semantics"] = round(
            results["cache_hit_semantics_ms"] / results["oracle_realistic_semantics_ms"], 3)
        results["cache_hit_over_recompute_depth"] = round(
            results["cache_hit_depth_ms"] / results["oracle_realistic_depth_ms"], 3)
        results["cache_bytes_semantics_png"] = cached_sem.folder.entry(camera).stat().st_size
        results["cache_bytes_depth_float16_npy"] = cached_depth.folder.entry(camera).stat().st_size

    masks, scores, classes = random_masks(60, np.random.default_rng(0))
    torch_masks = torch.from_numpy(masks)

    def fuse():
        fusion = MaskFusion(HEIGHT, WIDTH)
        fusion.add(torch_masks, scores, classes)
        return fusion.labels()

    assert np.array_equal(fuse(), dense_fusion(masks, scores, classes))
    results["mask_fusion_60_masks_ms"] = median_ms(fuse, repeats)
    results["mask_fusion_dense_reference_ms"] = median_ms(lambda: dense_fusion(masks, scores, classes), repeats)
    results["mask_fusion_speedup_vs_reference"] = round(
        results["mask_fusion_dense_reference_ms"] / results["mask_fusion_60_masks_ms"], 2)
    results["mask_fusion_reference_peak_bytes"] = int(masks.size * 8)  # the float64 (N, H, W) score stack
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
