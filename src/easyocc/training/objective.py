"""What a training step optimises: the losses a config names, summed.

- EasyOcc (``render: null``): the pseudo loss (class-balanced CE + Lovász) on the Occ3D logits against the 3D labels.
- The rendering model (a ``render`` section): its self-supervised 2D terms (``RenderingLoss``: photometric against
  the neighbouring sweeps, smoothness, rendered semantics against 2D maps, ray regularisers, optional depth) plus
  ``loss.pseudo_weight`` x the pseudo loss on the volume read at the Occ3D voxel centres (``occ3d_logits``, exact on
  a volume whose inner cells are the Occ3D voxels, trilinear otherwise); weight 0 leaves the 3D labels out.

``Objective.keys`` names what a step returns ("loss" and every term), what the loop logs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from easyocc.losses import PseudoLoss
from easyocc.losses.rendering import RenderingLoss
from easyocc.training.config import TrainConfig


class Objective(nn.Module):
    """forward(model outputs: ``logits`` (B, 18, 200, 200, 16) and/or the rendered maps of ``render_volume``,
    batch: the dataset's items, collated) -> {"loss": pseudo_weight x pseudo loss + rendering terms, then each term
    detached: "ce", "lovasz" (with the pseudo loss), the rendering terms (``RenderingLoss.terms``)}."""

    def __init__(self, pseudo: PseudoLoss | None = None, pseudo_weight: float = 1.0,
                 rendering: RenderingLoss | None = None):
        super().__init__()
        if pseudo is None and rendering is None:
            raise ValueError("an objective needs the pseudo loss, the rendering losses or both")
        self.pseudo, self.pseudo_weight, self.rendering = pseudo, pseudo_weight, rendering

    @property
    def keys(self) -> tuple[str, ...]:
        """The names of the returned values, in order: what train_log.jsonl and TensorBoard show."""
        pseudo = ("ce", "lovasz") if self.pseudo is not None else ()
        rendering = self.rendering.terms if self.rendering is not None else ()
        return ("loss", *pseudo, *rendering)

    def model_outputs(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """Run the model on a batch: the Occ3D logits when the pseudo loss needs them, the renders when the
        rendering losses do."""
        inputs = (batch["images"], batch["intrinsics"], batch["ego_T_cam"])
        if self.rendering is None:  # EasyOcc's forward gives the logits; the rendering model's a dict holding them
            outputs = model(*inputs)
            return outputs if isinstance(outputs, dict) else {"logits": outputs}
        return model(*inputs, render_intrinsics=batch["render_intrinsics"], occ3d=self.pseudo is not None)

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        values: dict[str, torch.Tensor] = {}
        total = None
        if self.pseudo is not None:
            pseudo = self.pseudo(outputs["logits"], batch["semantics"], batch["mask_camera"])
            total = self.pseudo_weight * pseudo["loss"]
            values.update(ce=pseudo["ce"], lovasz=pseudo["lovasz"])
        if self.rendering is not None:
            rendered = self.rendering(
                outputs, batch["images"], batch["intrinsics"], batch.get("source_images"), batch.get("source_T_cam"),
                batch.get("source_intrinsics"), semantics=batch.get("semantics_2d"), depth=batch.get("depth_2d"),
                source_valid=batch.get("source_valid"))
            total = rendered.pop("loss") if total is None else total + rendered.pop("loss")
            values.update(rendered)
        return {"loss": total, **values}


def build_objective(config: TrainConfig, pseudo_weights: np.ndarray | None, semantic_weights: np.ndarray | None) -> Objective:
    """The objective of a ``TrainConfig``: the pseudo loss with ``pseudo_weights`` (18,) when it has a weight, the
    rendering losses with ``semantic_weights`` (18,) (None: every class 1) when the config renders."""
    pseudo = PseudoLoss(config.loss, pseudo_weights) if config.uses_pseudo_loss else None
    rendering = None
    if config.render is not None and config.uses_rendering_loss:
        rendering = RenderingLoss(config.render_loss, semantic_weights, config.render.semantics)
    return Objective(pseudo, config.loss.pseudo_weight, rendering)


def train_step(
    model: nn.Module,
    objective: Objective,
    batch: dict,
    amp: contextlib.AbstractContextManager,
) -> dict[str, torch.Tensor]:
    """Forward and losses of one batch (on the model's device); the caller runs backward and the optimiser."""
    with amp:
        outputs = objective.model_outputs(model, batch)
    return objective(outputs, batch)
