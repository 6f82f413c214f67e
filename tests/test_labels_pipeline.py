import numpy as np
import pytest

from easyocc.errors import InputError
from easyocc.labels import toyworld
from easyocc.labels.config import LabelConfig
from easyocc.labels.pipeline import CameraObserver, SceneLabeler, label_scene
from easyocc.labels.sources.base import DepthSource, SemanticSource
from easyocc.labels.backend import NumbaBackend, label_backend
from easyocc.occ3d import CLASS_IDS, FREE, label_path, read_labels

CAR = CLASS_IDS["car"]


@pytest.fixture(scope="module")
def street():
    return toyworld.street(seed=1)


def labeler(world, config, backend=NumbaBackend(), semantics=None, depth=None):
    observer = CameraObserver(semantics or toyworld.ToySemantics(world), depth or toyworld.ToyDepth(world), config,
                              backend=backend)
    return SceneLabeler(observer, config)


def test_moving_car_leaves_no_trail(street):
    scene = toyworld.make_scene(num_keyframes=5, width=160, height=90, speed=1.0)
    cfg = LabelConfig(frames=4, min_points=1)
    (_, labels), = [x for x in labeler(street, cfg).labels(scene) if x[0].index == 4]
    trail_cfg = LabelConfig(frames=4, min_points=1, dynamic_classes=())
    (_, trail), = [x for x in labeler(street, trail_cfg).labels(scene) if x[0].index == 4]
    # The moving car is at x in [8 + 2*4, 12.5 + 2*4] world = [12, 16.5] in the ego frame (ego at x = 4).
    car_x = np.nonzero(labels.semantics == CAR)
    moving = (car_x[1] > 100) & (car_x[1] < 108)  # y in [0, 3.2] m: the moving car's lane
    x_m = car_x[0][moving] * 0.4 - 40
    assert moving.sum() > 10 and x_m.min() >= 11.5 and x_m.max() <= 17
    trail_x = np.nonzero(trail.semantics == CAR)
    in_lane = (trail_x[1] > 100) & (trail_x[1] < 108)
    assert (trail_x[0][in_lane] * 0.4 - 40).min() < 9  # the past positions smear behind it


def test_scene_labels_resume_and_window(street, tmp_path):
    scene = toyworld.make_scene(num_keyframes=4, width=96, height=54)
    cfg = LabelConfig(frames=2, min_points=1)
    observed = []

    class CountingDepth(toyworld.ToyDepth):
        def depth(self, camera):
            observed.append(camera.sample_data_token)
            return super().depth(camera)

    lab = labeler(street, cfg, depth=CountingDepth(street))
    assert label_scene(lab, scene, tmp_path) == 4
    assert len(observed) == 4 * 6  # each frame lifted once although windows overlap
    labels = read_labels(label_path(tmp_path, scene.name, scene.keyframes[2].token))
    assert (labels.semantics != FREE).sum() > 100 and labels.mask_camera.sum() > labels.mask_lidar.sum() / 2
    # Remove one keyframe: a rerun writes it alone, lifting only its window (keyframes 1..3).
    label_path(tmp_path, scene.name, scene.keyframes[3].token).unlink()
    mtime = label_path(tmp_path, scene.name, scene.keyframes[0].token).stat().st_mtime_ns
    observed.clear()
    assert label_scene(lab, scene, tmp_path) == 1
    assert len(observed) == 3 * 6
    assert label_path(tmp_path, scene.name, scene.keyframes[0].token).stat().st_mtime_ns == mtime
    again = read_labels(label_path(tmp_path, scene.name, scene.keyframes[3].token))
    assert again.semantics.any()


def test_one_keyframe_scene_uses_that_frame(street, tmp_path):
    scene = toyworld.make_scene(name="single", num_keyframes=1, width=96, height=54)
    assert label_scene(labeler(street, LabelConfig()), scene, tmp_path) == 1


@pytest.mark.slow  # five configs, both backends
def test_torch_path_equals_numba_path(street):
    """Both backends give the same labels, with each 2026 idea alone and all together; each idea changes them."""
    scene = toyworld.make_scene(num_keyframes=2, width=160, height=90, yaw_rate=0.1, camera_time_offsets=True)
    maps = {}

    class MemoDepth(toyworld.ToyDepth):  # render each image once for all the configs
        def depth(self, camera):
            key = ("d", camera.sample_data_token)
            return maps[key] if key in maps else maps.setdefault(key, super().depth(camera))

    class MemoSemantics(toyworld.ToySemantics):
        def semantics(self, camera):
            key = ("s", camera.sample_data_token)
            return maps[key] if key in maps else maps.setdefault(key, super().semantics(camera))

    sources = dict(semantics=MemoSemantics(street), depth=MemoDepth(street))
    ideas = dict(future_frames=1), dict(pass_through=True), dict(rare_priority=True, rare_classes=(CAR,))
    before = dict(frames=1, future_frames=0, pass_through=False, min_points=2)
    configs = [LabelConfig(**before), *(LabelConfig(**{**before, **i}) for i in ideas),
               LabelConfig(frames=1, future_frames=1, min_points=2, pass_through=True, rare_priority=True,
                           rare_classes=(CAR,), rare_min_points=2)]
    results = []
    for cfg in configs:
        numba_labels = [l for _, l in labeler(street, cfg, **sources).labels(scene)]
        torch_labels = [l for _, l in labeler(street, cfg, backend=label_backend("torch", "cpu"), **sources).labels(scene)]
        for a, b in zip(numba_labels, torch_labels):
            for key in ("semantics", "mask_camera", "mask_lidar"):
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        results.append(np.stack([l.semantics for l in numba_labels]))
    for changed in results[1:]:
        assert (changed != results[0]).sum() > 0


class BrokenDepth(DepthSource):
    name = "broken"

    def __init__(self, world, how):
        self.exact = toyworld.ToyDepth(world)
        self.how = how

    def depth(self, camera):
        d = self.exact.depth(camera)
        if self.how == "size":
            return d[:-1]
        if self.how == "nan":
            d[3, 3] = np.nan
        if self.how == "negative":
            d[3, 3] = -1.0
        return d


class MissingSemantics(SemanticSource):
    name = "missing"

    def semantics(self, camera):
        raise InputError(camera.image_path.with_suffix(".png"), "semantic map not found")


@pytest.mark.parametrize("how, message", [("size", "shape"), ("nan", "NaN"), ("negative", "negative")])
def test_bad_depth_is_an_error_naming_the_image(street, tmp_path, how, message):
    scene = toyworld.make_scene(num_keyframes=1, width=64, height=36)
    with pytest.raises(InputError, match=message):
        label_scene(labeler(street, LabelConfig(), depth=BrokenDepth(street, how)), scene, tmp_path)
    assert not any(tmp_path.rglob("*.npz"))


def test_missing_map_is_an_error(street, tmp_path):
    scene = toyworld.make_scene(num_keyframes=1, width=64, height=36)
    with pytest.raises(InputError, match="semantic map not found"):
        label_scene(labeler(street, LabelConfig(), semantics=MissingSemantics()), scene, tmp_path)


def test_ego_masks_drop_the_cars_body(street):
    scene = toyworld.make_scene(num_keyframes=1, width=96, height=54)
    cfg = LabelConfig(frames=0)
    body = np.ones((900, 1600), bool)
    body[700:] = False  # a full-resolution mask: resized to the images
    plain = CameraObserver(toyworld.ToySemantics(street), toyworld.ToyDepth(street), cfg).observe(scene.keyframes[0])
    masked = CameraObserver(toyworld.ToySemantics(street), toyworld.ToyDepth(street), cfg,
                            ego_masks={"CAM_BACK": body}).observe(scene.keyframes[0])
    depth = toyworld.ToyDepth(street).depth(scene.keyframes[0].cameras["CAM_BACK"])
    dropped_pixels = ((depth > 0)[42:]).sum()  # rows 42..53 of 54 are the body's 700..899 of 900
    assert plain.cells.num_points - masked.cells.num_points == dropped_pixels > 0
    assert len(plain.rays) - len(masked.rays) == 12 * 96


def test_a_future_frame_fills_an_occluded_static_voxel():
    """A hut hidden behind a tree at keyframe 0 is seen from keyframe 1: with one future frame, keyframe 0's labels
    hold it. A car driving ahead adds nothing from the future (dynamic classes come from the keyframe itself)."""
    from easyocc.labels.toyworld import Box, ToyWorld

    veg, hut = CLASS_IDS["vegetation"], CLASS_IDS["manmade"]
    world = ToyWorld([Box((10, 6, 0), (12, 9, 4), veg), Box((14.5, 10.5, 0), (15.5, 11.5, 2), hut),
                      Box((30, -3, 0), (34.5, -1.2, 1.6), CAR, velocity=(3.0, 0, 0))])
    scene = toyworld.make_scene(num_keyframes=3, width=160, height=90, speed=8.0)
    alone = dict(frames=0, pass_through=False, min_points=1)  # the future frames' effect alone
    past_only = [l for _, l in labeler(world, LabelConfig(future_frames=0, **alone)).labels(scene)]
    future = [l for _, l in labeler(world, LabelConfig(future_frames=1, **alone)).labels(scene)]
    i = lambda x: int((x + 40) / 0.4)  # noqa: E731
    hidden = (slice(i(14.5), i(15.5) + 1), slice(i(10.5), i(11.5) + 1))
    assert not (past_only[0].semantics[hidden] == hut).any() and (future[0].semantics[hidden] == hut).sum() >= 20
    cars_now, cars_future = past_only[0].semantics == CAR, future[0].semantics == CAR
    assert cars_future.sum() > 10 and not (cars_future & ~cars_now).any()
    for key in ("semantics", "mask_camera", "mask_lidar"):  # the last keyframe has no future
        np.testing.assert_array_equal(getattr(past_only[2], key), getattr(future[2], key))


def test_future_frames_are_lifted_once(street):
    scene = toyworld.make_scene(num_keyframes=4, width=96, height=54)
    observed = []

    class CountingDepth(toyworld.ToyDepth):
        def depth(self, camera):
            observed.append(camera.sample_data_token)
            return super().depth(camera)

    cfg = LabelConfig(frames=1, future_frames=2, pass_through=True)
    assert len(list(labeler(street, cfg, depth=CountingDepth(street)).labels(scene))) == 4
    assert len(observed) == 4 * 6
