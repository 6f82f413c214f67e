import argparse

import pytest

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.options import add_config_arguments, config_from_args, parse_shard
from easyocc.labels.config import LabelConfig
from easyocc.occ3d import CLASS_IDS, DYNAMIC_CLASSES

CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_yaml_file_then_flags(tmp_path):
    shipped = parse("--config", str(CONFIGS / "labels.yaml"))
    assert shipped == LabelConfig()  # the shipped file spells out the defaults
    path = tmp_path / "labels.yaml"
    path.write_text("labels:\n  frames: 5\n  dynamic_classes: car,pedestrian\n  carve: false\n")
    config = parse("--config", str(path), "--min-points", "4")
    assert (config.frames, config.min_points, config.carve) == (5, 4, False)
    assert config.dynamic_classes == (CLASS_IDS["car"], CLASS_IDS["pedestrian"])
    assert parse("--dynamic-classes", "none").dynamic_classes == () and parse().dynamic_classes == DYNAMIC_CLASSES


def test_bad_settings_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("frames: 3\nmin_pionts: 2\n")
    with pytest.raises(InputError, match="bad.yaml: unknown key 'min_pionts'"):
        parse("--config", str(path))
    with pytest.raises(EasyOccError, match="min_points must be >= 1"):
        parse("--min-points", "0")
    with pytest.raises(EasyOccError, match="cell_divisions must be 0 or a power of two"):
        parse("--cell-divisions", "3")
    with pytest.raises(EasyOccError, match="unknown class 'cars'"):
        parse("--dynamic-classes", "cars")
    with pytest.raises(EasyOccError, match="--shard"):
        parse_shard("3/3")
    assert parse_shard("1/4") == (1, 4)



def test_set_overrides_the_file_and_the_flags_override_set(tmp_path):
    """``--set`` goes through the typed loader of ``easyocc.config``: between the file and the flags."""
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    path = tmp_path / "labels.yaml"
    path.write_text("frames: 3\nmin_points: 4\n")
    config = config_from_args(parser.parse_args(["--config", str(path), "--set", "frames=5", "carve=false",
                                                 "dynamic_classes=[4]", "--min-points", "1"]))
    assert (config.frames, config.min_points, config.carve, config.dynamic_classes) == (5, 1, False, (4,))
    config = config_from_args(parser.parse_args(["--set", "frames=2", "--frames", "7"]))
    assert config.frames == 7
    with pytest.raises(InputError, match=r"--set.*unknown key 'frame'"):
        config_from_args(parser.parse_args(["--set", "frame=2"]))
    with pytest.raises(InputError, match=r"--set.*frames: expected an integer"):
        config_from_args(parser.parse_args(["--set", "frames=2.5"]))
    with pytest.raises(EasyOccError, match="frames must be >= 0"):
        config_from_args(parser.parse_args(["--set", "frames=-1"]))


def test_label_ideas_flags_and_yaml(tmp_path):
    config = parse("--future-frames", "3", "--pass-through", "--pass-through-ratio", "0.8", "--rare-priority",
                   "--rare-classes", "traffic_cone,barrier", "--rare-min-points", "4")
    assert (config.future_frames, config.pass_through, config.pass_through_ratio) == (3, True, 0.8)
    assert config.rare_priority and config.rare_min_points == 4
    assert config.rare_classes == tuple(sorted((CLASS_IDS["traffic_cone"], CLASS_IDS["barrier"])))
    assert config.manifest()["rare_classes"] == list(config.rare_classes)
    path = tmp_path / "labels.yaml"
    path.write_text("future_frames: 2\npass_through: true\nrare_priority: true\nrare_classes: [pedestrian]\n")
    from_yaml = parse("--config", str(path), "--no-pass-through")
    assert (from_yaml.future_frames, from_yaml.pass_through, from_yaml.rare_priority) == (2, False, True)
    assert from_yaml.rare_classes == (CLASS_IDS["pedestrian"],)
    with pytest.raises(EasyOccError, match="future_frames must be >= 0"):
        parse("--future-frames", "-1")
    with pytest.raises(EasyOccError, match=r"pass_through_ratio must be in \(0, 1\)"):
        parse("--pass-through-ratio", "1")
    with pytest.raises(EasyOccError, match="unknown class 'cone'"):
        parse("--rare-classes", "cone")
    path.write_text("rare_classes: [cone]\n")
    with pytest.raises(InputError, match="labels.yaml: rare_classes: unknown class 'cone'"):
        parse("--config", str(path))
