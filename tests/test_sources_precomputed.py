"""Maps read from disk: precomputed depth/semantics (the npy source) and OccNeRF's released labels."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sources_util import make_camera, street_scene

from easyocc.errors import EasyOccError, InputError
from easyocc.fileio import map_path
from easyocc.labels.sources.maps import write_depth_png, write_label_png, write_npy
from easyocc.labels.sources.occnerf import OCCNERF_TO_OCC3D, OccNeRFSemantics, occnerf_to_occ3d
from easyocc.labels.sources.precomputed import PrecomputedDepth, PrecomputedSemantics
from easyocc.labels.sources.registry import add_source_arguments, sources_from_args
from easyocc.occ3d import CLASS_IDS, FREE, IGNORE


def test_npy_depth_reads_float_npy_with_inf_as_no_depth(tmp_path):
    camera = make_camera(tmp_path / "data")
    _, depth = street_scene()
    write_npy(map_path(tmp_path / "depth", camera.relpath, ".npy"), depth.astype(np.float64))
    got = PrecomputedDepth(tmp_path / "depth").depth(camera)
    assert got.dtype == np.float32 and got.shape == (camera.height, camera.width)
    finite = np.isfinite(depth)
    np.testing.assert_array_equal(got[finite], depth[finite])
    assert (got[~finite] == 0).all()


def test_npy_depth_reads_16_bit_png_in_millimetres(tmp_path):
    camera = make_camera(tmp_path / "data")
    depth = np.random.default_rng(0).uniform(0.5, 60, (camera.height, camera.width)).astype(np.float32)
    depth[:5] = 0
    write_depth_png(map_path(tmp_path / "depth", camera.relpath, ".png"), depth)
    got = PrecomputedDepth(tmp_path / "depth").depth(camera)
    np.testing.assert_allclose(got, depth, atol=0.0005 + 1e-6)
    assert (got[:5] == 0).all()


def test_npy_semantics_png_and_npy(tmp_path):
    camera = make_camera(tmp_path / "data")
    semantics, _ = street_scene()
    write_label_png(map_path(tmp_path / "png", camera.relpath, ".png"), semantics)
    write_npy(map_path(tmp_path / "npy", camera.relpath, ".npy"), semantics.astype(np.int64))
    np.testing.assert_array_equal(PrecomputedSemantics(tmp_path / "png").semantics(camera), semantics)
    np.testing.assert_array_equal(PrecomputedSemantics(tmp_path / "npy").semantics(camera), semantics)


def test_npy_bad_inputs_name_the_file(tmp_path):
    camera = make_camera(tmp_path / "data")
    npy = map_path(tmp_path / "d", camera.relpath, ".npy")
    with pytest.raises(InputError, match=r"frame0\.npy: no precomputed depth map for this image \(nor frame0\.png\)"):
        PrecomputedDepth(tmp_path / "d").depth(camera)
    write_npy(npy, np.ones((10, 10), np.float32))
    with pytest.raises(InputError, match=r"frame0\.npy: npy depth has shape \(10, 10\), expected \(90, 160\)"):
        PrecomputedDepth(tmp_path / "d").depth(camera)
    for value, problem in ((np.nan, "NaN"), (-2.0, "negative")):
        bad = np.ones((camera.height, camera.width), np.float32)
        bad[1, 1] = value
        write_npy(npy, bad)
        with pytest.raises(InputError, match=rf"frame0\.npy: npy depth contains {problem}"):
            PrecomputedDepth(tmp_path / "d").depth(camera)
    write_npy(npy, np.ones((camera.height, camera.width), np.uint16))
    with pytest.raises(InputError, match=r"frame0\.npy: depth \.npy has dtype uint16, expected float"):
        PrecomputedDepth(tmp_path / "d").depth(camera)
    npy.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"frame0\.npy: cannot read as \.npy"):
        PrecomputedDepth(tmp_path / "d").depth(camera)
    png = map_path(tmp_path / "s", camera.relpath, ".png")
    write_label_png(png, np.full((camera.height, camera.width), 40, np.uint8))
    with pytest.raises(InputError, match=r"frame0\.png: npy semantics contain value 40"):
        PrecomputedSemantics(tmp_path / "s").semantics(camera)
    write_depth_png(png, np.ones((camera.height, camera.width)))
    with pytest.raises(InputError, match=r"frame0\.png: expected a single-channel 8-bit label image"):
        PrecomputedSemantics(tmp_path / "s").semantics(camera)


def test_occnerf_uncertain_pixels_are_ignored_not_free():
    raw = np.array([-1, 0, 1, 2, 6, 10, 16], dtype=np.int8)
    got = occnerf_to_occ3d(raw)
    names = ("others", "car", "driveable_surface", "vegetation", "pedestrian")
    np.testing.assert_array_equal(got, [IGNORE, *(CLASS_IDS[n] for n in names), FREE])
    # OccNeRF indexes its 17-entry table with -1, which wraps to the last entry: uncertain would become free.
    occnerf_table = OCCNERF_TO_OCC3D[:17]
    assert occnerf_table[np.int8(-1)] == FREE and got[0] != FREE


def test_occnerf_source_reads_raw_int8_files(tmp_path):
    camera = make_camera(tmp_path / "data", "samples/CAM_BACK/n015__CAM_BACK__1.jpg")
    raw = np.random.default_rng(0).integers(-1, 17, (camera.height, camera.width)).astype(np.int8)
    path = tmp_path / "nuscenes_semantic" / "samples" / "CAM_BACK" / "n015__CAM_BACK__1_mask.bin"
    path.parent.mkdir(parents=True)
    raw.tofile(path)
    source = OccNeRFSemantics(tmp_path / "nuscenes_semantic")
    assert source.path(camera) == path
    got = source.semantics(camera)
    assert got.dtype == np.uint8 and got.shape == raw.shape
    assert ((got == IGNORE) == (raw == -1)).all()
    np.testing.assert_array_equal(got[raw == 1], CLASS_IDS["car"])
    raw[4, 4] = 40
    raw.tofile(path)
    with pytest.raises(InputError, match=r"_mask\.bin: contains label 40, expected -1\.\.16"):
        source.semantics(camera)
    raw[:-1].tofile(path)
    with pytest.raises(InputError, match=rf"_mask\.bin: has {raw[:-1].size} bytes, expected {raw.size}"):
        source.semantics(camera)
    path.unlink()
    with pytest.raises(InputError, match=r"_mask\.bin: file not found"):
        source.semantics(camera)


def test_registry_builds_disk_sources_and_checks_their_folders(tmp_path):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    args = parser.parse_args(["--semantics", "occnerf", "--occnerf-dir", str(tmp_path), "--depth", "npy",
                              "--depth-dir", str(tmp_path)])
    semantics, depth = sources_from_args(args, tmp_path)
    assert isinstance(semantics, OccNeRFSemantics) and isinstance(depth, PrecomputedDepth)
    with pytest.raises(EasyOccError, match="the npy source needs --semantics-dir"):
        sources_from_args(parser.parse_args(["--semantics", "npy"]), tmp_path)
    with pytest.raises(InputError, match=r"missing: precomputed depth maps not found \(--depth-dir\)"):
        sources_from_args(parser.parse_args(["--depth", "npy", "--depth-dir", str(tmp_path / "missing")]), tmp_path)
