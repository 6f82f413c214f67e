"""Typed configs from YAML with overrides; bad keys and values are one-line errors naming the file."""

from __future__ import annotations

import pytest

from easyocc.config import ConfigError, apply_overrides, config_from_dict, load_config, save_config
from easyocc.errors import InputError
from easyocc.training.config import TrainConfig


def test_yaml_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nmodel:\n  backbone: resnet18\n  volume_blocks: [1, 2]\ndata:\n  image_size: [96, 160]\n")
    config = load_config(TrainConfig, path, ["optim.epochs=2", "model.pretrained=/x/r18.pth", "data.crop=[0,0,64,160]"])
    assert config.seed == 3 and config.model.backbone == "resnet18" and config.model.volume_blocks == (1, 2)
    assert config.data.image_size == (96, 160) and config.data.input_size == (64, 160)
    assert config.optim.epochs == 2 and config.model.pretrained == "/x/r18.pth"
    assert config.optim.lr == 1e-3  # untouched defaults stay


def test_round_trip(tmp_path):
    config = apply_overrides(TrainConfig(), ["optim.grad_clip=5", "loss.region=all"])
    save_config(tmp_path / "c.yaml", config)
    assert load_config(TrainConfig, tmp_path / "c.yaml") == config
    assert isinstance(config.optim.grad_clip, float)


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  backbon: resnet18\n", "unknown key 'model.backbon'"),
        ("model:\n  backbone: resnet152\n", "model.backbone: 'resnet152' is not one of"),
        ("optim:\n  epochs: two\n", "optim.epochs: expected an integer"),
        ("data:\n  image_size: [10]\n", "data.image_size: expected 2 values"),
        ("optim:\n  epochs: 0\n", "optim: epochs and batch_size must be at least 1"),
        ("data:\n  image_size: [90, 160]\n  crop: [0, 0, 100, 160]\n", "does not fit inside"),
        ("[1, 2]\n", "must hold a mapping"),
        ("model: {backbone: [\n", "invalid YAML"),
        # the option's earlier name: no alias
        ("render:\n  semantics_geometry_detached: true\n", "unknown key 'render.semantics_geometry_detached'"),
        ("render:\n  semantics_gradient: geometry\n", "render.semantics_gradient: 'geometry' is not one of"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_config(TrainConfig, path)
    assert str(info.value).startswith(str(path)) and message in str(info.value) and "\n" not in str(info.value)


def test_bad_overrides():
    with pytest.raises(InputError, match="unknown key 'optim.learning_rate'"):
        load_config(TrainConfig, None, ["optim.learning_rate=1"])
    with pytest.raises(InputError, match="not of the form key=value"):
        load_config(TrainConfig, None, ["optim.lr"])
    with pytest.raises(ConfigError, match="expected true or false"):
        config_from_dict(TrainConfig, {"model": {"freeze_backbone_bn": "yes"}})


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_committed_configs_load_and_fit_the_model(name):
    from pathlib import Path

    from easyocc.models.easyocc import EasyOccModel

    config = load_config(TrainConfig, Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    height, width = config.data.input_size
    assert height % config.model.feature_stride == 0 and width % config.model.feature_stride == 0
    model = EasyOccModel(config.model)
    assert model.lifter.grid.shape == tuple(s // config.model.lift_downsample for s in (200, 200, 16))
    if name == "paper":
        assert config.model.backbone == "resnet101" and config.data.image_size == (336, 672)
        assert model.lifter.grid.shape == (200, 200, 16) and config.optim.epochs == 12
        assert (config.optim.encoder_lr, config.optim.lr) == (1e-4, 1e-3)


def test_rendering_configs_are_occnerfs_settings_and_the_demos_model():
    from dataclasses import replace

    from easyocc.config import resolve_config_path
    from easyocc.models.rendering import RenderingOccModel

    load = lambda name: load_config(TrainConfig, resolve_config_path(name))  # noqa: E731
    occnerf, demo, paper = load("occnerf"), load("occnerf-demo"), load("paper")
    # OccNeRF's configs/nusc-sem.txt and options.py: ResNet-101 at 336 x 672, the contracted 300 x 300 x 24 volume,
    # 180 x 320 renders, its loss weights and optimisation; no 3D labels.
    assert occnerf.model.backbone == "resnet101" and occnerf.data.image_size == (336, 672)
    assert occnerf.model.lift_grid.shape == (300, 300, 24) and occnerf.model.lift_grid.is_occ3d_aligned
    assert occnerf.render.size == (180, 320) and occnerf.render.step == 0.5 and occnerf.render.weighting == "prob"
    weights = occnerf.render_loss.term_weights()
    assert weights == {"photometric": 1.0, "smoothness": 0.001, "semantic": 0.05, "entropy": 0.01,
                       "distortion": 0.01, "depth": 0.0}
    assert occnerf.render_loss.class_weighting == "occnerf" and occnerf.sources.semantics == "occnerf"
    assert (occnerf.optim.encoder_lr, occnerf.optim.lr, occnerf.optim.epochs) == (1e-4, 1e-3, 12)
    assert occnerf.optim.milestones == (10,) and occnerf.loss.pseudo_weight == 0
    # The CPU config: the demo's encoder, lifting grid, 3D CNN, inputs and schedule (like for like with EasyOcc).
    easyocc_demo = load("demo")
    assert demo.model == easyocc_demo.model and demo.data == easyocc_demo.data and demo.optim == easyocc_demo.optim
    assert demo.render is not None and demo.sources.oracle_noise == "realistic" and demo.loss.pseudo_weight == 0
    assert isinstance(RenderingOccModel(demo.model, demo.render), RenderingOccModel)
    # The "+ pseudo" twins differ in the pseudo loss's weight alone; their pseudo loss is EasyOcc's.
    for name, base, easyocc in (("occnerf-pseudo", occnerf, paper), ("occnerf-pseudo-demo", demo, easyocc_demo)):
        twin = load(name)
        assert twin.loss.pseudo_weight == 1.0 and replace(twin, loss=base.loss) == base
        assert twin.loss == easyocc.loss


def test_config_names_resolve_to_the_packaged_configs(tmp_path):
    from easyocc.config import BUILTIN_CONFIG_DIR, resolve_config_path

    assert resolve_config_path("demo") == BUILTIN_CONFIG_DIR / "demo.yaml"
    assert resolve_config_path("paper").read_text() == (BUILTIN_CONFIG_DIR / "paper.yaml").read_text()
    mine = tmp_path / "demo"  # a file of that name wins over the built-in
    mine.write_text("seed: 3\n")
    assert resolve_config_path(mine) == mine
    with pytest.raises(InputError, match=r"nope\.yaml: config file not found \(built-in configs: demo, labels, "
                                         r"occnerf, occnerf-demo, occnerf-pseudo, occnerf-pseudo-demo, paper\)"):
        resolve_config_path("nope.yaml")
    with pytest.raises(InputError, match="config file not found"):
        resolve_config_path(tmp_path / "demo.yaml")
