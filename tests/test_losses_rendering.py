"""The self-supervised losses of the rendering model: photometric reprojection on a synthetic textured plane,
auto-masking, SSIM / smoothness / semantic / depth terms against hand-computed numbers, and gradients of every term
to the volume and the image encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kornia.metrics import ssim

from easyocc.config import config_from_dict
from easyocc.losses import class_weights_from_counts
from easyocc.losses.rendering import (
    IDENTITY_TIE_BREAK,
    OCCNERF_CLASS_FREQUENCIES,
    RenderingLoss,
    RenderLossConfig,
    depth_loss,
    photometric_loss,
    reprojection_error,
    semantic_loss,
    smoothness_loss,
    ssim_error,
)
from easyocc.models.easyocc import ModelConfig
from easyocc.models.rendering import RenderConfig, RenderingOccModel
from easyocc.occ3d import FREE, IGNORE, NUM_CLASSES
from model_fixtures import torch_single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

HEIGHT, WIDTH, FOCAL = 48, 64, 60.0
#: A plane in the target camera's frame, n . X = c, tilted so that depth varies over the image (about 5.5-7.5 m).
PLANE_NORMAL, PLANE_OFFSET = np.array([0.15, -0.25, 1.0]), 6.0


def intrinsics() -> np.ndarray:
    return np.array([[FOCAL, 0.0, (WIDTH - 1) / 2], [0.0, FOCAL, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])


def texture(points: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of points (..., 3) on the plane: smooth stripes of 0.6-1.1 m wavelength (8-14 px here)."""
    waves = [np.sin(points @ np.array(k) * 2 * np.pi) for k in ([1.1, 0.5, 0.0], [-0.4, 1.3, 0.1], [0.9, -0.9, 0.2])]
    return np.clip(0.5 + 0.2 * np.stack(waves, axis=-1) + 0.1 * np.roll(np.stack(waves, axis=-1), 1, axis=-1), 0, 1)


def view_of_plane(cam_T_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image (3, H, W) and z-depth (H, W) of the textured plane seen by a camera at ``cam_T_target`` (target frame
    -> this camera), rendered exactly per pixel centre."""
    u, v = np.meshgrid(np.arange(WIDTH, dtype=np.float64), np.arange(HEIGHT, dtype=np.float64))
    rays_cam = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(intrinsics()).T  # z = 1 rays
    target_T_cam = np.linalg.inv(cam_T_target)
    rays = rays_cam @ target_T_cam[:3, :3].T
    origin = target_T_cam[:3, 3]
    distance = (PLANE_OFFSET - PLANE_NORMAL @ origin) / (rays @ PLANE_NORMAL)
    points = origin + distance[..., None] * rays
    return texture(points).transpose(2, 0, 1), distance


def rotation_about_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def plane_scene():
    """Target image and depth, two source images (a camera moved ~1 m each way and turned), their poses."""
    target, depth = view_of_plane(np.eye(4))
    sources, poses = [], []
    for sign in (-1.0, 1.0):
        source_T_target = np.eye(4)
        source_T_target[:3, :3] = rotation_about_y(sign * 0.03)
        source_T_target[:3, 3] = [sign * 0.9, 0.05, sign * 0.3]
        sources.append(view_of_plane(source_T_target)[0])
        poses.append(source_T_target)
    as_tensor = lambda a: torch.from_numpy(np.asarray(a)).float()  # noqa: E731
    K = as_tensor(intrinsics())[None]
    return (as_tensor(target)[None], as_tensor(sources)[None], as_tensor(depth)[None, None], K,
            K[:, None].expand(1, 2, 3, 3), as_tensor(poses)[None])


def test_photometric_loss_is_near_zero_with_the_true_depth_and_not_with_a_wrong_one():
    target, sources, depth, K, K_sources, poses = plane_scene()
    true_loss, masked = photometric_loss(target, sources, depth, K, K_sources, poses)
    scaled_loss, _ = photometric_loss(target, sources, depth * 1.2, K, K_sources, poses)
    unwarped = reprojection_error(sources[:, 0], target).mean().item()
    assert true_loss.item() < 0.01  # measured 0.0034: bilinear resampling of 8-14 px stripes
    assert scaled_loss.item() > 10 * true_loss.item()  # measured 0.142
    assert unwarped > 10 * true_loss.item()  # the sources really differ from the target
    assert masked.float().mean().item() < 0.05  # the moving camera leaves little for the auto-mask
    # A render at half the resolution is upsampled to the images, as OccNeRF does.
    half = F.interpolate(depth, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert photometric_loss(target, sources, half, K, K_sources, poses)[0].item() < 0.03


def test_automask_keeps_pixels_a_static_source_explains():
    target, sources, depth, K, K_sources, poses = plane_scene()
    static = target[:, None].expand(-1, 2, -1, -1, -1)
    loss, masked = photometric_loss(target, static, depth * 3.0, K, K_sources, poses)
    assert masked.all() and loss.item() == pytest.approx(IDENTITY_TIE_BREAK, abs=1e-9)
    unmasked, none = photometric_loss(target, static, depth * 3.0, K, K_sources, poses, automask=False)
    assert not none.any() and unmasked.item() > 0.02


def test_a_missing_source_takes_no_part_in_the_minimum():
    target, sources, depth, K, K_sources, poses = plane_scene()
    alone, alone_masked = photometric_loss(target, sources[:, 1:], depth * 1.2, K, K_sources[:, 1:], poses[:, 1:])
    # Source 0 replaced by what a missing neighbour is in a batch (zeros, identity pose), or by the target itself,
    # which would win every pixel's minimum (through the auto-mask) if it took part.
    for stand_in in (torch.zeros_like(sources[:, 0]), target):
        with_missing = torch.stack([stand_in, sources[:, 1]], dim=1)
        identity = poses.clone()
        identity[:, 0] = torch.eye(4)
        valid = torch.tensor([[False, True]])
        loss, masked = photometric_loss(target, with_missing, depth * 1.2, K, K_sources, identity, source_valid=valid)
        assert loss.item() == pytest.approx(alone.item(), rel=1e-6) and alone.item() > 0.05
        assert torch.equal(masked, alone_masked)
    # A camera with no source at all gives no pixel: the mean is over the others; none at all gives 0 (and a gradient).
    two = lambda x: torch.cat([x, x])  # noqa: E731
    scaled = (depth * 1.2).requires_grad_()
    loss, _ = photometric_loss(two(target), two(sources), torch.cat([scaled, scaled]), two(K), two(K_sources),
                               two(poses), source_valid=torch.tensor([[False, True], [False, False]]))
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6)
    nothing, _ = photometric_loss(target, sources, scaled, K, K_sources, poses, source_valid=torch.zeros(1, 2).bool())
    assert nothing.item() == 0.0
    nothing.backward()
    assert scaled.grad is not None and torch.isfinite(scaled.grad).all()


def test_reprojection_error_of_flat_images():
    pred, target = torch.full((1, 3, 8, 8), 0.2), torch.full((1, 3, 8, 8), 0.5)
    c1 = 0.01**2
    ssim_value = (2 * 0.2 * 0.5 + c1) / (0.2**2 + 0.5**2 + c1)  # flat images: the contrast term is 1
    expected = 0.85 * (1 - ssim_value) / 2 + 0.15 * 0.3
    np.testing.assert_allclose(reprojection_error(pred, target).numpy(), expected, rtol=1e-5)
    assert reprojection_error(target, target).abs().max().item() < 1e-6


def test_ssim_error_is_monodepth2s_box_ssim():
    generator = torch.Generator().manual_seed(4)
    x = F.avg_pool2d(torch.rand(1, 3, 14, 18, generator=generator), 3, 1, 1)  # smooth-ish images
    y = (x + 0.05 * torch.randn(1, 3, 14, 18, generator=generator)).clamp(0, 1)
    ours = ssim_error(x, y)
    # Interior pixels by the definition, with numpy 3 x 3 windows.
    windows = lambda a: np.lib.stride_tricks.sliding_window_view(a.numpy()[0].astype(np.float64), (3, 3), axis=(1, 2))  # noqa: E731
    wx, wy = windows(x), windows(y)
    mu_x, mu_y = wx.mean(axis=(-1, -2)), wy.mean(axis=(-1, -2))
    var_x, var_y = wx.var(axis=(-1, -2)), wy.var(axis=(-1, -2))
    cov = ((wx - mu_x[..., None, None]) * (wy - mu_y[..., None, None])).mean(axis=(-1, -2))
    c1, c2 = 0.01**2, 0.03**2
    ssim_value = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    np.testing.assert_allclose(ours[0, :, 1:-1, 1:-1].numpy(), np.clip((1 - ssim_value) / 2, 0, 1), atol=5e-5)  # float32 E[x^2] - mu^2
    # kornia's Gaussian-window SSIM is close, not equal.
    kornia_error = ((1 - ssim(x, y, 3, max_val=1.0, eps=0.0)) / 2).clamp(0, 1)
    assert 0 < (kornia_error - ours).abs().mean().item() < 0.01


def test_smoothness_is_edge_aware():
    depth = torch.ones(1, 1, 4, 4)
    depth[..., 2:] = 2.0  # disparity 1 | 0.5, normalised by its mean 0.75: a 2/3 step in one of 3 column gaps
    flat_image = torch.zeros(1, 3, 4, 4)
    assert smoothness_loss(depth, flat_image).item() == pytest.approx(2 / 9, rel=1e-5)
    edge_image = flat_image.clone()
    edge_image[..., 2:] = 1.0
    assert smoothness_loss(depth, edge_image).item() == pytest.approx(2 / 9 * math.exp(-1), rel=1e-5)
    assert smoothness_loss(torch.full((1, 1, 4, 4), 7.0), edge_image).item() == pytest.approx(0.0, abs=1e-7)


def test_semantic_loss_resizes_by_pixel_centres_and_ignores_255():
    torch.manual_seed(0)
    logits = torch.randn(1, NUM_CLASSES, 2, 2)
    labels = torch.full((1, 4, 4), IGNORE, dtype=torch.uint8)
    labels[0, 1, 1], labels[0, 1, 3], labels[0, 3, 1] = 4, 17, 11  # the pixels under the 2 x 2 render's centres
    labels[0, 0, 0] = 5  # not under a centre: never read
    weights = torch.from_numpy(class_weights_from_counts(OCCNERF_CLASS_FREQUENCIES))
    picked = torch.tensor([[[4, 17], [11, IGNORE]]])
    expected = F.cross_entropy(logits, picked, weight=weights, ignore_index=IGNORE)
    assert semantic_loss(logits, labels, weights).item() == pytest.approx(expected.item(), rel=1e-6)
    probabilities = logits.softmax(dim=1)
    assert semantic_loss(probabilities, labels, weights, "probabilities").item() == pytest.approx(expected.item(), rel=1e-5)
    # The renderer's permuted layout (B, N, 18, H, W from (B, N, H, W, 18)) trains in both modes.
    permuted = logits.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).requires_grad_()
    semantic_loss(permuted.softmax(dim=1), labels, weights, "probabilities").backward()
    assert permuted.grad.abs().sum().item() > 0
    # OccNeRF's weights: 1 / sqrt(frequency), others and other_flat (frequency 0) never supervised.
    assert weights[0] == 0 and weights[12] == 0
    assert (weights[8] / weights[15]).item() == pytest.approx(math.sqrt(51204832885 / 117046208), rel=1e-5)


def test_depth_losses():
    target = torch.tensor([[[2.0, 4.0], [0.0, 8.0]]])  # one pixel without depth
    rendered = 2 * target.clamp_min(1.0)
    assert depth_loss(rendered, target, "silog", 0.85).item() == pytest.approx(0.15 * math.log(2) ** 2, rel=1e-5)
    assert depth_loss(rendered, target, "silog", 1.0).item() == pytest.approx(0.0, abs=1e-6)  # pure scale
    assert depth_loss(rendered, target, "l1").item() == pytest.approx((2 + 4 + 8) / 3, rel=1e-6)
    assert depth_loss(rendered, torch.zeros_like(target)).item() == 0.0


TINY = {"backbone": "resnet18", "neck_channels": 16, "feature_channels": 8, "lift_downsample": 4,
        "volume_channels": 4, "volume_blocks": [1, 1], "contraction": 0.66667}


def tiny_batch(cameras: int = 2, size=(32, 48), render=(6, 8)):
    """Random keyframe images, two random sources per camera moved 1 m, 2D semantics and depth, cameras looking
    out along +x and -y."""
    generator = torch.Generator().manual_seed(1)
    height, width = size
    K = torch.tensor([[40.0, 0.0, (width - 1) / 2], [0.0, 40.0, (height - 1) / 2], [0.0, 0.0, 1.0]])
    poses = []
    for yaw in (0.0, -math.pi / 2)[:cameras]:
        T = torch.eye(4)
        forward, right = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0]), torch.tensor([math.sin(yaw), -math.cos(yaw), 0.0])
        T[:3, :3] = torch.stack([right, torch.tensor([0.0, 0.0, -1.0]), forward], dim=1)
        T[2, 3] = 1.5
        poses.append(T)
    source_T_cam = torch.eye(4).repeat(1, cameras, 2, 1, 1)
    source_T_cam[..., 2, 3] = torch.tensor([-1.0, 1.0])
    render_K = K.clone()
    render_K[:2] *= render[1] / width
    return {
        "images": torch.randint(0, 256, (1, cameras, 3, height, width), generator=generator, dtype=torch.uint8),
        "intrinsics": K.expand(1, cameras, 3, 3),
        "ego_T_cam": torch.stack(poses)[None],
        "render_intrinsics": render_K.expand(1, cameras, 3, 3),
        "source_images": torch.randint(0, 256, (1, cameras, 2, 3, height, width), generator=generator, dtype=torch.uint8),
        "source_T_cam": source_T_cam,
        "semantics": torch.randint(0, 18, (1, cameras, height, width), generator=generator, dtype=torch.uint8),
        "depth": torch.rand(1, cameras, height, width, generator=generator) * 30,
    }


@pytest.mark.parametrize("term", ["photometric", "smoothness", "semantic", "entropy", "distortion", "depth"])
def test_every_term_sends_gradient_to_the_volume_and_the_image_encoder(term):
    torch.manual_seed(2)
    model = RenderingOccModel(config_from_dict(ModelConfig, TINY), RenderConfig(size=(6, 8), chunk_rays=40)).train()
    with torch.no_grad():  # p ~ 1e-3 per sample: not every ray saturates (prob: opacity exactly 1, no entropy gradient)
        model.voxel_cnn.head.bias[FREE] = 7.0
    batch = tiny_batch()
    weights = {f"{name}_weight": float(name == term) for name in
               ("photometric", "smoothness", "semantic", "entropy", "distortion", "depth")}
    criterion = RenderingLoss(RenderLossConfig(**weights), class_weights_from_counts(OCCNERF_CLASS_FREQUENCIES))
    outputs = model(batch["images"], batch["intrinsics"], batch["ego_T_cam"], batch["render_intrinsics"], occ3d=False)
    outputs["volume"].retain_grad()
    losses = criterion(outputs, batch["images"], batch["intrinsics"], batch["source_images"], batch["source_T_cam"],
                       semantics=batch["semantics"], depth=batch["depth"])
    assert set(losses) == {"loss", term} and losses["loss"].item() == pytest.approx(losses[term].item())
    losses["loss"].backward()
    assert outputs["volume"].grad.abs().sum().item() > 0
    assert model.backbone.conv1.weight.grad.abs().sum().item() > 0


def test_rendering_loss_sums_its_weighted_terms_and_names_missing_inputs():
    torch.manual_seed(3)
    model = RenderingOccModel(config_from_dict(ModelConfig, TINY), RenderConfig(size=(6, 8))).eval()
    batch = tiny_batch()
    config = config_from_dict(RenderLossConfig, {"depth_weight": 0.5})
    criterion = RenderingLoss(config, class_weights_from_counts(OCCNERF_CLASS_FREQUENCIES))
    with torch.no_grad():
        outputs = model(batch["images"], batch["intrinsics"], batch["ego_T_cam"], batch["render_intrinsics"])
        losses = criterion(outputs, batch["images"], batch["intrinsics"], batch["source_images"],
                           batch["source_T_cam"], semantics=batch["semantics"], depth=batch["depth"])
    assert list(losses) == ["loss", "photometric", "smoothness", "semantic", "entropy", "distortion", "depth"]
    weights = config.term_weights()
    expected = sum(weights[name] * losses[name] for name in losses if name != "loss")
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert (weights["semantic"], weights["smoothness"], weights["entropy"]) == (0.05, 0.001, 0.01)
    with pytest.raises(ValueError, match="need 'source_images'"):
        criterion(outputs, batch["images"], batch["intrinsics"], semantics=batch["semantics"], depth=batch["depth"])
