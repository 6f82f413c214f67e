"""Volume rendering of a model volume along camera rays: OccNeRF's rendering head, written anew for easyocc.

The volume is the 3D CNN's (B, 18, X, Y, Z) logits on the lifting grid (``easyocc.models.volume.VolumeGrid``,
plain or contracted); channel 17 (free) gives the occupancy of a point, p = 1 - sigmoid(free logit), and all 18
channels its class. For every pixel of the keyframe's cameras at the render size:

1. **Ray**: from the camera centre through the pixel centre (OpenCV convention: pixel (u, v) at integer
   coordinates, as ``easyocc.geometry``), unit direction in the ego frame (kornia's ``unproject_meshgrid``).
2. **Samples** (``RaySchedule``) at ray distances d_k from ``near``: every ``step`` inner cells (half a cell by
   default, OccNeRF's ``stepsize``) up to the distance R of the box's farthest corner from the ray origins; beyond R,
   on a contracted grid, with spacing growing like the outer cells, ``step * voxel * (1 + (d - R) / L)^2`` (L the
   horizontal length scale of the contraction, 20 m for OccNeRF's grid), up to ``far``. A plain grid has no samples beyond R (they would all be outside the box). A *background* sample sits at
   ``far`` with occupancy 1, so a ray through empty space renders ``far``. While training, every ray's samples move
   by the same random fraction of a step (``jitter``, OccNeRF's +-0.1).
3. **Weights** (``ray_weights``) from the samples' occupancies: ``prob`` (OccNeRF's ``render_type prob``:
   w = diff(clamp(cumsum(p), max=1)), no transmittance) or ``alpha`` (alpha compositing with
   alpha = 1 - (1 - p)^step, i.e. p is the probability that one cell length stops the ray, so the result does not
   depend on the sampling step). Samples outside a plain grid are empty. Weights are >= 0 and, with the background,
   sum to 1.
4. **Outputs** per pixel: ray distance sum(w m) (background at ``far``), where m is the midpoint between a sample
   and the one before it: a weight says the ray stopped after the last sample seen empty and by this one, so a
   sharp surface renders within half a sample (OccNeRF takes the sample itself, half a step further on average);
   z-depth = distance * cos(angle to the optical axis), what the photometric warp and the 2D depth sources use;
   opacity = the volume samples' weight (1 - background); semantics: OccNeRF renders the raw logits, sum(w_g l_g), from one sample per ``semantic_every``
   geometry samples (its ``semantic_sample_ratio`` 0.25: the group's weights summed, its logits read at the group's
   mean position; the background contributes zero logits); ``probabilities`` renders sum(w_g softmax(l_g)) with
   the background counted as free instead; and the distortion of the weights (mip-NeRF 360) along the ray, in
   sample coordinates normalised to [0, 1] (the background a point at 1).

Memory: rays are rendered in chunks of ``chunk_rays``; with ``checkpoint`` (default) a chunk's samples are
recomputed in the backward pass instead of stored, so the peak holds one chunk's samples, not all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.depth import unproject_meshgrid
from torch.utils.checkpoint import checkpoint

from easyocc.models.easyocc import EasyOccModel, ModelConfig, build_model
from easyocc.models.volume import VolumeGrid, occ3d_logits, sample_volume_unit
from easyocc.occ3d import FREE, NUM_CLASSES

@dataclass
class RenderConfig:
    """How a volume is rendered. Defaults follow OccNeRF's ``configs/nusc-sem.txt`` and ``options.py``."""

    #: Render resolution (H, W) per camera; intrinsics given to the renderer must be for this size
    #: (OccNeRF: 180 x 320 for 900 x 1600 images).
    size: tuple[int, int] = (180, 320)
    #: Ray distances (metres from the camera centre) of the first sample and of the background (OccNeRF: min_depth
    #: 0.1; it clamps rendered depth to 200 m with its unbounded sampling).
    near: float = 0.1
    far: float = 200.0
    #: Sample spacing in inner cells of the volume (OccNeRF's ``stepsize`` 0.5).
    step: float = 0.5
    #: prob: OccNeRF's probabilistic rendering (its default); alpha: alpha compositing.
    weighting: Literal["prob", "alpha"] = "prob"
    #: One semantic sample per this many geometry samples (OccNeRF's semantic_sample_ratio 0.25 -> 4).
    semantic_every: int = 4
    #: logits: OccNeRF's weighted sum of raw logits; probabilities: weighted class probabilities, background = free.
    semantics: Literal["logits", "probabilities"] = "logits"
    #: What a loss on the rendered semantics trains: ``all`` (OccNeRF's): the ray weights (where rays stop) and
    #: every channel; ``logits``: the 18 channels at the samples, not the weights; ``classes``: the 17 class channels
    #: only, neither the weights nor the free channel (the occupancy), which the other terms alone then shape.
    semantics_gradient: Literal["all", "logits", "classes"] = "all"
    #: Per-ray random shift of the samples while training, in steps (OccNeRF: +-0.1).
    jitter: float = 0.1
    #: Rays rendered at once; with ``checkpoint``, the samples of one chunk are what the peak memory holds.
    chunk_rays: int = 32768
    #: Recompute each chunk in the backward pass rather than keep its samples (~1.3x the time, a fraction of the
    #: memory).
    checkpoint: bool = True
    #: The occupancy p of every cell at initialisation: the 3D CNN head's free-channel bias is set to
    #: log((1 - p) / p). ``prob`` weights have no transmittance, so with the default initialisation (p ~ 0.5, null:
    #: OccNeRF's) every ray ends within its first samples and only those get a gradient; p well below
    #: 1 / (samples per ray) lets rays reach the scene from the first iteration.
    init_occupancy: float | None = None

    def __post_init__(self):
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (H, W) >= 1, got {self.size}")
        if not 0 < self.near < self.far:
            raise ValueError(f"need 0 < near < far, got near {self.near}, far {self.far}")
        if self.step <= 0 or self.semantic_every < 1 or self.chunk_rays < 1 or not 0 <= self.jitter <= 0.5:
            raise ValueError("step must be > 0, semantic_every and chunk_rays >= 1, jitter in [0, 0.5]")
        if self.init_occupancy is not None and not 0 < self.init_occupancy < 1:
            raise ValueError(f"init_occupancy must be in (0, 1) or null, got {self.init_occupancy}")


@dataclass(frozen=True)
class RaySchedule:
    """Sample distances along a ray as a function of a sample coordinate n >= 0 (samples at n = 0, 1, 2, ...).

    d(n) = near + n * spacing up to ``linear_end`` (n_R); beyond it, when ``scale`` L is set (contracted grids),
    d = R + L q / (1 - q) with q = (n - n_R) spacing / L, so the spacing grows as spacing * (1 + (d - R) / L)^2, as
    the outer cells do. ``count`` real samples (n < ``stop``), the background at n = ``background``.
    """

    near: float
    far: float
    spacing: float
    linear_end: float
    scale: float | None

    @classmethod
    def for_grid(cls, grid: VolumeGrid, config: RenderConfig, origin_radius: float) -> "RaySchedule":
        """The schedule of ``config`` on ``grid`` for rays starting within ``origin_radius`` of the ego origin."""
        corners = np.array(np.meshgrid(*zip(grid.lower, grid.upper), indexing="ij")).reshape(3, -1)
        reach = float(np.linalg.norm(corners, axis=0).max()) + origin_radius
        scale = None
        if grid.is_contracted:
            ratios = grid.ratios[:2]
            t = ratios / (1 - ratios)
            scale = float(np.min(np.subtract(grid.upper, grid.lower)[:2] / (2 * t)))
        return cls(config.near, config.far, config.step * grid.voxel_size, max(reach, config.near), scale)

    def coordinate(self, distance: float) -> float:
        """n(d), the inverse of ``distance``."""
        if distance <= self.linear_end or self.scale is None:
            return (distance - self.near) / self.spacing
        beyond = distance - self.linear_end
        return (self.linear_end - self.near) / self.spacing + self.scale / self.spacing * beyond / (self.scale + beyond)

    @property
    def background(self) -> float:
        return self.coordinate(self.far)

    @property
    def stop(self) -> float:
        """Samples lie below this n: the background's, or where a plain grid's box ends."""
        return self.background if self.scale is not None else min(self.background, self.coordinate(self.linear_end))

    @property
    def count(self) -> int:
        return max(1, math.ceil(self.stop))

    def distance(self, n: torch.Tensor) -> torch.Tensor:
        """d(n) for a tensor of sample coordinates (any shape)."""
        linear = self.near + n * self.spacing
        if self.scale is None:
            return linear
        n_linear = (self.linear_end - self.near) / self.spacing
        q = ((n - n_linear) * self.spacing / self.scale).clamp(0.0, 1.0 - 1e-7)
        return torch.where(n <= n_linear, linear, self.linear_end + self.scale * q / (1 - q))


def ray_weights(
    free_logits: torch.Tensor, inside: torch.Tensor | None, weighting: str, step: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample weights of rays from their samples' free logits.

    free_logits: (R, K) channel-17 logits at the samples, in order along each ray; inside: (R, K) bool, False for
    samples outside the volume (they are empty), or None (all inside). ``prob``: OccNeRF's w = diff(clamp(cumsum(p), max=1)) with
    p = 1 - sigmoid(free logit); ``alpha``: w_k = T_k alpha_k, alpha = 1 - (1 - p)^step, T_k = prod_{j<k} (1 - alpha_j).
    Returns weights (R, K) >= 0 and background (R,) = 1 - sum(weights) >= 0, the weight of the background sample.
    """
    if weighting == "prob":
        occupancy = torch.sigmoid(-free_logits)
        occupancy = occupancy if inside is None else occupancy * inside
        accumulated = occupancy.cumsum(dim=-1).clamp(max=1.0)
        weights = torch.diff(accumulated, dim=-1, prepend=accumulated.new_zeros(accumulated.shape[:-1] + (1,)))
        return weights, 1.0 - accumulated[..., -1]
    if weighting == "alpha":
        log_keep = step * F.logsigmoid(free_logits)  # log(1 - alpha): 1 - p = sigmoid(free logit)
        log_keep = log_keep if inside is None else log_keep * inside
        log_transmittance = log_keep.cumsum(dim=-1)
        before = torch.exp(F.pad(log_transmittance[..., :-1], (1, 0)))
        return before * -torch.expm1(log_keep), torch.exp(log_transmittance[..., -1])
    raise ValueError(f"unknown weighting '{weighting}' (prob, alpha)")


def distortion(weights: torch.Tensor, positions: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Mip-NeRF 360's distortion loss per ray, in O(K): sum_ij w_i w_j |s_i - s_j| + 1/3 sum_i w_i^2 delta_i.

    weights, positions (ascending along each ray), widths: (R, K). Returns (R,).
    """
    before = torch.cumsum(weights, dim=-1) - weights
    weighted_before = torch.cumsum(weights * positions, dim=-1) - weights * positions
    pairs = 2 * (weights * (positions * before - weighted_before)).sum(dim=-1)
    return pairs + (weights.square() * widths).sum(dim=-1) / 3


def camera_rays(intrinsics: torch.Tensor, ego_T_cam: torch.Tensor, size: tuple[int, int]):
    """Rays through the pixel centres of cameras.

    intrinsics: (M, 3, 3) for images of ``size`` (H, W); ego_T_cam: (M, 4, 4).
    Returns origins (M, 3) and unit directions (M, H, W, 3) in the ego frame, and cos (M, H, W): the direction's
    component along the optical axis, so z-depth = ray distance * cos.
    """
    height, width = size
    directions = unproject_meshgrid(height, width, intrinsics, normalize_points=True, device=intrinsics.device,
                                    dtype=intrinsics.dtype)
    rotation = ego_T_cam[:, None, None, :3, :3]
    return ego_T_cam[:, :3, 3], (rotation @ directions[..., None])[..., 0], directions[..., 2]


def _render_chunk(free, volume, origins, directions, cosines, shift, grid, schedule, config):
    """One chunk of rays of one batch item: free (1, 1, X, Y, Z), volume (1, 18, X, Y, Z), origins / directions
    (R, 3), cosines (R,), shift (R, 1) of the sample coordinates (jitter) or None. Returns a (R, 22) tensor:
    distance, depth, opacity, distortion, then the 18 semantic channels."""
    rays, count = directions.shape[0], schedule.count
    coordinates = torch.arange(count, device=directions.device, dtype=directions.dtype).expand(rays, -1)
    if shift is not None:
        coordinates = (coordinates + shift).clamp(0.0, schedule.background)
    distances = schedule.distance(coordinates)  # (R, K)
    points = torch.addcmul(origins[:, None], distances[..., None], directions[:, None])
    unit = grid.world_to_unit(points)
    inside = None if all(grid.outer) else (unit.abs() <= 1).all(dim=-1)  # a fully contracted grid holds every point
    free_logits = sample_volume_unit(free, unit.reshape(1, -1, 3))[0, 0].view(rays, count)
    weights, background = ray_weights(free_logits, inside, config.weighting, config.step)
    # A sample's weight says the ray stopped after the sample before it: between the two, at their midpoint.
    midpoints = torch.cat([distances[:, :1], (distances[:, 1:] + distances[:, :-1]) / 2], dim=-1)
    distance = (weights * midpoints).sum(dim=-1) + background * schedule.far

    # Distortion over the samples and the background, in sample coordinates normalised to [0, 1].
    scale = 1.0 / schedule.background
    positions = torch.cat([coordinates * scale, coordinates.new_ones(rays, 1)], dim=-1)
    widths = torch.cat([torch.full_like(coordinates, scale), coordinates.new_zeros(rays, 1)], dim=-1)
    spread = distortion(torch.cat([weights, background[:, None]], dim=-1), positions, widths)

    # Semantics from one sample per group of ``semantic_every``: the group's summed weight at its mean position.
    every = config.semantic_every
    groups = math.ceil(count / every)
    pad = groups * every - count
    group_weights = F.pad(weights, (0, pad)).view(rays, groups, every).sum(dim=-1)
    semantic_background = background
    if config.semantics_gradient != "all":  # the semantic maps do not move where rays stop
        group_weights, semantic_background = group_weights.detach(), background.detach()
    group_distances = F.pad(distances, (0, pad), mode="replicate").view(rays, groups, every).mean(dim=-1)
    group_points = torch.addcmul(origins[:, None], group_distances[..., None], directions[:, None])
    logits = sample_volume_unit(volume, grid.world_to_unit(group_points).reshape(1, -1, 3))[0]
    logits = logits.view(NUM_CLASSES, rays, groups)
    if config.semantics_gradient == "classes":  # the free channel is the samples' occupancy: geometry too
        logits = torch.cat([logits[:FREE], logits[FREE:].detach()])
    values = logits if config.semantics == "logits" else logits.softmax(dim=0)
    semantics = torch.einsum("crg,rg->rc", values, group_weights)  # a batched product, no (R, G, 18) temporary
    if config.semantics == "probabilities":
        semantics = semantics + semantic_background[:, None] * F.one_hot(torch.tensor(FREE), NUM_CLASSES).to(semantics)
    columns = [distance, distance * cosines, 1.0 - background, spread]
    return torch.cat([torch.stack(columns, dim=-1), semantics], dim=-1)


def render_volume(
    volume: torch.Tensor,
    grid: VolumeGrid,
    intrinsics: torch.Tensor,
    ego_T_cam: torch.Tensor,
    config: RenderConfig,
    training: bool = False,
) -> dict[str, torch.Tensor]:
    """Render a model volume into cameras.

    volume: (B, 18, X, Y, Z) logits on ``grid`` (channel 17 = free); intrinsics: (B, N, 3, 3) for images of
    ``config.size``; ego_T_cam: (B, N, 4, 4) camera -> keyframe ego. ``training`` jitters the samples.
    Returns float32 maps: ``depth`` (B, N, H, W) z-depth in metres (``far`` * cos where nothing is hit),
    ``distance`` (B, N, H, W) along the ray, ``opacity`` (B, N, H, W) the volume's share of the weight,
    ``distortion`` (B, N, H, W) per-ray distortion, ``semantics`` (B, N, 18, H, W) rendered logits or probabilities.
    """
    batch, cameras = intrinsics.shape[:2]
    if volume.shape[:2] != (batch, NUM_CLASSES) or volume.shape[-3:] != grid.shape:
        raise ValueError(f"volume {tuple(volume.shape)} must be ({batch}, {NUM_CLASSES}, *{grid.shape})")
    if intrinsics.shape != (batch, cameras, 3, 3) or ego_T_cam.shape != (batch, cameras, 4, 4):
        raise ValueError(f"intrinsics {tuple(intrinsics.shape)} / ego_T_cam {tuple(ego_T_cam.shape)} must be "
                         f"({batch}, N, 3, 3) / ({batch}, N, 4, 4)")
    height, width = config.size
    with torch.autocast(device_type=volume.device.type, enabled=False):
        volume = volume.float()
        free = volume[:, FREE : FREE + 1].contiguous()
        origins, directions, cosines = camera_rays(intrinsics.float().flatten(0, 1), ego_T_cam.float().flatten(0, 1),
                                                   (height, width))
        schedule = RaySchedule.for_grid(grid, config, float(origins.norm(dim=-1).max()))
        per_camera = height * width
        origins = origins.unflatten(0, (batch, cameras))[:, :, None].expand(-1, -1, per_camera, -1).reshape(batch, -1, 3)
        directions = directions.reshape(batch, -1, 3)
        cosines = cosines.reshape(batch, -1)
        rays = directions.shape[1]
        outputs = []
        for b in range(batch):
            # Drawn here, not in the chunk, so that a checkpointed chunk recomputes the same samples.
            shift = (torch.rand(rays, 1, device=volume.device) * 2 - 1) * config.jitter \
                if training and config.jitter > 0 else None
            chunks = []
            for start in range(0, rays, config.chunk_rays):
                part = slice(start, start + config.chunk_rays)
                arguments = (free[b : b + 1], volume[b : b + 1], origins[b, part], directions[b, part], cosines[b, part],
                             None if shift is None else shift[part], grid, schedule, config)
                if config.checkpoint and torch.is_grad_enabled() and volume.requires_grad:
                    chunks.append(checkpoint(_render_chunk, *arguments, use_reentrant=False))
                else:
                    chunks.append(_render_chunk(*arguments))
            outputs.append(torch.cat(chunks))
        rendered = torch.stack(outputs).view(batch, cameras, height, width, -1)
    maps = {name: rendered[..., i] for i, name in enumerate(("distance", "depth", "opacity", "distortion"))}
    maps["semantics"] = rendered[..., 4:].permute(0, 1, 4, 2, 3)
    return maps


class RenderingOccModel(EasyOccModel):
    """EasyOcc's encoder, lifting and 3D CNN (the same modules and state-dict keys) plus volume rendering.

    forward(images (B, N, 3, H, W), intrinsics (B, N, 3, 3), ego_T_cam (B, N, 4, 4), render_intrinsics (B, N, 3, 3)
    for ``render.size`` or None, render_ego_T_cam (B, N, 4, 4) or None (= ego_T_cam), occ3d=True) -> dict:
    ``volume`` (B, 18, *lift_grid.shape) the 3D CNN's logits; ``logits`` (B, 18, 200, 200, 16) the volume at the
    Occ3D voxel centres (``occ3d_logits``, what prediction and a 3D loss use; only with ``occ3d``); with render
    intrinsics, the maps of ``render_volume`` (``depth``, ``distance``, ``opacity``, ``distortion``, ``semantics``).
    """

    def __init__(self, config: ModelConfig, render: RenderConfig | None = None):
        super().__init__(config)
        self.render_config = render if render is not None else RenderConfig()
        p = self.render_config.init_occupancy
        if p is not None:
            with torch.no_grad():
                self.voxel_cnn.head.bias[FREE] = math.log((1 - p) / p)

    def render(self, volume: torch.Tensor, intrinsics: torch.Tensor, ego_T_cam: torch.Tensor) -> dict[str, torch.Tensor]:
        """``render_volume`` of this model's volume with its config (sample jitter while training)."""
        return render_volume(volume, self.lifter.grid, intrinsics, ego_T_cam, self.render_config, self.training)

    def forward(  # type: ignore[override]
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        ego_T_cam: torch.Tensor,
        render_intrinsics: torch.Tensor | None = None,
        render_ego_T_cam: torch.Tensor | None = None,
        occ3d: bool = True,
    ) -> dict[str, torch.Tensor]:
        volume = self.volume(images, intrinsics, ego_T_cam)
        outputs = {"volume": volume}
        if occ3d:
            outputs["logits"] = occ3d_logits(volume, self.lifter.grid)
        if render_intrinsics is not None:
            pose = ego_T_cam if render_ego_T_cam is None else render_ego_T_cam
            outputs.update(self.render(volume, render_intrinsics, pose))
        return outputs


def build_rendering_model(config: ModelConfig, render: RenderConfig, load_weights: bool = True) -> RenderingOccModel:
    """The rendering model, with ``config.pretrained`` loaded into the backbone when set and ``load_weights``."""
    model = RenderingOccModel(config, render)
    if load_weights:
        model.load_pretrained_backbone()
    return model


def build_occupancy_model(config: ModelConfig, render: RenderConfig | None, load_weights: bool = True) -> EasyOccModel:
    """EasyOcc when ``render`` is None, else the rendering model: the same encoder, lifting and 3D CNN (the same
    state-dict keys); ``config.pretrained`` is loaded into the backbone when set and ``load_weights``."""
    if render is None:
        return build_model(config, load_weights)
    return build_rendering_model(config, render, load_weights)
