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
