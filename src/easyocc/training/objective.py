"""What a training step optimises: the losses a config names, summed.

- EasyOcc (``render: null``): the pseudo loss (class-balanced CE + Lovász) on the Occ3D logits against the 3D labels.
- The rendering model (a ``render`` section): its self-supervised 2D terms (``RenderingLoss``: photometric against
  the neighbouring sweeps, smoothness, rendered semantics against 2D maps, ray regularisers, optional depth) plus
  ``loss.pseudo_weight`` x the pseudo loss on the volume read at the Occ3D voxel centres (``occ3d_logits``, exact on
  a volume whose inner cells are the Occ3D voxels, trilinear otherwise); weight 0 leaves the 3D labels out.
- Either model: plus ``loss.ray_queries.weight`` x the ray-query loss (QueryOcc): free and occupied queries drawn
  per step along the keyframe cameras' rays from the 2D depth and semantic maps (``losses.ray_queries``), the Occ3D
  logits read at them trilinearly on the Occ3D box (``VolumeGrid.box``).

``Objective.keys`` names what a step returns ("loss" and every term), what the loop logs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from easyocc.losses import PseudoLoss
from easyocc.losses.ray_queries import RayQueries, RayQueryLoss, sample_ray_queries
from easyocc.losses.rendering import RenderingLoss
from easyocc.models.volume import VolumeGrid
from easyocc.occ3d import OCC3D_GRID
from easyocc.training.config import TrainConfig

#: Where the Occ3D logits (B, 18, 200, 200, 16) lie: the ray queries read them on this grid.
OCC3D_VOLUME = VolumeGrid.box(OCC3D_GRID)


class Objective(nn.Module):
    """forward(model outputs: ``logits`` (B, 18, 200, 200, 16) and/or the rendered maps of ``render_volume``,
    batch: the dataset's items, collated) -> {"loss": pseudo_weight x pseudo loss + rendering terms + ray_weight x
    ray-query loss, then each term detached: "ce", "lovasz" (with the pseudo loss), the rendering terms
    (``RenderingLoss.terms``), "ray_queries" (unweighted), "ray_free", "ray_occupied" (with the ray queries)}."""

    def __init__(self, pseudo: PseudoLoss | None = None, pseudo_weight: float = 1.0,
                 rendering: RenderingLoss | None = None, rays: RayQueryLoss | None = None, ray_weight: float = 0.0):
        super().__init__()
        if pseudo is None and rendering is None and rays is None:
            raise ValueError("an objective needs the pseudo loss, the rendering losses or the ray queries")
        self.pseudo, self.pseudo_weight, self.rendering = pseudo, pseudo_weight, rendering
        self.rays, self.ray_weight = rays, ray_weight

    @property
    def keys(self) -> tuple[str, ...]:
        """The names of the returned values, in order: what train_log.jsonl and TensorBoard show."""
        pseudo = ("ce", "lovasz") if self.pseudo is not None else ()
        rendering = self.rendering.terms if self.rendering is not None else ()
        rays = ("ray_queries", "ray_free", "ray_occupied") if self.rays is not None else ()
        return ("loss", *pseudo, *rendering, *rays)

    def model_outputs(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """Run the model on a batch: the Occ3D logits when the pseudo loss or the ray queries need them, the renders
        when the rendering losses do."""
        inputs = (batch["images"], batch["intrinsics"], batch["ego_T_cam"])
        if self.rendering is None:  # EasyOcc's forward gives the logits; the rendering model's a dict holding them
            outputs = model(*inputs)
            return outputs if isinstance(outputs, dict) else {"logits": outputs}
        occ3d = self.pseudo is not None or self.rays is not None
        return model(*inputs, render_intrinsics=batch["render_intrinsics"], occ3d=occ3d)

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
        if self.rays is not None:
            rays = self.rays(outputs["logits"], OCC3D_VOLUME, self.ray_queries(batch))
            term = self.ray_weight * rays["loss"]
            total = term if total is None else total + term
            values.update(ray_queries=rays["loss"].detach(), ray_free=rays["ray_free"],
                          ray_occupied=rays["ray_occupied"])
        return {"loss": total, **values}

    def ray_queries(self, batch: dict) -> RayQueries:
        """This step's queries of every keyframe of the batch, drawn with torch's generator of the batch's device:
        from ``depth_2d`` and ``semantics_2d`` (B, N, h, w), their ``render_intrinsics`` and ``ego_T_cam``."""
        return RayQueries.stack([
            sample_ray_queries(depth, semantics, intrinsics, ego_T_cam, self.rays.config)
            for depth, semantics, intrinsics, ego_T_cam in zip(
                batch["depth_2d"], batch["semantics_2d"], batch["render_intrinsics"], batch["ego_T_cam"])])


def build_objective(config: TrainConfig, pseudo_weights: np.ndarray | None, semantic_weights: np.ndarray | None) -> Objective:
    """The objective of a ``TrainConfig``: the pseudo loss with ``pseudo_weights`` (18,) when it has a weight, the
    rendering losses with ``semantic_weights`` (18,) (None: every class 1) when the config renders, the ray queries
    (class weights ``pseudo_weights`` under ``class_weighting: labels``) when they have a weight."""
    pseudo = PseudoLoss(config.loss, pseudo_weights) if config.uses_pseudo_loss else None
    rendering = None
    if config.render is not None and config.uses_rendering_loss:
        rendering = RenderingLoss(config.render_loss, semantic_weights, config.render.semantics)
    rays = RayQueryLoss(config.loss.ray_queries, pseudo_weights) if config.uses_ray_queries else None
    return Objective(pseudo, config.loss.pseudo_weight, rendering, rays, config.loss.ray_queries.weight)


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
