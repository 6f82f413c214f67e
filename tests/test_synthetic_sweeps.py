"""SimScenes camera sweeps: the 12 Hz images between keyframes, chained and posed as in nuScenes, and the dataset
index's neighbouring camera frames (OccNeRF's frame ids -1 and +1) read from them."""

import filecmp
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SWEEPS_SIMSCENES, TINY_SIMSCENES
from easyocc import cli
from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex
from easyocc.data.synthetic import layout
from easyocc.data.synthetic.cast import build_scene
from easyocc.data.synthetic.generate import (
    CAMERA_FRAMES_PER_KEYFRAME,
    KEYFRAME_INTERVAL_US,
    SynthConfig,
    generate_dataset,
    render_rig_camera,
    scene_world,
    sweep_steps,
)
from easyocc.data.synthetic.render import render_camera
from easyocc.data.synthetic.sensors import SENSORS
from easyocc.geometry import make_transform, relative_transform, reproject_depth, sample_bilinear
from easyocc.occ3d import DYNAMIC_CLASSES

PERIOD_US = KEYFRAME_INTERVAL_US / CAMERA_FRAMES_PER_KEYFRAME  # 83,333.3 us: 12 Hz
CONFIG = SynthConfig(**SWEEPS_SIMSCENES)


@pytest.fixture(scope="module")
def nusc(sweeps_simscenes):
    from nuscenes.nuscenes import NuScenes

    return NuScenes("v1.0-mini", str(sweeps_simscenes), verbose=False)


@pytest.fixture(scope="module")
def index(sweeps_simscenes):
    return DatasetIndex(sweeps_simscenes, "v1.0-mini")


def _chain(nusc, sd_token: str) -> list[dict]:
    """The whole prev/next chain through a sample_data record, in order."""
    chain = [nusc.get("sample_data", sd_token)]
    while chain[0]["prev"]:
        chain.insert(0, nusc.get("sample_data", chain[0]["prev"]))
    while chain[-1]["next"]:
        chain.append(nusc.get("sample_data", chain[-1]["next"]))
    return chain


def _scene_time(index, kf_or_scene_name: str, timestamp: int) -> tuple[int, float]:
    """(scene index, seconds from the scene's first keyframe): the time frame of ``scene_world``."""
    names = [s.name for s in index.scenes]
    scene = index.scenes[names.index(kf_or_scene_name)]
    return names.index(kf_or_scene_name), (timestamp - scene.keyframes[0].timestamp) * 1e-6


# ------------------------------------------------------------------------------------------ the tables
def test_sweep_steps_per_mode():
    assert sweep_steps("all", 0, 3) == (1, 2, 3, 4, 5)
    assert sweep_steps("neighbours", 1, 3) == (1, 5)  # +1 of keyframe 1, -1 of keyframe 2
    assert sweep_steps("none", 0, 3) == ()
    assert sweep_steps("all", 2, 3) == ()  # nothing after the last keyframe, as in nuScenes
    with pytest.raises(ValueError, match="sweeps must be one of"):
        SynthConfig(sweeps="some")


def test_devkit_loads_sweeps_chained_per_camera_in_time_order(nusc, sweeps_simscenes):
    keyframes, scenes = SWEEPS_SIMSCENES["keyframes"], SWEEPS_SIMSCENES["scenes"]
    per_scene = keyframes + (keyframes - 1) * (CAMERA_FRAMES_PER_KEYFRAME - 1)  # 3 keyframes + 2 x 5 sweeps
    cameras = [sd for sd in nusc.sample_data if sd["channel"].startswith("CAM_")]
    assert len(cameras) == scenes * len(CAMERA_NAMES) * per_scene
    for scene in nusc.scene:
        samples = [nusc.get("sample", scene["first_sample_token"])]
        while samples[-1]["next"]:
            samples.append(nusc.get("sample", samples[-1]["next"]))
        for name in CAMERA_NAMES:
            chain = _chain(nusc, samples[0]["data"][name])
            # The chain starts and ends with the scene's first and last keyframe images; keyframes every 6th.
            assert len(chain) == per_scene
            assert [sd["token"] for sd in chain[::CAMERA_FRAMES_PER_KEYFRAME]] == [s["data"][name] for s in samples]
            assert [sd["is_key_frame"] for sd in chain] == [i % CAMERA_FRAMES_PER_KEYFRAME == 0
                                                             for i in range(per_scene)]
            steps = np.diff([sd["timestamp"] for sd in chain])
            assert (np.abs(steps - PERIOD_US) <= 1).all()
            for i, sd in enumerate(chain):
                assert sd["channel"] == name
                assert nusc.get("ego_pose", sd["ego_pose_token"])["timestamp"] == sd["timestamp"]
                if not sd["is_key_frame"]:
                    # A sweep belongs to the next keyframe's sample (what the devkit's get_boxes interpolates to).
                    assert sd["sample_token"] == samples[i // CAMERA_FRAMES_PER_KEYFRAME + 1]["token"]
                    assert sd["filename"].startswith(f"sweeps/{name}/")
                    assert not layout.sim_depth_path(sweeps_simscenes, sd["filename"]).exists()
                    image = Image.open(sweeps_simscenes / sd["filename"])
                    assert image.format == "JPEG" and image.size == (sd["width"], sd["height"])
    # get_sample_data works on a sweep: its file, the camera's intrinsics, boxes interpolated to its time.
    sweep = next(sd for sd in cameras if not sd["is_key_frame"] and sd["channel"] == "CAM_FRONT")
    path, boxes, K = nusc.get_sample_data(sweep["token"])
    assert Path(path) == sweeps_simscenes / sweep["filename"] and Path(path).is_file()
    np.testing.assert_allclose(K, nusc.get("calibrated_sensor", sweep["calibrated_sensor_token"])["camera_intrinsic"])
    assert len(boxes) > 0


def test_sweep_modes_write_nested_sets_and_keep_keyframes_byte_identical(tmp_path):
    """none, neighbours and all differ only by the sweeps (and the prev/next links): the world, the keyframes'
    files and the sweeps both modes write are the same bytes, so sweeps never perturb the random streams."""
    common = ["--scenes", "1", "--keyframes", "3", "--image-size", "64", "36", "--seed", "3", "--quiet"]
    roots = {}
    for mode in ("none", "neighbours", "all"):
        roots[mode] = tmp_path / mode
        assert cli.main(["synth", "--out", str(roots[mode]), "--sweeps", mode, *common]) == 0

    def files(root, top):
        return sorted(str(p.relative_to(root)) for p in (root / top).rglob("*") if p.is_file())

    for top in ("samples", layout.SIM_DIR, "gts", "maps"):
        reference = files(roots["none"], top)
        for mode in ("neighbours", "all"):
            assert files(roots[mode], top) == reference
            _, mismatch, errors = filecmp.cmpfiles(roots["none"], roots[mode], reference, shallow=False)
            assert not mismatch and not errors
    assert not (roots["none"] / "sweeps").exists()
    neighbours, every = files(roots["neighbours"], "sweeps"), files(roots["all"], "sweeps")
    assert len(neighbours) == 6 * 2 * 2 and len(every) == 6 * 2 * 5 and set(neighbours) < set(every)
    _, mismatch, errors = filecmp.cmpfiles(roots["neighbours"], roots["all"], neighbours, shallow=False)
    assert not mismatch and not errors
    # In neighbours mode the index finds the same -1 / +1 images as in all mode.
    indexes = {mode: DatasetIndex(roots[mode], "v1.0-mini") for mode in ("neighbours", "all")}
    for kf in indexes["all"].scenes[0].keyframes:
        for name in CAMERA_NAMES:
            for offset in (-1, 1):
                a, b = (indexes[m].keyframes[kf.token].neighbour(name, offset) for m in ("all", "neighbours"))
                assert (a is None) == (b is None) and (a is None or a.relpath == b.relpath)


# ------------------------------------------------------------------------------------------- the index
def test_index_neighbours_are_one_camera_period_from_the_keyframe_image(index):
    for scene in index.scenes:
        last = len(scene.keyframes) - 1
        for kf in scene.keyframes:
            for name, cam in kf.cameras.items():
                before, after = kf.neighbour(name, -1), kf.neighbour(name, 1)
                assert (before is None) == (kf.index == 0) and (after is None) == (kf.index == last)
                for offset, frame in ((-1, before), (1, after)):
                    if frame is None:
                        continue
                    # The camera timing model: LiDAR time + the camera's offset + offset x 1/12 s.
                    expected = kf.timestamp + SENSORS[name].offset_us + offset * PERIOD_US
                    assert abs(frame.timestamp - expected) <= 1
                    assert not frame.is_key_frame and frame.image_path.is_file()
                    assert frame.relpath.startswith(f"sweeps/{name}/") and frame.name == name
                    np.testing.assert_array_equal(frame.K, cam.K)
                    np.testing.assert_array_equal(frame.ego_T_cam, cam.ego_T_cam)
                    # Its own ego pose: the ego moved (5.5-9.5 m/s) between the two images.
                    moved = np.linalg.norm(frame.global_T_ego[:3, 3] - cam.global_T_ego[:3, 3])
                    assert 5.5 * PERIOD_US * 1e-6 * 0.95 < moved < 9.5 * PERIOD_US * 1e-6 * 1.05
    copy = pickle.loads(pickle.dumps(index.scenes))
    kf = copy[0].keyframes[1]
    assert kf.neighbour("CAM_BACK", 1).timestamp == index.keyframes[kf.token].neighbour("CAM_BACK", 1).timestamp


def test_index_without_sweeps_has_no_neighbours(tiny_simscenes):
    """A dataset without sweeps chains keyframe images 0.5 s apart: more than one step may span, so no neighbour;
    the caller may allow longer steps, or build the index without neighbours."""
    assert TINY_SIMSCENES["sweeps"] == "none"
    index = DatasetIndex(tiny_simscenes, "v1.0-mini")
    frames = [kf.neighbour(c, o) for kf in index.keyframes.values() for c in CAMERA_NAMES for o in (-1, 1)]
    assert len(frames) == len(index) * 12 and all(f is None for f in frames)
    lenient = DatasetIndex(tiny_simscenes, "v1.0-mini", max_neighbour_step_us=600_000)
    kf0, kf1 = lenient.scenes[0].keyframes[:2]
    assert lenient.keyframes[kf1.token].neighbour("CAM_FRONT", -1).relpath == kf0.cameras["CAM_FRONT"].relpath
    bare = DatasetIndex(tiny_simscenes, "v1.0-mini", neighbour_offsets=())
    with pytest.raises(KeyError, match="no neighbour -1 of CAM_FRONT"):
        bare.scenes[0].keyframes[0].neighbour("CAM_FRONT", -1)
    with pytest.raises(ValueError, match="offset 0"):
        DatasetIndex(tiny_simscenes, "v1.0-mini", neighbour_offsets=(0,))


# ---------------------------------------------------------------------------------- images and poses
def test_sweep_images_show_the_world_at_their_own_timestamp(index, nusc):
    """Re-render the world at each middle sweep's timestamp (generation is deterministic): the JPEG matches it up to
    compression, its ego_pose row is the trajectory's pose then, and the moving agents' pixels match the agents
    posed at that time, not 0.25 s earlier (the keyframe image's time)."""
    size = tuple(SWEEPS_SIMSCENES["image_size"])
    moving_err = {"own": 0.0, "keyframe": 0.0}
    moving_pixels, whole = 0, []
    for scene in index.scenes:
        scene_index, _ = _scene_time(index, scene.name, scene.keyframes[0].timestamp)
        world = scene_world(CONFIG, scene_index)
        moving = np.concatenate([np.arange(*world.agent_part_range[a]) for a, agent in enumerate(world.agents)
                                 if agent.moving])
        for kf in scene.keyframes[:-1]:
            for name, cam in kf.cameras.items():
                sd = nusc.get("sample_data", cam.sample_data_token)
                for _ in range(3):  # the middle sweep, 3 periods after the keyframe image
                    sd = nusc.get("sample_data", sd["next"])
                assert not sd["is_key_frame"]
                _, t = _scene_time(index, scene.name, sd["timestamp"])
                pose = nusc.get("ego_pose", sd["ego_pose_token"])
                np.testing.assert_allclose(make_transform(pose["rotation"], pose["translation"]),
                                           world.global_T_ego(t), atol=1e-6)
                jpeg = np.asarray(Image.open(Path(index.dataroot) / sd["filename"]), np.float64)
                render, _, local_T_cam = render_rig_camera(world, name, t, *size)
                whole.append(np.abs(jpeg - render.rgb).mean())
                _, t_kf = _scene_time(index, scene.name, cam.timestamp)
                early = render_camera(build_scene(world.solids_at(t_kf)), local_T_cam,
                                      SENSORS[name].intrinsics(*size), *size, world.sun, world.roads)
                on_agents = np.isin(render.solid, moving) | np.isin(early.solid, moving)
                moving_pixels += on_agents.sum()
                moving_err["own"] += np.abs(jpeg - render.rgb)[on_agents].sum()
                moving_err["keyframe"] += np.abs(jpeg - early.rgb)[on_agents].sum()
    assert np.mean(whole) < 3.0  # JPEG quality 92 at 320x180: measured 1.8
    assert moving_pixels > 200
    assert moving_err["own"] < 0.2 * moving_err["keyframe"], moving_err  # measured 0.06


def _photometric_errors(index, root, offset: int, scales) -> dict:
    """Mean absolute RGB error (0-255) over the static pixels of every keyframe image that has a neighbour at
    ``offset``: the keyframe image against the neighbour sampled where the keyframe's exact depth times ``scale``
    lands (back-project with K, move through the global frame with both images' own poses, project, sample
    bilinearly); scale None compares the same pixel (no warp). Pixels count where every warp lands inside."""
    sums, count = {s: 0.0 for s in scales}, 0
    for kf in index.keyframes.values():
        for name, cam in kf.cameras.items():
            sweep = kf.neighbour(name, offset)
            if sweep is None:
                continue
            source = np.asarray(Image.open(cam.image_path), np.float64).reshape(-1, 3)
            target = np.asarray(Image.open(sweep.image_path), np.float64)
            depth = np.load(layout.sim_depth_path(root, cam.relpath))
            semantic = np.asarray(Image.open(layout.sim_semantic_path(root, cam.relpath)))
            static = (np.isfinite(depth) & ~np.isin(semantic, DYNAMIC_CLASSES)).reshape(-1)
            sweep_T_cam = relative_transform(sweep.global_T_cam, cam.global_T_cam)
            samples = {}
            for s in scales:
                if s is None:
                    samples[s] = (target.reshape(-1, 3), np.ones(len(source), dtype=bool))
                else:
                    uv = reproject_depth(depth * s, cam.K, sweep.K, sweep_T_cam).reshape(-1, 2)
                    samples[s] = sample_bilinear(target, uv)
            keep = static & np.logical_and.reduce([valid for _, valid in samples.values()])
            for s, (values, _) in samples.items():
                sums[s] += np.abs(values[keep] - source[keep]).mean(axis=1).sum()
            count += keep.sum()
    assert count > 100_000
    return {s: total / count for s, total in sums.items()}


@pytest.mark.parametrize("offset", [-1, 1])
def test_warping_keyframes_into_their_sweeps_with_the_exact_depth(index, sweeps_simscenes, offset):
    """Sweeps, poses, timestamps, intrinsics and the warp together: the photometric error of the keyframe image
    warped into its neighbouring sweep is smallest at the exact depth (scaling it by 0.95 or 1.05 is already worse),
    and far below no warp at all. At 1/12 s the ego moves 0.5-0.8 m, so a 20 % depth error shifts most pixels by
    about a pixel: the margin to the 1.2-scaled warp is modest next to the error floor (JPEG, point-sampled
    aliasing, disocclusions), which is why the minimum itself is the sharp check (measured at seed 0:
    exact / x1.2 = 0.81 / 0.82, exact / no warp = 0.46 / 0.45 for +1 / -1)."""
    scales = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, None)
    err = _photometric_errors(index, sweeps_simscenes, offset, scales)
    assert min((s for s in scales if s is not None), key=err.get) == 1.0, err
    assert err[1.0] < 0.9 * err[1.2] and err[1.0] < 0.9 * err[0.8], err
    assert err[1.0] < 0.6 * err[None], err
    assert err[1.0] < 8.0, err


def test_a_manifest_from_before_sweeps_counts_as_a_finished_world_without_sweeps(tmp_path):
    from dataclasses import asdict

    from easyocc.data.synthetic.generate import MANIFEST, is_finished_dataset

    config = SynthConfig(scenes=1, keyframes=1, image_size=(64, 36), sweeps="none")
    old = json.loads(json.dumps(asdict(config)))
    del old["sweeps"]  # SimScenes wrote keyframe images only before the option existed
    (tmp_path / MANIFEST).write_text(json.dumps({"complete": True, "config": old}))
    assert is_finished_dataset(tmp_path, config)
    assert not is_finished_dataset(tmp_path, SynthConfig(scenes=1, keyframes=1, image_size=(64, 36)))
