"""The pseudo loss: class-balanced cross-entropy plus Lovász-softmax, against 3D pseudo-labels.

Labels are Occ3D semantics (0..17, 17 = free); 255 is ignored everywhere. With ``region: camera`` only the voxels
of the labels' ``mask_camera`` count (the paper's "camera mask" setting); ``region: all`` uses every voxel.

Lovász-softmax (Berman, Rannen Triki, Blaschko, CVPR 2018): per class c, the Lovász extension of the Jaccard loss
evaluated at the vector of errors |[y = c] - p_c|; it is the exact convex surrogate of 1 - IoU_c.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from easyocc.losses.ray_queries import RayQueryConfig
from easyocc.occ3d import FREE, IGNORE, NUM_CLASSES


@dataclass
class LossConfig:
    """How the pseudo loss is made (every choice the paper ablates is here), and the ray-query term beside it."""

    #: The pseudo loss's weight in the training objective: 1 for EasyOcc; beside a rendering model's losses it adds
    #: the 3D pseudo-labels as one more term (issue: the paper's "OccNeRF + pseudo-labels"); 0 leaves it out, and then
    #: no 3D labels are read.
    pseudo_weight: float = 1.0
    ce_weight: float = 1.0
    lovasz_weight: float = 1.0
    #: Cross-entropy class weights from the training labels' class frequencies: 1 / sqrt(frequency) (OccNeRF's),
    #: 1 / frequency, or none (every class 1).
    class_weighting: Literal["inverse_sqrt_frequency", "inverse_frequency", "none"] = "inverse_sqrt_frequency"
    #: Lovász over the classes present in the batch's labels, or over all 18.
    lovasz_classes: Literal["present", "all"] = "present"
    #: Lovász over all (labelled) voxels, or only over voxels labelled occupied (not free).
    lovasz_voxels: Literal["all", "occupied"] = "all"
    #: Which voxels the loss sees: the labels' camera mask, or all of them.
    region: Literal["camera", "all"] = "camera"
    #: QueryOcc's ray-query supervision from the 2D sources' depth and semantics (``ray_queries.weight`` 0: off).
    ray_queries: RayQueryConfig = field(default_factory=RayQueryConfig)

    def __post_init__(self):
        weights = (self.ce_weight, self.lovasz_weight)
        if not all(0 <= w < math.inf for w in weights) or sum(weights) == 0:
            raise ValueError("ce_weight and lovasz_weight must be >= 0 and not both 0")
        if not self.pseudo_weight >= 0:
            raise ValueError(f"pseudo_weight must be >= 0, got {self.pseudo_weight}")


def lovasz_jaccard_gradient(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Increments of the Jaccard loss along sorted errors.

    gt_sorted: (..., P) 0/1 float, ground-truth membership in the order of decreasing error.
    Returns (..., P): entry i = J(first i + 1 elements mispredicted) - J(first i), where J(M) = |M| / |G ∪ M|
    for the ground-truth set G (J(∅) = 0; with G empty, J = 1 for any non-empty M).
    """
    total = gt_sorted.sum(dim=-1, keepdim=True)
    intersection = total - gt_sorted.cumsum(dim=-1)
    union = total + (1.0 - gt_sorted).cumsum(dim=-1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_softmax_flat(
    probs: torch.Tensor, labels: torch.Tensor, classes: Literal["present", "all"] = "present"
) -> torch.Tensor:
    """Lovász-softmax of class probabilities against labels, averaged over classes.

    probs: (C, P) float, each column a distribution; labels: (P,) int64 in 0..C-1.
    ``present``: classes occurring in ``labels`` only; ``all``: every class (an absent class then costs its
    largest probability). Returns a scalar; 0 (with a gradient path) when P = 0 or no class qualifies.
    """
    num_classes = probs.shape[0]
    if labels.numel() == 0:
        return probs.sum() * 0.0
    class_ids = torch.arange(num_classes, device=labels.device)
    foreground = (labels[None, :] == class_ids[:, None]).to(probs.dtype)
    if classes == "present":
        keep = foreground.sum(dim=1) > 0
        foreground, probs = foreground[keep], probs[keep]
        if foreground.shape[0] == 0:
            return probs.sum() * 0.0
    errors = (foreground - probs).abs()
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    gradient = lovasz_jaccard_gradient(torch.gather(foreground, 1, order))
    return (errors_sorted * gradient).sum(dim=1).mean()


def class_counts(semantics: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Voxels per class (18,) int64 of one label volume, where ``mask`` is set (255 is not counted)."""
    values = semantics if mask is None else semantics[mask.astype(bool)]
    return np.bincount(values.reshape(-1), minlength=256)[:NUM_CLASSES].astype(np.int64)


def class_weights_from_counts(counts: np.ndarray, method: str = "inverse_sqrt_frequency") -> np.ndarray:
    """Cross-entropy weights (18,) float32 from per-class voxel counts (18,).

    ``inverse_sqrt_frequency``: 1 / sqrt(frequency); ``inverse_frequency``: 1 / frequency; both scaled to mean 1
    over the classes that occur, and a class that never occurs gets weight 0 (it is never a target, so its weight
    never matters). ``none``: 1 for every class.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (NUM_CLASSES,) or counts.sum() <= 0:
        raise ValueError(f"class counts must be ({NUM_CLASSES},) with a positive sum, got {counts}")
    if method == "none":
        return np.ones(NUM_CLASSES, dtype=np.float32)
    exponent = {"inverse_sqrt_frequency": 0.5, "inverse_frequency": 1.0}.get(method)
    if exponent is None:
        raise ValueError(f"unknown class weighting '{method}' (known: inverse_sqrt_frequency, inverse_frequency, none)")
    present = counts > 0
    weights = np.zeros(NUM_CLASSES)
    weights[present] = (counts[present] / counts.sum()) ** -exponent
    return (weights / weights[present].mean()).astype(np.float32)


def loss_targets(semantics: torch.Tensor, mask_camera: torch.Tensor | None, region: str) -> torch.Tensor:
    """Targets (B, X, Y, Z) int64 with IGNORE outside the loss region. semantics: (B, X, Y, Z) uint8/int."""
    targets = semantics.long()
    if region == "camera":
        if mask_camera is None:
            raise ValueError("region 'camera' needs the labels' mask_camera")
        targets = torch.where(mask_camera.bool(), targets, torch.full_like(targets, IGNORE))
    return targets


class PseudoLoss(nn.Module):
    """forward(logits (B, 18, X, Y, Z), semantics (B, X, Y, Z), mask_camera (B, X, Y, Z) or None) ->
    {"loss": weighted sum, "ce": ..., "lovasz": ...} (scalars, computed in float32 or wider)."""

    def __init__(self, config: LossConfig, class_weights: np.ndarray | None = None):
        super().__init__()
        self.config = config
        if config.class_weighting != "none" and class_weights is None:
            raise ValueError(f"class_weighting '{config.class_weighting}' needs class_weights")
        weights = torch.ones(NUM_CLASSES) if config.class_weighting == "none" else torch.as_tensor(class_weights)
        self.register_buffer("class_weights", weights.float(), persistent=False)

    def forward(
        self, logits: torch.Tensor, semantics: torch.Tensor, mask_camera: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # never in half precision
        targets = loss_targets(semantics, mask_camera, self.config.region)
        labelled = targets != IGNORE
        zero = logits.sum() * 0.0
        ce = zero
        if self.config.ce_weight > 0 and bool(labelled.any()):
            ce = F.cross_entropy(logits, targets, weight=self.class_weights.to(logits.dtype), ignore_index=IGNORE)
        lovasz = zero
        if self.config.lovasz_weight > 0:
            chosen = labelled & (targets != FREE) if self.config.lovasz_voxels == "occupied" else labelled
            probs = logits.softmax(dim=1).movedim(1, 0)[:, chosen]  # (C, P)
            lovasz = lovasz_softmax_flat(probs, targets[chosen], self.config.lovasz_classes)
        total = self.config.ce_weight * ce + self.config.lovasz_weight * lovasz
        return {"loss": total, "ce": ce.detach(), "lovasz": lovasz.detach()}
