"""The training config: one typed dataclass tree, read from YAML (``configs/*.yaml``) with ``--set`` overrides.

Which model trains and on what: ``render: null`` is EasyOcc (the pseudo loss against 3D labels); a ``render``
section makes it the rendering model (OccNeRF-style), trained with the ``render_loss`` terms against the images,
their neighbouring sweeps and the 2D maps of ``sources``, plus ``loss.pseudo_weight`` x the pseudo loss (0: none,
and no 3D labels are read). Either model may add ``loss.ray_queries.weight`` x the ray-query loss (QueryOcc), which
reads the depth and semantic maps of ``sources``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from easyocc.data.occ_dataset import DataConfig
from easyocc.labels.sources.spec import SourceSpec
from easyocc.losses import LossConfig
from easyocc.losses.rendering import RenderLossConfig
from easyocc.models.easyocc import ModelConfig
from easyocc.models.rendering import RenderConfig


@dataclass
class OptimConfig:
    """AdamW with two learning rates (OccNeRF: image encoder 1e-4, the rest 1e-3) and a per-iteration schedule."""

    epochs: int = 12
    #: Keyframes (of six images each) per process and step.
    batch_size: int = 1
    lr: float = 1e-3
    encoder_lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    #: step: x gamma at each epoch in ``milestones``; cosine: to 0 over the run; constant. All after warm-up.
    schedule: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[int, ...] = (10,)
    gamma: float = 0.1
    #: Iterations of linear warm-up from 0.
    warmup_iters: int = 0
    #: Clip the gradients' global norm to this (null: no clipping).
    grad_clip: float | None = None
    #: Mixed precision on CUDA (ignored on the CPU); bfloat16 needs no loss scaling.
    amp: bool = True
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if not (0 < self.lr < math.inf and 0 <= self.encoder_lr < math.inf):
            raise ValueError("learning rates must be positive (encoder_lr 0 freezes the encoder's updates)")
        if not 0 <= self.weight_decay < math.inf or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"weight_decay must be >= 0 and betas in [0, 1), got {self.weight_decay} and "
                             f"{list(self.betas)}")
        if not 0 < self.gamma < math.inf or any(m < 1 for m in self.milestones) or self.warmup_iters < 0:
            raise ValueError("gamma must be > 0, milestones >= 1 (epochs) and warmup_iters >= 0")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a positive number or null, got {self.grad_clip}")


@dataclass
class TrainConfig:
    seed: int = 0
    #: "auto" = the GPU when torch sees one (under torchrun: the local rank's GPU), else the CPU.
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    #: The rendering head: null trains EasyOcc (no rendering); set, the rendering model (its volume rendered into the
    #: keyframe's cameras at ``render.size``, trained with ``render_loss``).
    render: RenderConfig | None = None
    data: DataConfig = field(default_factory=DataConfig)
    #: The pseudo loss against 3D labels (``loss.pseudo_weight`` 0: none, no labels read) and the ray-query term
    #: (``loss.ray_queries``).
    loss: LossConfig = field(default_factory=LossConfig)
    #: The rendering model's self-supervised 2D terms (read only with a ``render`` section).
    render_loss: RenderLossConfig = field(default_factory=RenderLossConfig)
    #: The 2D sources of the rendering model's semantic (and depth) terms and of the ray queries
    #: (``loss.ray_queries``): the names and options of ``easyocc labels --semantics/--depth`` (read only by those).
    sources: SourceSpec = field(default_factory=SourceSpec)
    optim: OptimConfig = field(default_factory=OptimConfig)
    #: Iterations between TensorBoard points.
    log_every: int = 10
    #: Iterations between extra checkpoints inside an epoch (0: only at the end of each epoch).
    checkpoint_every: int = 0
    #: Keep every epoch's checkpoint (checkpoints/epoch_NNN.pt) besides checkpoints/last.pt.
    keep_epoch_checkpoints: bool = False

    def __post_init__(self):
        if self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError("log_every must be >= 1 and checkpoint_every >= 0")
        stride = self.model.feature_stride
        if any(side % stride for side in self.data.input_size):
            raise ValueError(f"the network's input size {list(self.data.input_size)} (data.image_size, or data.crop's "
                             f"height and width) must be a multiple of model.feature_stride {stride}")
        if self.loss.pseudo_weight == 0 and not self.uses_ray_queries \
                and not (self.render is not None and self.uses_rendering_loss):
            what = "every render_loss weight is 0" if self.render is not None else "there is no render section"
            raise ValueError(f"loss.pseudo_weight and loss.ray_queries.weight are 0 and {what}: nothing would train")
        if self.uses_ray_queries and self.loss.ray_queries.class_weighting == "labels" and not self.uses_pseudo_loss:
            raise ValueError("loss.ray_queries.class_weighting 'labels' takes the pseudo loss's class weights from the "
                             "3D labels, which loss.pseudo_weight 0 does not read; set it to none")

    @property
    def uses_pseudo_loss(self) -> bool:
        """Whether training reads 3D labels (the pseudo loss has a weight)."""
        return self.loss.pseudo_weight > 0

    @property
    def uses_ray_queries(self) -> bool:
        """Whether the ray-query term has a weight (it reads the 2D maps of ``sources``, with either model)."""
        return self.loss.ray_queries.weight > 0

    @property
    def reads_2d_semantics(self) -> bool:
        """Whether training reads the semantic maps of ``sources``: for the ray queries, or the rendered semantic
        term."""
        return self.uses_ray_queries or self._renders("semantic")

    @property
    def reads_2d_depth(self) -> bool:
        """Whether training reads the depth maps of ``sources``: for the ray queries, or the rendered depth term."""
        return self.uses_ray_queries or self._renders("depth")

    def _renders(self, term: str) -> bool:
        return self.render is not None and self.render_loss.term_weights()[term] > 0

    @property
    def uses_rendering_loss(self) -> bool:
        """Whether a rendering loss term has a weight (they apply only with a ``render`` section)."""
        return any(weight > 0 for weight in self.render_loss.term_weights().values())
