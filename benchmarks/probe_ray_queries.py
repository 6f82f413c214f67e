"""The probe behind the ray queries' defaults (``loss.ray_queries``), on the TRAIN scenes of a SimScenes world only.

1. Targets: how often a query's target agrees with the exact Occ3D ground truth of the voxel it lies in, with the
   queries drawn from the noisy oracle's 2D maps exactly as training draws them, for the default sampling and a few
   alternatives: free queries in GT-free voxels (``free_precision``); occupied queries in GT-occupied voxels
   (``occupied_precision``) and of the pixel's class (``occupied_class_precision``); queries per keyframe.
2. Weight: on the same keyframes, the norm of the gradient each term sends to the Occ3D logits of the config's
   model at initialisation: the pseudo loss against the world's labels and the ray-query loss (weight 1); their
   ratio is the ray weight at which both pull equally hard.

    python benchmarks/probe_ray_queries.py --data WORLD --labels LABELS [--config demo] [--keyframes 8]
        [--noise realistic]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Sampling alternatives beside the default (RayQueryConfig fields).
VARIANTS = {
    "default": {},
    "behind 0.6": {"behind": 0.6},
    "behind 0.15": {"behind": 0.15},
    "free margin 0.2 + 0 %": {"free_margin": 0.2, "free_margin_relative": 0.0},
    "free margin 0.4 + 10 %": {"free_margin_relative": 0.1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a SimScenes dataroot (its train split is read)")
    parser.add_argument("--labels", type=Path, required=True, help="pseudo-labels of its train scenes")
    parser.add_argument("--config", default="demo")
    parser.add_argument("--keyframes", type=int, default=8, help="train keyframes, evenly spaced")
    parser.add_argument("--noise", default="realistic", help="the oracle's noise preset")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import numpy as np
    import torch

    from easyocc.config import load_config, resolve_config_path
    from easyocc.data.occ_dataset import OccDataset, split_keyframes
    from easyocc.losses.ray_queries import RayQueryConfig, sample_ray_queries
    from easyocc.models.easyocc import build_model
    from easyocc.occ3d import FREE, IGNORE, OCC3D_GRID, label_path, read_labels
    from easyocc.training.config import TrainConfig
    from easyocc.training.loop import render_targets
    from easyocc.training.objective import OCC3D_VOLUME, build_objective

    config = load_config(TrainConfig, resolve_config_path(args.config),
                         ["loss.ray_queries.weight=1", f"sources.oracle_noise={args.noise}", "data.split=train"])
    keyframes = split_keyframes(args.data, "auto", "train")
    picked = [keyframes[i] for i in np.linspace(0, len(keyframes) - 1, args.keyframes).round().astype(int)]
    dataset = OccDataset(picked, config.data, args.labels, render=render_targets(config, args.data))
    items = [dataset[i] for i in range(len(dataset))]
    gts = [read_labels(label_path(args.data / "gts", kf.scene_name, kf.token), keys=("semantics",)).semantics
           for kf in picked]

    targets = {}
    for name, change in VARIANTS.items():
        rays = replace(RayQueryConfig(), **change)
        generator = torch.Generator().manual_seed(0)
        counts = np.zeros(5)
        for item, gt in zip(items, gts):
            q = sample_ray_queries(item["depth_2d"], item["semantics_2d"], item["render_intrinsics"],
                                   item["ego_T_cam"], rays, generator)
            used = q.targets != IGNORE
            points, wanted = q.points[used].numpy(), q.targets[used].numpy()
            index, inside = OCC3D_GRID.indices(points)
            truth = np.full(len(points), IGNORE)
            truth[inside] = gt[tuple(index[inside].T)]
            free, occupied = wanted == FREE, wanted != FREE
            counts += [(free & (truth == FREE)).sum(), free.sum(), (occupied & (truth != FREE)).sum(),
                       (occupied & (truth == wanted)).sum(), occupied.sum()]
        targets[name] = {**change,
                         "free_precision": round(counts[0] / counts[1], 4),
                         "occupied_precision": round(counts[2] / counts[4], 4),
                         "occupied_class_precision": round(counts[3] / counts[4], 4),
                         "free_per_keyframe": int(counts[1] / len(items)),
                         "occupied_per_keyframe": int(counts[4] / len(items))}

    # The weight: gradient norms at the Occ3D logits of the untrained model (pseudo weights 1 / sqrt(frequency) of
    # these labels, as training counts them).
    from easyocc.losses import class_counts, class_weights_from_counts

    counts = sum(class_counts(item["semantics"].numpy(), item["mask_camera"].numpy()) for item in items)
    objective = build_objective(config, class_weights_from_counts(counts, config.loss.class_weighting), None)
    torch.manual_seed(0)
    model = build_model(config.model, load_weights=False).train()
    norms = {"pseudo": [], "ray_queries": []}
    for item in items:
        batch = {k: v[None] if isinstance(v, torch.Tensor) else v for k, v in item.items()}
        with torch.no_grad():
            logits = model(batch["images"], batch["intrinsics"], batch["ego_T_cam"])
        for term in norms:
            leaf = logits.clone().requires_grad_()
            if term == "pseudo":
                loss = objective.pseudo(leaf, batch["semantics"], batch["mask_camera"])["loss"]
            else:
                loss = objective.rays(leaf, OCC3D_VOLUME, objective.ray_queries(batch))["loss"]
            (grad,) = torch.autograd.grad(loss, leaf)
            norms[term].append(float(grad.norm()))
    pseudo, rays = np.median(norms["pseudo"]), np.median(norms["ray_queries"])
    print(json.dumps({
        "world": str(args.data), "noise": args.noise, "keyframes": [kf.token for kf in picked],
        "targets": targets,
        "logit_gradient_norm_median": {"pseudo": round(float(pseudo), 6), "ray_queries_weight_1": round(float(rays), 6),
                                       "ratio_pseudo_over_rays": round(float(pseudo / rays), 3)},
    }, indent=2))


if __name__ == "__main__":
    main()
