import zipfile

import numpy as np
import pytest

from conftest import REAL_OCC3D_LABELS, require
from easyocc import occ3d
from easyocc.errors import InputError


def test_contract_constants():
    assert len(occ3d.CLASS_NAMES) == occ3d.NUM_CLASSES == 18
    assert occ3d.CLASS_NAMES[occ3d.FREE] == "free" and occ3d.CLASS_NAMES[11] == "driveable_surface"
    assert occ3d.CLASS_COLORS.shape == (18, 3)
    assert occ3d.GRID_SHAPE == (200, 200, 16)
    assert 0 not in occ3d.OCCNERF_15_CLASSES and 12 not in occ3d.OCCNERF_15_CLASSES
    assert len(occ3d.OCCNERF_15_CLASSES) == 15


def test_voxel_centres_follow_the_contract():
    c = occ3d.OCC3D_GRID.centers()
    assert c.shape == (200, 200, 16, 3)
    np.testing.assert_allclose(c[0, 0, 0], [-39.8, -39.8, -0.8], atol=1e-5)
    np.testing.assert_allclose(c[199, 199, 15], [39.8, 39.8, 5.2], atol=1e-5)
    ijk, inside = occ3d.OCC3D_GRID.indices(c.reshape(-1, 3))
    assert inside.all()
    np.testing.assert_array_equal(ijk, np.indices((200, 200, 16)).reshape(3, -1).T)
    _, inside = occ3d.OCC3D_GRID.indices(np.array([[40.0, 0, 0], [0, 0, -1.01], [-40.0, -40.0, -1.0]]))
    assert inside.tolist() == [False, False, True]


def test_real_occ3d_sample_reads():
    labels = occ3d.read_labels(require(REAL_OCC3D_LABELS))
    assert labels.semantics.shape == (200, 200, 16) and labels.semantics.dtype == np.uint8
    # Facts of the shipped sample: mask_camera is a subset of mask_lidar; ground lies in the lowest layer.
    assert labels.mask_camera.sum() == 43355 and labels.mask_lidar.sum() == 56601
    assert not np.any(labels.mask_camera.astype(bool) & ~labels.mask_lidar.astype(bool))
    assert (labels.semantics[..., 1:] == 11).sum() == 0 < (labels.semantics[..., 0] == 11).sum()


def test_labels_round_trip_and_partial_read(tmp_path):
    rng = np.random.default_rng(0)
    sem = rng.integers(0, 18, occ3d.GRID_SHAPE).astype(np.uint8)
    m1, m2 = (rng.random(occ3d.GRID_SHAPE) < 0.5).astype(np.uint8), np.zeros(occ3d.GRID_SHAPE, np.uint8)
    path = tmp_path / "s" / "t" / "labels.npz"
    occ3d.write_labels(path, sem, m1, m2)
    back = occ3d.read_labels(path)
    np.testing.assert_array_equal(back.semantics, sem)
    np.testing.assert_array_equal(back.mask_lidar, m1)
    assert occ3d.read_labels(path, keys=("semantics",)).mask_camera is None
    assert sorted(p.name for p in path.parent.iterdir()) == ["labels.npz"]


def test_prediction_keys(tmp_path):
    pred = np.full(occ3d.GRID_SHAPE, 17, np.uint8)
    occ3d.write_prediction(tmp_path / "a.npz", pred)
    np.savez_compressed(tmp_path / "b.npz", pred.astype(np.int64))  # official submission: positional arr_0
    for name in ("a.npz", "b.npz"):
        out = occ3d.read_prediction(tmp_path / name)
        assert out.dtype == np.uint8 and (out == 17).all()


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"pred": np.zeros((200, 200, 15), np.uint8)}, r"'pred' has shape \(200, 200, 15\)"),
        ({"pred": np.full((200, 200, 16), 18, np.uint8)}, "'pred' has value 18, expected 0..17"),
        ({"pred": np.full((200, 200, 16), 255, np.uint8)}, "'pred' has value 255"),
        ({"pred": np.zeros((200, 200, 16), np.float32)}, "dtype float32"),
        ({"pred": np.full((200, 200, 16), -1, np.int16)}, r"values in \[-1, -1\]"),
        ({"other": np.zeros(3)}, "no 'pred' or 'arr_0' array"),
    ],
)
def test_bad_predictions_name_the_file(tmp_path, arrays, message):
    path = tmp_path / "tok.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=message) as info:
        occ3d.read_prediction(path)
    assert str(info.value).startswith(str(path))


def test_ignore_value_allowed_in_labels_only(tmp_path):
    sem = np.full(occ3d.GRID_SHAPE, 255, np.uint8)
    ones = np.ones(occ3d.GRID_SHAPE, np.uint8)
    np.savez(tmp_path / "labels.npz", semantics=sem, mask_lidar=ones, mask_camera=ones)
    assert (occ3d.read_labels(tmp_path / "labels.npz").semantics == 255).all()
    np.savez(tmp_path / "bad.npz", semantics=sem, mask_lidar=ones * 2, mask_camera=ones)
    with pytest.raises(InputError, match="'mask_lidar' has value 2, expected 0..1"):
        occ3d.read_labels(tmp_path / "bad.npz")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        occ3d.read_labels(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="not a readable npz"):
        occ3d.read_prediction(tmp_path / "junk.npz")
    # A valid zip directory whose member data is damaged.
    good = tmp_path / "good.npz"
    occ3d.write_prediction(good, np.zeros(occ3d.GRID_SHAPE, np.uint8))
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = z.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 10 : start + 40] = b"\xff" * 30
    (tmp_path / "damaged.npz").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="corrupt array 'pred'|not a readable npz"):
        occ3d.read_prediction(tmp_path / "damaged.npz")
