"""Writing files so that a crash never leaves a half-written file under the final name; reading zip members fast."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

try:  # Optional: zlib-ng inflates Occ3D volumes (long runs of one byte) about ten times faster than zlib.
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - depends on the environment
    import zlib as _zlib

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length


def _current_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            # mkstemp makes the file readable by its owner only; give it the permissions a plain open() would.
            os.chmod(tmp, 0o666 & ~_UMASK)
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_npz(path: str | os.PathLike, compress: bool = True, **arrays: np.ndarray) -> None:
    """``np.savez[_compressed]`` with an atomic rename (and no '.npz' appended behind our back)."""
    with atomic_write(path, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)


def save_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_zip_member(archive: zipfile.ZipFile, name: str) -> bytes:
    """The bytes of member ``name`` of an open zip archive (an .npz), checked against its CRC and size.

    Deflated members are inflated in one call (zlib-ng when installed, else zlib); anything unusual (encryption,
    other compressions) goes through :meth:`zipfile.ZipFile.read`. Raises ``KeyError`` for an unknown member and
    ``zipfile.BadZipFile`` for a damaged one.
    """
    info = archive.getinfo(name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
        return archive.read(name)
    handle = archive.fp
    handle.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for member {name}")
    handle.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    data = handle.read(info.compress_size)
    if len(data) != info.compress_size:
        raise zipfile.BadZipFile(f"member {name} is truncated")
    if info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            # One spare byte: a buffer exactly full makes the inflater grow it before it sees the stream end.
            data = _zlib.decompress(data, -15, info.file_size + 1)
        except _zlib.error as exc:
            raise zipfile.BadZipFile(f"member {name} does not inflate ({exc})") from None
    if len(data) != info.file_size or _zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC or size for member {name}")
    return data
