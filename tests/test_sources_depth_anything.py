"""Depth Anything V2 metric: the real transformers code path on tiny models saved with save_pretrained."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest
from sources_models import save_depth_anything
from sources_util import make_camera

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.sources.depth_anything import DepthAnythingConfig, DepthAnythingDepth
from easyocc.labels.sources.registry import add_source_arguments, sources_from_args


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # The head's last conv outputs 0.5 everywhere: the metric model predicts 80 * sigmoid(0.5) m at every pixel.
    return save_depth_anything(tmp_path_factory.mktemp("depth-anything"), constant_sigmoid_input=0.5)


def test_metric_depth_at_the_image_size(model_dir, tmp_path):
    camera = make_camera(tmp_path, width=100, height=60)
    source = DepthAnythingDepth(DepthAnythingConfig(model_dir, device="cpu"))
    depth = source.depth(camera)
    assert depth.shape == (60, 100) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, 80.0 / (1.0 + np.exp(-0.5)), rtol=1e-5)
    assert source.fingerprint().startswith("depth-anything:v1:")


def test_random_weights_give_a_valid_depth_map(tmp_path):
    folder = save_depth_anything(tmp_path / "random")
    camera = make_camera(tmp_path, width=70, height=40)
    depth = DepthAnythingDepth(DepthAnythingConfig(folder, device="cpu")).depth(camera)
    assert depth.shape == (40, 70) and np.isfinite(depth).all() and (depth >= 0).all() and (depth <= 80).all()


def test_relative_models_and_missing_folders_are_refused(tmp_path):
    relative = save_depth_anything(tmp_path / "relative", metric=False)
    camera = make_camera(tmp_path)
    with pytest.raises(InputError, match=r"relative: is a 'relative' depth model; easyocc needs metric depth"):
        DepthAnythingDepth(DepthAnythingConfig(relative, device="cpu")).depth(camera)
    with pytest.raises(InputError, match="Depth Anything model folder not found"):
        DepthAnythingDepth(DepthAnythingConfig(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: cannot load the Depth Anything"):
        DepthAnythingDepth(DepthAnythingConfig(tmp_path / "empty", device="cpu")).depth(camera)


def test_corrupt_weights_give_a_one_line_error(model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InputError) as err:
        DepthAnythingDepth(DepthAnythingConfig(broken, device="cpu")).depth(make_camera(tmp_path))
    assert str(err.value).startswith(f"{broken}: cannot load the Depth Anything model (") and "\n" not in str(err.value)


def test_registry_builds_depth_anything(model_dir, tmp_path):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    args = parser.parse_args(["--depth", "depth-anything", "--depth-anything-dir", str(model_dir)])
    _, depth = sources_from_args(args, tmp_path)
    assert isinstance(depth, DepthAnythingDepth) and depth.config.device == "auto"
    with pytest.raises(EasyOccError, match="the depth-anything source needs --depth-anything-dir"):
        sources_from_args(parser.parse_args(["--depth", "depth-anything"]), tmp_path)
