"""Losses: the pseudo loss against 3D labels (``pseudo``) and the self-supervised 2D losses of a rendering model
(``rendering``: photometric reprojection, smoothness, rendered semantics and depth, ray regularisers)."""

from easyocc.losses.pseudo import (
    LossConfig,
    PseudoLoss,
    class_counts,
    class_weights_from_counts,
    loss_targets,
    lovasz_jaccard_gradient,
    lovasz_softmax_flat,
)

__all__ = [
    "LossConfig",
    "PseudoLoss",
    "class_counts",
    "class_weights_from_counts",
    "loss_targets",
    "lovasz_jaccard_gradient",
    "lovasz_softmax_flat",
]
