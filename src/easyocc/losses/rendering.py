"""The self-supervised losses of a rendering model (OccNeRF's ``Runer.compute_self_supervised_losses``), on the
maps of ``easyocc.models.rendering.render_volume``.

- **photometric**: the keyframe image reconstructed from each source frame (the neighbouring sweeps -1 / +1 of the
  same camera) with the rendered depth and the known relative pose; error 0.85 (1 - SSIM) / 2 + 0.15 L1
  (monodepth2), per-pixel minimum over the source frames, and auto-masking: the un-warped sources compete in the same
  minimum, so pixels that a static source already explains (no motion, moving with the camera) give no gradient.
  As OccNeRF, the rendered depth is upsampled bilinearly to the images' size and the loss computed there.
  Back-projection and projection are kornia's (``depth_to_3d_v2``, ``project_points``); SSIM is monodepth2's box
  filter (``ssim_error``: kornia's Gaussian SSIM took 1.7-3.7x its time with gradients on the CPU).
- **smoothness**: edge-aware smoothness of the mean-normalised disparity 1 / depth (kornia's
  ``inverse_depth_smoothness_loss``, monodepth2's ``get_smooth_loss``), at the images' size.
- **semantic**: cross-entropy of the rendered classes against 2D semantic maps (Occ3D ids 0-16, sky = 17 (free),
  255 ignored), class weights 1/sqrt(frequency) given by the caller; the maps are resized to the render size by
  nearest-pixel-centre sampling.
- **depth** (optional): rendered z-depth against a 2D depth map (0 = no depth): scale-invariant log error (default)
  or L1 in metres.
- **entropy**, **distortion**: OccNeRF's ray regularisers (``weight_entropy_last``, ``weight_distortion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.camera.perspective import project_points
from kornia.geometry.conversions import normalize_pixel_coordinates
from kornia.geometry.depth import depth_to_3d_v2
from kornia.geometry.linalg import transform_points
from kornia.losses import inverse_depth_smoothness_loss
from torch import nn

from easyocc.occ3d import IGNORE, NUM_CLASSES

#: OccNeRF's class frequencies (``options.py --class_frequencies``: voxel counts per Occ3D class, 0 for ``others``
#: and ``other_flat``), the source of its semantic CE weights 1/sqrt(frequency):
#: ``class_weights_from_counts(OCCNERF_CLASS_FREQUENCIES)`` gives them (up to a factor, which a weighted mean cancels).
OCCNERF_CLASS_FREQUENCIES = np.array(
    [0, 18164955800, 734218842, 2336187448, 10996756106, 395414611, 638889260, 651023279, 117046208, 985341947,
     7303776233, 43131984997, 0, 9342674867, 9525824742, 51204832885, 22848065525, 31841090018],
    dtype=np.int64,
)

#: A small offset on the un-warped sources' errors, so that a tie goes to the warp (monodepth2 adds 1e-5 noise).
IDENTITY_TIE_BREAK = 1e-5


@dataclass
class RenderLossConfig:
    """Weights of the self-supervised terms (0 switches a term off) and their options. Defaults: OccNeRF's
    ``configs/nusc-sem.txt`` (photometric 1, disparity_smoothness 0.001, semantic_loss_weight 0.05,
    weight_entropy_last 0.01, weight_distortion 0.01); no depth term (OccNeRF has none)."""

    #: The semantic term's class weights, 1 / sqrt(frequency) (OccNeRF's), of the frequencies counted on the
    #: training 2D maps at the render size (``maps``, stored in the run's class_weights.json), of OccNeRF's fixed
    #: Occ3D voxel counts (``occnerf``: ``OCCNERF_CLASS_FREQUENCIES``, nuScenes' statistics), or 1 for all (``none``).
    class_weighting: Literal["maps", "occnerf", "none"] = "maps"
    photometric_weight: float = 1.0
    #: SSIM share of the photometric error (monodepth2 / OccNeRF: 0.85; the rest is L1).
    ssim_weight: float = 0.85
    #: monodepth2's auto-masking (OccNeRF: on).
    automask: bool = True
    smoothness_weight: float = 0.001
    semantic_weight: float = 0.05
    entropy_weight: float = 0.01
    distortion_weight: float = 0.01
    depth_weight: float = 0.0
    #: silog: scale-invariant log error (a per-image scale error of the 2D source costs little); l1: metres.
    depth_loss: Literal["silog", "l1"] = "silog"
    #: The SILog lambda: the share of the squared mean log error discounted (1: fully scale-invariant).
    silog_lambda: float = 0.85

    def __post_init__(self):
        weights = [self.photometric_weight, self.smoothness_weight, self.semantic_weight, self.entropy_weight,
                   self.distortion_weight, self.depth_weight]
        if min(weights) < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0 <= self.ssim_weight <= 1 or not 0 <= self.silog_lambda <= 1:
            raise ValueError("ssim_weight and silog_lambda must be in [0, 1]")

    def term_weights(self) -> dict[str, float]:
        """Each term's weight, in the order the loss reports them."""
        return {"photometric": self.photometric_weight, "smoothness": self.smoothness_weight,
                "semantic": self.semantic_weight, "entropy": self.entropy_weight,
                "distortion": self.distortion_weight, "depth": self.depth_weight}


def unit_images(images: torch.Tensor) -> torch.Tensor:
    """Images as float in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def ssim_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """monodepth2's SSIM error map (``layers.SSIM``, which OccNeRF uses): clamp((1 - SSIM) / 2, 0, 1) with local
    means and variances over 3 x 3 boxes, reflection padding, C1 = 0.01^2, C2 = 0.03^2. x, y: (M, C, H, W) in
    [0, 1] -> (M, C, H, W).

    Written out rather than kornia's ``metrics.ssim`` (a Gaussian window, sigma 1.5): with gradients on the CPU
    kornia's depthwise convolutions took 1.7-3.7x the time of these box filters (``benchmarks/bench_train.py``).
    """
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mean = lambda t: F.avg_pool2d(t, 3, stride=1)  # noqa: E731
    mu_x, mu_y = mean(x), mean(y)
    sigma_x, sigma_y, sigma_xy = mean(x * x) - mu_x**2, mean(y * y) - mu_y**2, mean(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    similarity = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return ((1 - similarity) / 2).clamp(0, 1)


def reprojection_error(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """monodepth2's photometric error per pixel: ssim_weight * ``ssim_error`` + (1 - ssim_weight) * L1, both averaged
    over the channels. pred, target: (M, 3, H, W) in [0, 1]. Returns (M, H, W)."""
    l1 = (pred - target).abs().mean(dim=1)
    if ssim_weight == 0:
        return l1
    return ssim_weight * ssim_error(pred, target).mean(dim=1) + (1 - ssim_weight) * l1


def warp_source(
    source: torch.Tensor,
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    source_intrinsics: torch.Tensor,
    source_T_cam: torch.Tensor,
) -> torch.Tensor:
    """The target view reconstructed from a source image: every target pixel back-projected with its z-depth, moved
    into the source camera, projected, and the source sampled there (bilinear, border padding, as monodepth2).

    source: (M, C, H, W); depth: (M, 1, H, W) target z-depth; intrinsics / source_intrinsics: (M, 3, 3) for H x W;
    source_T_cam: (M, 4, 4) target camera -> source camera. Returns (M, C, H, W).
    """
    height, width = depth.shape[-2:]
    points = depth_to_3d_v2(depth[:, 0], intrinsics)  # (M, H, W, 3), pixel centres at integers
    moved = transform_points(source_T_cam[:, None], points)
    pixels = project_points(moved, source_intrinsics[:, None, None])
    grid = normalize_pixel_coordinates(pixels, height, width)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def photometric_loss(
    target: torch.Tensor,
    sources: torch.Tensor,
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    source_intrinsics: torch.Tensor,
    source_T_cam: torch.Tensor,
    ssim_weight: float = 0.85,
    automask: bool = True,
    source_valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-pixel minimum reprojection error of a target image over its source frames (monodepth2 / OccNeRF).

    target: (M, 3, H, W) in [0, 1]; sources: (M, S, 3, H, W); depth: (M, 1, h, w) target z-depth (upsampled
    bilinearly to H x W when smaller); intrinsics: (M, 3, 3) and source_intrinsics (M, S, 3, 3) for H x W;
    source_T_cam: (M, S, 4, 4); source_valid: (M, S) bool or None (all valid): a source that does not exist (no
    neighbouring image at a scene's end) takes no part in the minimum, neither warped nor un-warped, and a target
    with no valid source at all gives no pixel to the mean. Returns the loss (mean of the minimum over the pixels
    of targets with a source; 0 with a gradient path when there are none) and a (M, H, W) bool map of the pixels
    an un-warped source won (auto-masked; all False without ``automask``).
    """
    count, frames = sources.shape[:2]
    height, width = target.shape[-2:]
    if depth.shape[-2:] != (height, width):
        depth = F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)
    repeat = lambda x: x[:, None].expand(-1, frames, *x.shape[1:]).flatten(0, 1)  # noqa: E731
    warped = warp_source(sources.flatten(0, 1), repeat(depth), repeat(intrinsics), source_intrinsics.flatten(0, 1),
                         source_T_cam.flatten(0, 1))
    errors = reprojection_error(warped, repeat(target), ssim_weight).unflatten(0, (count, frames))
    missing = None if source_valid is None else ~source_valid.to(torch.bool)[:, :, None, None]
    if missing is not None:
        errors = errors.masked_fill(missing, float("inf"))
    if automask:
        identity = reprojection_error(sources.flatten(0, 1), repeat(target), ssim_weight).unflatten(0, (count, frames))
        identity = identity + IDENTITY_TIE_BREAK
        if missing is not None:
            identity = identity.masked_fill(missing, float("inf"))
        errors = torch.cat([identity, errors], dim=1)
    best, choice = errors.min(dim=1)
    masked = choice < frames if automask else torch.zeros_like(choice, dtype=torch.bool)
    if missing is None:
        return best.mean(), masked
    has_source = source_valid.to(torch.bool).any(dim=1)  # (M,)
    masked = masked & has_source[:, None, None]
    if not bool(has_source.any()):
        return warped.sum() * 0.0, masked
    return best[has_source].mean(), masked


def smoothness_loss(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the mean-normalised disparity. depth: (M, 1, h, w) z-depth (upsampled bilinearly to
    the image's size when smaller); image: (M, 3, H, W) in [0, 1]. Scalar."""
    if depth.shape[-2:] != image.shape[-2:]:
        depth = F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)
    disparity = 1.0 / (depth + 1e-7)
    normalised = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + 1e-7)
    return inverse_depth_smoothness_loss(normalised, image)


def resize_nearest(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(M, H, W) label or depth maps -> (M, h, w), each output pixel taking the input pixel under its centre."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    resized = F.interpolate(maps[:, None].float(), size=size, mode="nearest-exact")[:, 0]
    return resized.to(maps.dtype)


def semantic_loss(
    rendered: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None, rendered_kind: str = "logits"
) -> torch.Tensor:
    """Weighted cross-entropy of rendered classes against 2D semantic maps.

    rendered: (M, 18, h, w) logits (``logits``) or class probabilities (``probabilities``); labels: (M, H, W) Occ3D
    ids 0-17 (17 = sky), 255 ignored, resized to h x w; class_weights: (18,) or None. Scalar (0 with a gradient path
    when no pixel is labelled).
    """
    targets = resize_nearest(labels, tuple(rendered.shape[-2:])).long()
    if not bool((targets != IGNORE).any()):
        return rendered.sum() * 0.0
    weight = None if class_weights is None else class_weights.to(rendered)
    if rendered_kind == "logits":
        return F.cross_entropy(rendered, targets, weight=weight, ignore_index=IGNORE)
    # contiguous: nll_loss's CPU backward refuses the permuted layout the renderer returns
    return F.nll_loss(rendered.clamp_min(1e-6).log().contiguous(), targets, weight=weight, ignore_index=IGNORE)


def depth_loss(rendered: torch.Tensor, target: torch.Tensor, kind: str = "silog", silog_lambda: float = 0.85) -> torch.Tensor:
    """Rendered z-depth (M, h, w) against 2D z-depth maps (M, H, W) in metres, 0 = no depth (resized to h x w).

    ``silog``: per image, mean(g^2) - lambda mean(g)^2 with g = log(rendered) - log(target) over its pixels with
    depth, averaged over the images that have any; ``l1``: mean |rendered - target| over all pixels with depth.
    Scalar (0 with a gradient path when no pixel has depth).
    """
    target = resize_nearest(target.float(), tuple(rendered.shape[-2:]))
    valid = target > 0
    if not bool(valid.any()):
        return rendered.sum() * 0.0
    if kind == "l1":
        return (rendered - target).abs()[valid].mean()
    if kind != "silog":
        raise ValueError(f"unknown depth loss '{kind}' (silog, l1)")
    g = torch.where(valid, rendered.clamp_min(1e-3).log() - target.clamp_min(1e-3).log(), torch.zeros_like(rendered))
    counts = valid.flatten(1).sum(dim=1)
    seen = counts > 0
    mean = g.flatten(1).sum(dim=1)[seen] / counts[seen]
    mean_square = g.square().flatten(1).sum(dim=1)[seen] / counts[seen]
    return (mean_square - silog_lambda * mean.square()).mean()


def binary_entropy(opacity: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy of the rendered opacities (any shape): low when every ray ends in the volume or passes
    through it. Scalar."""
    p = opacity.float().clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log()).mean()


class RenderingLoss(nn.Module):
    """The weighted sum of the self-supervised terms.

    forward(rendered: the maps of ``render_volume`` (``depth`` (B, N, h, w), ``semantics`` (B, N, 18, h, w),
    ``opacity``, ``distortion``), images (B, N, 3, H, W) the keyframe images (uint8, or float in [0, 1]),
    intrinsics (B, N, 3, 3) for H x W, source_images (B, N, S, 3, H, W), source_T_cam (B, N, S, 4, 4) keyframe
    camera -> source camera, source_intrinsics (B, N, S, 3, 3) (default: ``intrinsics``), source_valid (B, N, S)
    bool (default: all; a missing source image takes no part in the photometric minimum), semantics (B, N, H', W')
    Occ3D ids / 17 sky / 255, depth (B, N, H'', W'') z-depth, 0 = none) -> {"loss": the weighted sum, and each
    enabled term unweighted and detached: "photometric", "smoothness", "semantic", "entropy", "distortion", "depth"}.
    Only the inputs of enabled terms are needed; a missing one is a ValueError naming it.
    """

    def __init__(self, config: RenderLossConfig, class_weights: np.ndarray | None = None,
                 rendered_semantics: Literal["logits", "probabilities"] = "logits"):
        super().__init__()
        self.config = config
        if not self.terms:
            raise ValueError("every rendering loss weight is 0")
        self.rendered_semantics = rendered_semantics
        weights = None if class_weights is None else torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)
        if weights is not None and weights.shape != (NUM_CLASSES,):
            raise ValueError(f"class_weights must be ({NUM_CLASSES},), got {tuple(weights.shape)}")
        self.register_buffer("class_weights", weights, persistent=False)

    @property
    def terms(self) -> tuple[str, ...]:
        """The names of the enabled terms (weight > 0), in the order of the returned dict."""
        return tuple(name for name, weight in self.config.term_weights().items() if weight > 0)

    def forward(
        self,
        rendered: dict[str, torch.Tensor],
        images: torch.Tensor | None = None,
        intrinsics: torch.Tensor | None = None,
        source_images: torch.Tensor | None = None,
        source_T_cam: torch.Tensor | None = None,
        source_intrinsics: torch.Tensor | None = None,
        semantics: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        source_valid: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        c = self.config
        terms = self.terms

        def need(name: str, value):
            if value is None:
                raise ValueError(f"the enabled loss terms ({', '.join(terms)}) need '{name}'")
            return value

        values: dict[str, torch.Tensor] = {}
        if {"photometric", "smoothness", "depth"} & set(terms):
            rendered_depth = need("rendered depth", rendered.get("depth")).float().flatten(0, 1)  # (M, h, w)
            flat_depth = rendered_depth[:, None]
        if "photometric" in terms or "smoothness" in terms:
            target = unit_images(need("images", images)).flatten(0, 1)
            if "photometric" in terms:
                K = need("intrinsics", intrinsics).float()
                sources = unit_images(need("source_images", source_images))
                K_sources = K[:, :, None].expand(-1, -1, sources.shape[2], -1, -1) if source_intrinsics is None \
                    else source_intrinsics.float()
                values["photometric"], _ = photometric_loss(
                    target, sources.flatten(0, 1), flat_depth, K.flatten(0, 1), K_sources.flatten(0, 1),
                    need("source_T_cam", source_T_cam).float().flatten(0, 1), c.ssim_weight, c.automask,
                    None if source_valid is None else source_valid.flatten(0, 1))
            if "smoothness" in terms:
                values["smoothness"] = smoothness_loss(flat_depth, target)
        if "semantic" in terms:
            values["semantic"] = semantic_loss(need("rendered semantics", rendered.get("semantics")).float().flatten(0, 1),
                                               need("semantics", semantics).flatten(0, 1), self.class_weights,
                                               self.rendered_semantics)
        if "entropy" in terms:
            values["entropy"] = binary_entropy(need("rendered opacity", rendered.get("opacity")))
        if "distortion" in terms:
            values["distortion"] = need("rendered distortion", rendered.get("distortion")).float().mean()
        if "depth" in terms:
            values["depth"] = depth_loss(rendered_depth, need("depth", depth).flatten(0, 1), c.depth_loss,
                                         c.silog_lambda)
        weights = c.term_weights()
        total = sum(weights[name] * values[name] for name in terms)
        return {"loss": total, **{name: values[name].detach() for name in terms}}
