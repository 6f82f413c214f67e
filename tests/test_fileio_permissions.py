import os

from easyocc.fileio import save_json, save_npz


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """Files written through a temporary name get what a plain open() would give, not mkstemp's owner-only 0600."""
    save_json(tmp_path / "x.json", {"a": 1})
    save_npz(tmp_path / "x.npz", a=__import__("numpy").zeros(2))
    mask = os.umask(0)
    os.umask(mask)
    for name in ("x.json", "x.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask
