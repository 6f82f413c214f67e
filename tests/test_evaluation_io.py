"""The fast npz member reader behind the evaluator's decoding (fileio.read_zip_member, occ3d readers)."""

import zipfile

import numpy as np
import pytest

from easyocc.errors import InputError
from easyocc.fileio import read_zip_member
from easyocc.occ3d import FREE, GRID_SHAPE, read_labels, read_prediction, write_labels, write_prediction


@pytest.fixture
def volumes():
    rng = np.random.default_rng(0)
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 0] = rng.integers(11, 15, GRID_SHAPE[:2])
    return sem, (rng.random(GRID_SHAPE) < 0.3).astype(np.uint8), (rng.random(GRID_SHAPE) < 0.2).astype(np.uint8)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_members_equal_zipfile_s_reading(tmp_path, save):
    path = tmp_path / "a.npz"
    save(path, first=np.arange(1000, dtype=np.int32), second=np.zeros((3, 4), np.uint8))
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            assert read_zip_member(archive, name) == archive.read(name)
        with pytest.raises(KeyError):
            read_zip_member(archive, "absent.npy")


def test_damaged_member_is_refused(tmp_path, volumes):
    path = tmp_path / "labels.npz"
    write_labels(path, *volumes)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("mask_lidar.npy")
    data = bytearray(path.read_bytes())
    # Flip bits in the middle of the deflated stream: either it no longer inflates or its CRC no longer matches.
    middle = info.header_offset + 30 + len("mask_lidar.npy") + info.compress_size // 2
    data[middle] ^= 0x55
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive, pytest.raises(zipfile.BadZipFile):
        read_zip_member(archive, "mask_lidar.npy")
    with pytest.raises(InputError, match="corrupt array 'mask_lidar'"):
        read_labels(path)
    assert read_labels(path, keys=("semantics",)).semantics.shape == GRID_SHAPE  # the other members still read


def test_readers_return_equal_arrays_writable_or_not(tmp_path, volumes):
    path, pred_path = tmp_path / "labels.npz", tmp_path / "tok.npz"
    write_labels(path, *volumes)
    write_prediction(pred_path, volumes[0])
    copy, view = read_labels(path), read_labels(path, writable=False)
    for key, expected in zip(("semantics", "mask_lidar", "mask_camera"), volumes):
        np.testing.assert_array_equal(getattr(copy, key), expected)
        np.testing.assert_array_equal(getattr(view, key), expected)
        assert getattr(copy, key).flags.writeable and not getattr(view, key).flags.writeable
    assert read_prediction(pred_path).flags.writeable and not read_prediction(pred_path, writable=False).flags.writeable
    np.testing.assert_array_equal(read_prediction(pred_path, writable=False), volumes[0])
