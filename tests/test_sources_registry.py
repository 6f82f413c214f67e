"""Choosing sources by name: the argument groups, building from parsed arguments, one-line errors."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sources_util import sim_scene

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.sources.cache import CachedDepth, CachedSemantics
from easyocc.labels.sources.noise import NOISE_PRESETS
from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics
from easyocc.labels.sources.registry import (
    DEPTH_SOURCES,
    SEMANTIC_SOURCES,
    add_source_arguments,
    require_path,
    sources_from_args,
)


def parse(*argv: str, **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_source_arguments(parser, **defaults)
    return parser.parse_args(list(argv))


def test_oracle_sources_from_args(tmp_path):
    camera, semantics, _ = sim_scene(tmp_path)
    sem, dep = sources_from_args(parse("--semantics", "oracle", "--depth", "oracle"), tmp_path)
    assert isinstance(sem, OracleSemantics) and isinstance(dep, OracleDepth)
    assert sem.noise.is_zero() and dep.noise.is_zero()
    np.testing.assert_array_equal(sem.semantics(camera), semantics)


def test_oracle_noise_preset_and_overrides(tmp_path):
    sem, dep = sources_from_args(parse("--oracle-noise", "realistic", "--oracle-confusion", "0.2",
                                       "--oracle-depth-noise", "0", "--oracle-seed", "7"), tmp_path)
    realistic = NOISE_PRESETS["realistic"]
    assert sem.noise.confusion_rate == 0.2 and sem.noise.boundary_px == realistic.semantics.boundary_px
    assert dep.noise.relative_std == 0 and dep.noise.scale_std == realistic.depth.scale_std
    assert sem.seed == dep.seed == 7


def test_cache_dir_wraps_both_sources(tmp_path):
    sem, dep = sources_from_args(parse("--cache-dir", str(tmp_path / "cache")), tmp_path)
    assert isinstance(sem, CachedSemantics) and isinstance(sem.source, OracleSemantics)
    assert isinstance(dep, CachedDepth) and dep.folder.root.parent == tmp_path / "cache"


def test_defaults_are_the_callers_choice():
    args = parse(default_semantics="npy", default_depth="npy")
    assert (args.semantics, args.depth, args.device, args.cache_dir) == ("npy", "npy", "auto", None)


def test_every_registered_source_is_listed_in_the_help():
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    text = parser.format_help()
    for name in (*SEMANTIC_SOURCES, *DEPTH_SOURCES):
        assert name in text


@pytest.mark.parametrize("argv, message", [
    (("--semantics", "segformer"), "unknown semantic source 'segformer' (known: "),
    (("--depth", "zoedepth"), "unknown depth source 'zoedepth' (known: "),
    (("--oracle-miss", "2"), "oracle noise: miss_rate must be in [0, 1], got 2.0"),
])
def test_bad_choices_give_one_line_errors(tmp_path, argv, message):
    with pytest.raises(EasyOccError) as err:
        sources_from_args(parse(*argv), tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_require_path_names_the_flag_or_the_path(tmp_path):
    with pytest.raises(EasyOccError, match="the npy source needs --depth-dir"):
        require_path(None, "--depth-dir", "precomputed depth maps", "npy")
    with pytest.raises(InputError) as err:
        require_path(tmp_path / "nowhere", "--depth-dir", "precomputed depth maps", "npy")
    assert str(err.value) == f"{tmp_path / 'nowhere'}: precomputed depth maps not found (--depth-dir)"
    assert require_path(str(tmp_path), "--depth-dir", "x", "npy") == tmp_path


def test_source_spec_is_plain_data_that_builds_what_the_options_build(tmp_path):
    import pickle

    from easyocc.config import ConfigError, config_from_dict
    from easyocc.labels.sources.spec import SourceSpec

    argv = ("--oracle-noise", "realistic", "--oracle-confusion", "0.2", "--cache-dir", str(tmp_path / "cache"))
    from_yaml = config_from_dict(SourceSpec, {"oracle_noise": "realistic", "oracle_confusion": 0.2,
                                              "cache_dir": str(tmp_path / "cache")})
    assert SourceSpec.from_args(parse(*argv)) == from_yaml
    assert pickle.loads(pickle.dumps(from_yaml)) == from_yaml  # what a dataset worker receives
    built, expected = from_yaml.build(tmp_path), sources_from_args(parse(*argv), tmp_path)
    for ours, theirs in zip(built, expected):
        assert type(ours) is type(theirs) and ours.fingerprint() == theirs.fingerprint()
        assert ours.folder.root == theirs.folder.root  # the same cache folder as `easyocc labels`
    assert built[0].source.noise.confusion_rate == 0.2
    with pytest.raises(ConfigError, match="unknown semantic source 'sam2'"):
        config_from_dict(SourceSpec, {"semantics": "sam2"})
    with pytest.raises(ConfigError, match="unknown oracle noise preset 'loud'"):
        config_from_dict(SourceSpec, {"oracle_noise": "loud"})
