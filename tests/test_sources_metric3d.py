"""Metric3D: the canonical-camera transform, and the real torch.hub + checkpoint code path on a tiny local repo."""

from __future__ import annotations

import argparse
import textwrap

import numpy as np
import pytest
import torch
from sources_models import save_metric3d_repo
from sources_util import make_camera

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.sources.metric3d import (
    MEAN_RGB,
    STD_RGB,
    Metric3DConfig,
    Metric3DDepth,
    from_canonical_depth,
    to_canonical_input,
)
from easyocc.labels.sources.registry import add_source_arguments, sources_from_args


def quadrants(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: red where exactly one of (right half, bottom half) holds, black elsewhere."""
    rows, cols = np.mgrid[:height, :width]
    red = ((cols >= width // 2) ^ (rows >= height // 2)) * 255
    return np.stack([red, np.zeros_like(red), np.zeros_like(red)], axis=-1).astype(np.uint8)


def test_canonical_input_resizes_keeping_the_ratio_and_pads_with_the_mean():
    K = np.array([[128.0, 0, 80], [0, 128.0, 45], [0, 0, 1]])
    prepared = to_canonical_input(np.zeros((90, 160, 3), np.uint8), K, (616, 1064))
    scale = 1064 / 160  # the width limits: 90 * 6.65 = 598.5 < 616
    assert prepared.image.shape == (1, 3, 616, 1064) and prepared.resized == (598, 1064)
    assert prepared.pad == (9, 9, 0, 0)
    assert prepared.fx_scaled == pytest.approx(128 * scale)
    black = -np.array(MEAN_RGB) / np.array(STD_RGB)
    np.testing.assert_allclose(prepared.image[0, :, 300, 500], black, rtol=1e-5)
    assert (prepared.image[0, :, :9] == 0).all() and (prepared.image[0, :, -9:] == 0).all()  # mean colour -> 0
    tall = to_canonical_input(np.zeros((160, 90, 3), np.uint8), K, (616, 1064))
    assert tall.resized == (616, 346) and tall.pad == (0, 0, 359, 359)


def test_known_canonical_depth_gives_the_right_metric_depth():
    K = np.array([[128.0, 0, 80], [0, 128.0, 45], [0, 0, 1]])
    prepared = to_canonical_input(np.zeros((90, 160, 3), np.uint8), K, (616, 1064))
    canonical = torch.full((1, 1, 616, 1064), 20.0)
    canonical[..., :9, :] = 999.0  # padding: must be cut off, not smeared into the image
    metric = from_canonical_depth(canonical, prepared, (90, 160))
    # A canonical camera (f = 1000 px) sees the object at 20 m; this camera's focal is fx * 6.65 = 851.2 px.
    np.testing.assert_allclose(metric.numpy(), 20.0 * 851.2 / 1000.0, rtol=1e-5)
    assert from_canonical_depth(canonical * 100, prepared, (90, 160)).max() == 300.0  # clamped


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    folder, checkpoint = save_metric3d_repo(tmp_path_factory.mktemp("metric3d"), gain=2.0)
    hubconf = folder / "hubconf.py"
    hubconf.write_text(hubconf.read_text() + textwrap.dedent('''
        def metric3d_vit_slope(pretrain=False, **kwargs):
            return TinyMetric3D(20.0, 5.0)
    '''))
    return folder, checkpoint


@pytest.mark.parametrize("height, width", [(90, 160), (160, 90)])
def test_hub_model_with_checkpoint_gives_metric_depth_aligned_with_the_image(repo, tmp_path, height, width):
    fx = 0.8 * width
    # PNG, not JPEG: the expected depths below assume exact pixel values.
    camera = make_camera(tmp_path, "samples/CAM_FRONT/q.png", width, height, image=quadrants(height, width))
    source = Metric3DDepth(Metric3DConfig(*repo, model_name="metric3d_vit_slope", device="cpu"))
    depth = source.depth(camera)
    assert depth.shape == (height, width) and depth.dtype == np.float32
    _, model = source.models()
    assert model.seen == [(1, 3, 616, 1064)]
    scale = min(616 / height, 1064 / width)
    red = (255 - MEAN_RGB[0]) / STD_RGB[0]
    black = -MEAN_RGB[0] / STD_RGB[0]
    # gain 2 comes from the checkpoint: without it the depth would be half.
    expected_red, expected_black = (2 * (20 + 5 * v) * fx * scale / 1000 for v in (red, black))
    h2, w2, m = height // 2, width // 2, 3
    np.testing.assert_allclose(depth[: h2 - m, w2 + m :], expected_red, rtol=1e-4)  # top right: red
    np.testing.assert_allclose(depth[h2 + m :, : w2 - m], expected_red, rtol=1e-4)  # bottom left: red
    np.testing.assert_allclose(depth[: h2 - m, : w2 - m], expected_black, rtol=1e-4)
    np.testing.assert_allclose(depth[h2 + m :, w2 + m :], expected_black, rtol=1e-4)


def test_metric_depth_does_not_depend_on_the_image_resolution(repo, tmp_path):
    """The same camera at half resolution (focal halved) sees the same metric depth."""
    full = make_camera(tmp_path / "a", width=320, height=180, fx=256.0)
    half = make_camera(tmp_path / "b", width=160, height=90, fx=128.0)
    source = Metric3DDepth(Metric3DConfig(*repo, model_name="metric3d_vit_tiny", device="cpu"))
    assert source.depth(full).mean() == pytest.approx(source.depth(half).mean(), rel=1e-5)
    assert source.depth(half).mean() == pytest.approx(2 * 20 * 128 * (1064 / 160) / 1000, rel=1e-5)


def test_convnext_models_get_their_input_size(repo, tmp_path):
    source = Metric3DDepth(Metric3DConfig(*repo, model_name="metric3d_convnext_tiny", device="cpu"))
    source.depth(make_camera(tmp_path))
    assert source.models()[1].seen == [(1, 3, 544, 1216)]


def test_checkpoint_and_repo_errors_name_the_file(repo, tmp_path):
    folder, checkpoint = repo
    camera = make_camera(tmp_path)
    unrelated = tmp_path / "other.pth"
    torch.save({"model_state_dict": {"decoder.weight": torch.ones(1)}}, unrelated)
    with pytest.raises(InputError, match=r"other\.pth: matches none of the parameters of 'metric3d_vit_tiny'"):
        Metric3DDepth(Metric3DConfig(folder, unrelated, "metric3d_vit_tiny", "cpu")).depth(camera)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"nonsense")
    with pytest.raises(InputError, match=r"corrupt\.pth: cannot read the checkpoint"):
        Metric3DDepth(Metric3DConfig(folder, corrupt, "metric3d_vit_tiny", "cpu")).depth(camera)
    pickled = tmp_path / "pickled.pth"
    torch.save({"model_state_dict": {"gain": torch.ones(1)}, "args": argparse.Namespace(lr=1)}, pickled)
    refused = r"pickled\.pth: torch\.load\(weights_only=True\) refuses it \(it holds argparse\.Namespace\); pass"
    with pytest.raises(InputError, match=refused):
        Metric3DDepth(Metric3DConfig(folder, pickled, "metric3d_vit_tiny", "cpu")).depth(camera)
    trusted = Metric3DDepth(Metric3DConfig(folder, pickled, "metric3d_vit_tiny", "cpu", trust_checkpoint=True))
    assert trusted.depth(camera).shape == (camera.height, camera.width)
    with pytest.raises(InputError, match=r"hubconf\.py: cannot build 'metric3d_vit_huge'"):
        Metric3DDepth(Metric3DConfig(folder, checkpoint, "metric3d_vit_huge", "cpu")).depth(camera)
    with pytest.raises(InputError, match="no hubconf.py"):
        Metric3DDepth(Metric3DConfig(tmp_path, checkpoint, "metric3d_vit_tiny", "cpu")).depth(camera)
    with pytest.raises(InputError, match="Metric3D checkpoint not found"):
        Metric3DDepth(Metric3DConfig(folder, tmp_path / "none.pth"))


def test_fingerprint_follows_checkpoint_and_model(repo, tmp_path):
    folder, checkpoint = repo
    other = tmp_path / "gain3.pth"
    torch.save({"model_state_dict": {"gain": torch.tensor([3.0])}}, other)
    prints = {Metric3DDepth(Metric3DConfig(folder, ckpt, name)).fingerprint()
              for ckpt, name in ((checkpoint, "metric3d_vit_tiny"), (other, "metric3d_vit_tiny"),
                                 (checkpoint, "metric3d_vit_slope"))}
    assert len(prints) == 3


def test_registry_builds_metric3d(repo, tmp_path):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    folder, checkpoint = repo
    args = parser.parse_args(["--depth", "metric3d", "--metric3d-repo", str(folder), "--metric3d-checkpoint",
                              str(checkpoint), "--metric3d-model", "metric3d_vit_tiny", "--device", "cpu"])
    _, depth = sources_from_args(args, tmp_path)
    assert isinstance(depth, Metric3DDepth) and depth.config.model_name == "metric3d_vit_tiny"
    with pytest.raises(EasyOccError, match="the metric3d source needs --metric3d-checkpoint"):
        sources_from_args(parser.parse_args(["--depth", "metric3d", "--metric3d-repo", str(folder)]), tmp_path)
    with pytest.raises(EasyOccError, match="invalid device 'gpu0'"):
        Metric3DDepth(Metric3DConfig(folder, checkpoint, "metric3d_vit_tiny", "gpu0")).depth(make_camera(tmp_path))
