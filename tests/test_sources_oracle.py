"""The oracle source (SimScenes' exact maps) and its noise model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sources_util import BUILDING, CAR, PED, ROAD, SIDEWALK, make_camera, sim_scene, street_scene, write_sim_maps

from easyocc.data.synthetic.layout import sim_depth_path, sim_semantic_path
from easyocc.errors import InputError
from easyocc.labels.sources.noise import (
    NOISE_PRESETS,
    DepthNoise,
    NoiseConfig,
    SemanticNoise,
    add_depth_noise,
    add_semantic_noise,
    confuse_classes,
    displace_boundaries,
    image_rng,
    miss_small_objects,
    smear_depth_edges,
    smooth_field,
)
from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics
from easyocc.occ3d import CLASS_IDS, FREE, IGNORE

TRUCK = CLASS_IDS["truck"]


def test_exact_oracle_returns_the_maps_with_sky_depth_as_zero(tmp_path):
    camera, semantics, depth = sim_scene(tmp_path)
    got_sem = OracleSemantics(tmp_path).semantics(camera)
    got_depth = OracleDepth(tmp_path).depth(camera)
    np.testing.assert_array_equal(got_sem, semantics)
    assert got_sem.dtype == np.uint8 and (got_sem == FREE).any()
    assert got_depth.dtype == np.float32
    np.testing.assert_array_equal(got_depth[np.isfinite(depth)], depth[np.isfinite(depth)])
    assert (got_depth[semantics == FREE] == 0).all()


def test_noise_is_deterministic_per_image_and_seed(tmp_path):
    camera, _, _ = sim_scene(tmp_path, "samples/CAM_FRONT/a.jpg")
    other, _, _ = sim_scene(tmp_path, "samples/CAM_FRONT/b.jpg")
    noise = NOISE_PRESETS["realistic"]
    sem = OracleSemantics(tmp_path, noise.semantics, seed=3)
    dep = OracleDepth(tmp_path, noise.depth, seed=3)
    again = OracleSemantics(tmp_path, noise.semantics, seed=3)
    np.testing.assert_array_equal(sem.semantics(camera), again.semantics(camera))
    np.testing.assert_array_equal(dep.depth(camera), dep.depth(camera))
    assert not np.array_equal(dep.depth(camera), dep.depth(other))  # same exact maps, another image
    assert not np.array_equal(dep.depth(camera), OracleDepth(tmp_path, noise.depth, seed=4).depth(camera))


def test_fingerprint_changes_with_noise_and_seed(tmp_path):
    exact = OracleDepth(tmp_path).fingerprint()
    noisy = OracleDepth(tmp_path, DepthNoise(relative_std=0.05)).fingerprint()
    other_seed = OracleDepth(tmp_path, DepthNoise(relative_std=0.05), seed=1).fingerprint()
    assert len({exact, noisy, other_seed}) == 3
    assert OracleSemantics(tmp_path).fingerprint() != exact


def test_depth_scale_bias_is_a_pure_scale_and_zero_stays_zero():
    _, depth = street_scene()
    depth = np.where(np.isinf(depth), 0, depth).astype(np.float32)
    out = add_depth_noise(depth, DepthNoise(scale_bias=0.1), image_rng(0, "x", "depth"))
    np.testing.assert_allclose(out, depth * 1.1, rtol=1e-6)


def test_depth_noise_is_smooth_and_proportional_to_distance():
    height, width = 90, 320
    depth = np.tile(np.linspace(5, 80, width, dtype=np.float32), (height, 1))
    out = add_depth_noise(depth, DepthNoise(relative_std=0.1, smooth_px=200), image_rng(0, "x", "depth"))
    relative = out / depth - 1
    assert 0.05 < relative.std() < 0.15
    # Spatially smooth: neighbouring pixels share almost the same relative error (white noise would not).
    assert np.corrcoef(relative[:, :-1].ravel(), relative[:, 1:].ravel())[0, 1] > 0.95
    error = np.abs(out - depth)
    assert error[:, -40:].mean() > 3 * error[:, :40].mean()  # metres of error grow with distance


def test_smooth_field_has_unit_std_and_the_requested_correlation_length():
    field = smooth_field(np.random.default_rng(0), 200, 400, cell_px=50)
    assert field.shape == (200, 400) and field.dtype == np.float32
    assert abs(field.mean()) < 1e-5 and abs(field.std() - 1) < 1e-4
    assert np.corrcoef(field[:, :-5].ravel(), field[:, 5:].ravel())[0, 1] > 0.9
    assert abs(np.corrcoef(field[:, :-200].ravel(), field[:, 200:].ravel())[0, 1]) < 0.5


def test_depth_edges_are_smeared_only_near_discontinuities():
    depth = np.full((20, 40), 10.0, dtype=np.float32)
    depth[:, 20:] = 30.0
    depth[:, 38:] = 0.0  # no depth: never used as a neighbour, never filled
    out = smear_depth_edges(depth, radius_px=2)
    assert 10 < out[5, 19] < 30 and 10 < out[5, 20] < 30  # flying pixels between the two surfaces
    np.testing.assert_array_equal(out[:, :17], 10.0)
    np.testing.assert_array_equal(out[:, 23:38], 30.0)
    np.testing.assert_array_equal(out[:, 38:], 0.0)


def test_boundaries_move_by_a_few_pixels_only_near_boundaries():
    semantics, _ = street_scene(320, 180)
    out = displace_boundaries(semantics, SemanticNoise(boundary_px=6.0), image_rng(0, "x", "semantics"))
    changed = out != semantics
    assert changed.sum() > 50
    # Every changed pixel lies within a few sigma of a pixel of its new class in the exact map.
    from scipy import ndimage

    for class_id in np.unique(out[changed]):
        distance = ndimage.distance_transform_edt(semantics != class_id)
        assert distance[changed & (out == class_id)].max() <= 6.0 * 4 * 320 / 1600 + 1


def test_confusions_swap_whole_objects_and_blobs_of_stuff():
    semantics, _ = street_scene(320, 180)
    out = confuse_classes(semantics, SemanticNoise(confusion_rate=1.0), image_rng(0, "x", "semantics"))
    assert (out[semantics == CAR] == TRUCK).all()  # car's only partner is truck; the object changes as a whole
    assert (out[semantics == BUILDING] == BUILDING).all()  # manmade has no partner
    half = confuse_classes(semantics, SemanticNoise(confusion_rate=0.3), image_rng(1, "x", "semantics"))
    road = semantics == ROAD
    assert 0.25 < (half[road] == SIDEWALK).mean() < 0.35  # a share of the stuff, not all of it


def test_small_objects_are_missed_but_large_ones_kept():
    semantics, _ = street_scene(320, 180)  # the pedestrian is 9x4 pixels, 0.0625 % of the image
    to_background = miss_small_objects(semantics, SemanticNoise(miss_rate=1.0, small_area=0.005, miss_to_ignore=0.0),
                                       image_rng(0, "x", "semantics"))
    assert not (to_background == PED).any()
    assert set(np.unique(to_background[semantics == PED])) <= {BUILDING, SIDEWALK}
    assert (to_background[semantics == CAR] == CAR).all()
    to_ignore = miss_small_objects(semantics, SemanticNoise(miss_rate=1.0, small_area=0.005, miss_to_ignore=1.0),
                                   image_rng(0, "x", "semantics"))
    assert (to_ignore[semantics == PED] == IGNORE).all()
    kept = miss_small_objects(semantics, SemanticNoise(miss_rate=1.0, small_area=0.0005), image_rng(0, "x", "s"))
    np.testing.assert_array_equal(kept, semantics)


def test_presets_grow_in_strength_and_scaled_caps_probabilities():
    errors = {}
    semantics, depth = street_scene(320, 180)
    depth = np.where(np.isinf(depth), 0, depth).astype(np.float32)
    for name in ("none", "mild", "realistic", "strong"):
        noise = NOISE_PRESETS[name]
        sem = add_semantic_noise(semantics, noise.semantics, image_rng(0, "x", "semantics"))
        dep = add_depth_noise(depth, noise.depth, image_rng(0, "x", "depth"))
        valid = depth > 0
        errors[name] = ((sem != semantics).mean(), np.abs(dep[valid] / depth[valid] - 1).mean())
    assert errors["none"] == (0.0, 0.0)
    for weaker, stronger in (("none", "mild"), ("mild", "realistic"), ("realistic", "strong")):
        assert errors[weaker][0] < errors[stronger][0] and errors[weaker][1] < errors[stronger][1]
    assert NoiseConfig(semantics=SemanticNoise(miss_rate=0.6)).scaled(3).semantics.miss_rate == 1.0


def test_noise_settings_are_validated():
    with pytest.raises(ValueError, match="confusion_rate"):
        SemanticNoise(confusion_rate=1.5)
    with pytest.raises(ValueError, match="relative_std"):
        DepthNoise(relative_std=-0.1)
    with pytest.raises(ValueError, match="relative_std"):
        replace(DepthNoise(), relative_std=float("nan"))


def test_missing_and_malformed_maps_give_errors_naming_the_file(tmp_path):
    camera = make_camera(tmp_path)
    with pytest.raises(InputError) as err:
        OracleDepth(tmp_path).depth(camera)
    assert str(sim_depth_path(tmp_path, camera.relpath)) in str(err.value) and "not found" in str(err.value)
    semantics, depth = street_scene(80, 45)  # half the camera's size
    write_sim_maps(tmp_path, camera, semantics, depth)
    with pytest.raises(InputError, match=r"_semantic\.png: oracle semantics have shape \(45, 80\)"):
        OracleSemantics(tmp_path).semantics(camera)
    with pytest.raises(InputError, match=r"_depth\.npy: oracle depth has shape"):
        OracleDepth(tmp_path).depth(camera)
    semantics, depth = street_scene()
    depth[3, 3] = np.nan
    write_sim_maps(tmp_path, camera, semantics, depth)
    with pytest.raises(InputError, match=r"_depth\.npy: oracle depth contains NaN"):
        OracleDepth(tmp_path).depth(camera)
    depth[3, 3] = -1
    write_sim_maps(tmp_path, camera, semantics, depth)
    with pytest.raises(InputError, match=r"_depth\.npy: oracle depth contains negative"):
        OracleDepth(tmp_path).depth(camera)
    sim_semantic_path(tmp_path, camera.relpath).write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"_semantic\.png: cannot read the image"):
        OracleSemantics(tmp_path).semantics(camera)
    sim_depth_path(tmp_path, camera.relpath).write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"_depth\.npy: cannot read as \.npy"):
        OracleDepth(tmp_path).depth(camera)
