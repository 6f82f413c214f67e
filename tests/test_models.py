"""The EasyOcc network: torchvision-compatible ResNets, the neck, voxel lifting, the 3D CNN, the whole model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from easyocc.config import config_from_dict
from easyocc.errors import InputError
from easyocc.geometry import invert_transform, project_points, transform_points
from easyocc.models.easyocc import EasyOccModel, ModelConfig, build_model
from easyocc.models.lifting import VoxelLifter, invert_rigid, project_to_image
from easyocc.models.neck import FPNNeck
from easyocc.models.resnet import ResNet, load_pretrained
from easyocc.models.voxel_cnn import VoxelUNet
from easyocc.occ3d import OCC3D_GRID, VoxelGrid
from model_fixtures import torch_single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Sizes of torchvision's state dicts, counted from the architectures: every conv has a weight, every BN a weight,
# bias, running_mean, running_var and num_batches_tracked, plus fc.weight and fc.bias.
# resnet18: 20 conv/BN pairs; resnet34: 36; resnet50: 53; resnet101: 104.
TORCHVISION_KEY_COUNTS = {"resnet18": 20 * 6 + 2, "resnet34": 36 * 6 + 2, "resnet50": 53 * 6 + 2,
                          "resnet101": 104 * 6 + 2}


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_resnet_state_dict_matches_torchvision_names(name):
    state = ResNet(name, with_fc=True).state_dict()
    assert len(state) == TORCHVISION_KEY_COUNTS[name]
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["bn1.num_batches_tracked"].shape == ()
    assert "layer1.0.conv1.weight" in state and "layer4.1.bn2.running_mean" in state
    if name == "resnet50":
        assert state["fc.weight"].shape == (1000, 2048)
        assert state["layer4.2.bn3.running_var"].shape == (2048,)
        assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
        assert state["layer1.0.downsample.1.running_mean"].shape == (256,)
        assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # v1.5: the 3x3 conv strides
    if name == "resnet18":
        assert state["fc.weight"].shape == (1000, 512)
        assert "layer1.0.downsample.0.weight" not in state  # stage 1 keeps 64 channels and stride 1
        assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    if name == "resnet101":
        assert "layer3.22.conv3.weight" in state and "layer3.23.conv3.weight" not in state


def test_resnet_stage_outputs():
    backbone = ResNet("resnet50")
    features = backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [(1, 256, 16, 24), (1, 512, 8, 12), (1, 1024, 4, 6), (1, 2048, 2, 3)]
    assert backbone.stage_channels == (256, 512, 1024, 2048)


def test_pretrained_torchvision_file_loads(tmp_path):
    source = ResNet("resnet18", with_fc=True)  # stands in for torchvision's resnet18 state dict, fc included
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    target = ResNet("resnet18")
    load_pretrained(target, path)
    for key, value in target.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_pretrained_mismatch_is_one_line_error(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(ResNet("resnet50", with_fc=True).state_dict(), path)
    with pytest.raises(InputError) as info:
        load_pretrained(ResNet("resnet18"), path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "unexpected keys: layer1.0.conv3.weight" in message and "(198 in all)" in message  # bottleneck-only
    assert "shape mismatch (file vs resnet18): layer1.0.conv1.weight (64, 64, 1, 1) vs (64, 64, 3, 3)" in message
    assert "missing keys" not in message and "fc." not in message  # the file's fc is ignored, not reported

    state = ResNet("resnet18").state_dict()
    del state["layer4.1.bn2.weight"]
    state["head.extra"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(InputError, match=r"missing keys: layer4\.1\.bn2\.weight; unexpected keys: head\.extra"):
        load_pretrained(ResNet("resnet18"), path)


def test_fpn_neck_strides():
    stages = (64, 128, 256, 512)
    features = [torch.zeros(2, c, 84 // s, 168 // s) for c, s in zip(stages, (1, 2, 4, 8))]
    assert FPNNeck(stages, 32, 16, stride=8)(features).shape == (2, 16, 42, 84)
    assert FPNNeck(stages, 32, 16, stride=4)(features).shape == (2, 16, 84, 168)
    odd = ResNet("resnet18")(torch.zeros(1, 3, 336, 96))  # 336 / 32 = 10.5: stage sizes 84, 42, 21, 11
    assert FPNNeck(stages, 32, 16, stride=8)(odd).shape == (1, 16, 42, 12)


def _camera(yaw_deg: float = 0.0, height: float = 1.5):
    """ego_T_cam of a camera at (0, 0, height) looking along the ego direction at ``yaw_deg`` (OpenCV axes)."""
    yaw = np.deg2rad(yaw_deg)
    forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, forward], axis=1)
    T[:3, 3] = [0.0, 0.0, height]
    return T


K_SMALL = np.array([[40.0, 0.0, 31.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]])  # a 64 x 32 image


def test_projection_matches_geometry_module():
    """Torch projection of voxel centres == the numpy foundation (geometry.project_points), real-looking pose."""
    ego_T_cam = _camera(yaw_deg=30.0)
    ego_T_cam[:3, 3] = [1.7, 0.3, 1.5]
    centers = OCC3D_GRID.centers().reshape(-1, 3)[::97]
    uv, depth = project_points(K_SMALL, transform_points(invert_transform(ego_T_cam), centers, np.float64))
    grid, visible = project_to_image(
        torch.from_numpy(centers), torch.from_numpy(invert_transform(ego_T_cam)).float()[None],
        torch.from_numpy(K_SMALL).float()[None], (32, 64), min_depth=0.1)
    expected_visible = (depth > 0.1) & np.all((uv >= -0.5) & (uv <= np.array([63.5, 31.5])), axis=1)
    got = grid[0].numpy()
    assert np.array_equal(visible[0].numpy(), expected_visible)
    assert expected_visible.sum() > 100
    pixel = (got[expected_visible] + 1) / 2 * np.array([64, 32]) - 0.5  # back to OpenCV pixel coordinates
    np.testing.assert_allclose(pixel, uv[expected_visible], atol=2e-3)


def test_invert_rigid():
    T = torch.from_numpy(_camera(yaw_deg=47.0)).float()
    T[:3, 3] = torch.tensor([3.0, -2.0, 1.0])
    np.testing.assert_allclose((invert_rigid(T) @ T).numpy(), np.eye(4), atol=1e-6)


@pytest.mark.parametrize("stride", [1, 4])
def test_voxel_receives_the_feature_at_its_pixel(stride):
    """One hot feature cell: every voxel gets exactly the bilinear weight of that cell at its projected centre
    (computed here with the numpy geometry module), so the voxel projecting onto the cell receives the value."""
    grid = VoxelGrid((-8.0, -8.0, -1.0), (8.0, 8.0, 3.0), 0.4)
    height, width = 32, 64
    centers = grid.centers().reshape(-1, 3)
    uv, depth = project_points(K_SMALL, transform_points(invert_transform(_camera()), centers, np.float64))
    target_voxel = np.flatnonzero((depth > 3) & np.all((uv > 8) & (uv < [56, 24]), axis=1))[0]
    feature_uv = (uv + 0.5) / stride - 0.5  # OpenCV pixel -> feature-map cell coordinates
    col, row = np.round(feature_uv[target_voxel]).astype(int)
    features = torch.zeros(1, 1, 2, height // stride, width // stride)
    features[0, 0, 0, row, col] = 1.0
    features[0, 0, 1] = 0.25
    ego_T_cam = torch.from_numpy(_camera()).float()[None, None]
    volume = VoxelLifter(grid)(features, torch.from_numpy(K_SMALL).float()[None, None], ego_T_cam, (height, width))
    assert volume.shape == (1, 2 + 4, *grid.shape)

    visible = (depth > 0.1) & np.all((uv >= -0.5) & (uv <= [63.5, 31.5]), axis=1)
    tent = lambda d: np.clip(1 - np.abs(d), 0, None)  # noqa: E731
    expected = np.where(visible, tent(feature_uv[:, 0] - col) * tent(feature_uv[:, 1] - row), 0.0)
    hot = volume[0, 0].reshape(-1).numpy()
    assert hot[target_voxel] >= 0.25  # it projects within half a cell of the hot cell's centre on both axes
    assert (expected > 0).sum() < 0.1 * visible.sum()  # the value stays local
    np.testing.assert_allclose(hot, expected, atol=1e-4)
    # The constant channel is 0.25 wherever the camera sees the voxel and 0 elsewhere; the last = fraction seen.
    np.testing.assert_allclose(volume[0, 1].reshape(-1).numpy(), np.where(visible, 0.25, 0.0), atol=1e-6)
    assert np.array_equal(volume[0, -1].reshape(-1).numpy(), visible.astype(np.float32))
    # Position channels: the voxel centre normalised to [-1, 1].
    np.testing.assert_allclose(volume[0, 2:5].reshape(3, -1).numpy().T, (centers - [0, 0, 1]) / [8, 8, 2], atol=1e-6)


def test_only_cameras_that_see_a_voxel_contribute():
    """Front and back cameras: each voxel averages only the camera(s) that see it, whatever the other holds."""
    grid = VoxelGrid((-8.0, -8.0, -1.0), (8.0, 8.0, 3.0), 0.8)
    lifter = VoxelLifter(grid)
    features = torch.stack([torch.full((1, 4, 8), 2.0), torch.full((1, 4, 8), -6.0)])[None]  # (1, 2, 1, 4, 8)
    ego_T_cam = torch.from_numpy(np.stack([_camera(0.0), _camera(180.0)])).float()[None]
    K = torch.from_numpy(np.stack([K_SMALL, K_SMALL])).float()[None]
    volume = lifter(features, K, ego_T_cam, (32, 64))
    x = torch.from_numpy(grid.centers()[..., 0])
    value, fraction = volume[0, 0], volume[0, -1]
    front, back = (fraction > 0) & (x > 1.0), (fraction > 0) & (x < -1.0)
    assert front.sum() > 20 and back.sum() > 20
    torch.testing.assert_close(value[front], torch.full_like(value[front], 2.0))
    torch.testing.assert_close(value[back], torch.full_like(value[back], -6.0))
    assert torch.all(fraction[front] == 0.5) and torch.all(value[fraction == 0] == 0)


def test_lifting_gradients():
    """Finite differences agree with autograd (float64), and a camera that sees no voxel gets no gradient."""
    grid = VoxelGrid((-4.0, -4.0, -1.0), (4.0, 4.0, 3.0), 0.8)
    away = _camera(0.0)
    away[:3, 3] = [20.0, 0.0, 1.5]  # in front of the grid, looking further away from it
    ego_T_cam = torch.from_numpy(np.stack([_camera(0.0), away]))[None]
    K = torch.from_numpy(np.stack([K_SMALL, K_SMALL]))[None]
    features = torch.randn(1, 2, 2, 8, 16, dtype=torch.float64, requires_grad=True)
    lifter = VoxelLifter(grid).double()
    volume = lifter(features, K, ego_T_cam, (32, 64))
    assert volume.shape == (1, 6, 10, 10, 5) and volume.dtype == torch.float64
    torch.autograd.gradcheck(lambda f: lifter(f, K, ego_T_cam, (32, 64)), (features,))
    volume[:, :2].sum().backward()
    assert features.grad[0, 0].abs().sum() > 0 and features.grad[0, 1].abs().sum() == 0


def test_voxel_unet_shapes_and_odd_sizes():
    net = VoxelUNet(in_channels=5, channels=4, num_classes=18, blocks=(1, 1, 1))
    assert net(torch.zeros(1, 5, 25, 25, 2)).shape == (1, 18, 25, 25, 2)
    assert net(torch.zeros(2, 5, 16, 12, 4)).shape == (2, 18, 16, 12, 4)


TINY = {"backbone": "resnet18", "neck_channels": 16, "feature_channels": 8, "lift_downsample": 4,
        "volume_channels": 4, "volume_blocks": [1, 1]}


def test_model_output_shape_and_gradients():
    torch.manual_seed(0)
    model = build_model(config_from_dict(ModelConfig, TINY))
    images = torch.randint(0, 256, (1, 2, 3, 32, 64), dtype=torch.uint8)
    ego_T_cam = torch.from_numpy(np.stack([_camera(0.0), _camera(180.0)])).float()[None]
    K = torch.from_numpy(np.stack([K_SMALL, K_SMALL])).float()[None]
    logits = model(images, K, ego_T_cam)
    assert logits.shape == (1, 18, 200, 200, 16) and logits.dtype == torch.float32
    logits[..., 3].sum().backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.voxel_cnn.head.weight.grad.abs().sum() > 0
    encoder, volume = model.encoder_parameters(), model.volume_parameters()
    assert len(encoder) + len(volume) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="multiple of the feature stride"):
        model(images[..., :30, :], K, ego_T_cam)


def test_frozen_backbone_batchnorm_stays_in_eval_mode():
    model = EasyOccModel(config_from_dict(ModelConfig, {**TINY, "freeze_backbone_bn": True}))
    model.train()
    assert not model.backbone.bn1.training and model.voxel_cnn.stem[1].training and model.neck.training


def test_pretrained_path_in_model_config(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(ResNet("resnet18", with_fc=True).state_dict(), path)
    config = config_from_dict(ModelConfig, {**TINY, "pretrained": str(path)})
    model = build_model(config)
    assert torch.equal(model.backbone.conv1.weight, torch.load(path)["conv1.weight"])
    with pytest.raises(InputError, match="pretrained weights not found"):
        build_model(config_from_dict(ModelConfig, {**TINY, "pretrained": str(tmp_path / "none.pth")}))
