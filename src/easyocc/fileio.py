"""Files and folders made safely: atomic writes, temporaries swept on rerun, paths from untrusted names kept
inside their folder, output folders checked; reading zip members fast."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterator

import numpy as np

from easyocc.errors import InputError

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


# --- names read from files ---------------------------------------------------------------------------------------

def safe_name(name: object, where: str | os.PathLike, what: str = "name", nested: bool = False) -> str:
    """``name`` unchanged when it can be placed under a folder without leaving it, else an InputError at ``where``.

    Names read from files (scene names, sample tokens, image filenames in a dataset's tables) become paths; a
    dataset is untrusted input. A name must be a non-empty string without NUL bytes; with ``nested`` it may be a
    relative POSIX path (``samples/CAM_FRONT/x.jpg``) whose every component is a plain name, otherwise it is one
    component. Absolute paths and ``.``/``..`` components are refused. ``where`` is what the error names: the
    table and row, or the folder. (Symbolic links inside the folder are the folder owner's business and followed.)
    """
    if not isinstance(name, str):
        problem = f"must be a string, got {name!r}"
    elif not name:
        problem = "is empty"
    elif "\0" in name:
        problem = "holds a NUL byte"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif not nested and "/" in name:
        problem = "holds a '/' (it must be a single folder or file name)"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "has an empty, '.' or '..' component"
    else:
        return name
    raise InputError(where, f"{what} {name!r} {problem}; names read from files must stay inside their folder")


def path_inside(root: str | os.PathLike, *names: str, nested: bool = False, what: str = "name") -> Path:
    """``root / name / ...`` for names read from files, each checked by :func:`safe_name` (errors name ``root``)."""
    path = Path(root)
    for name in names:
        path = path / safe_name(name, root, what, nested)
    return path


def map_path(root: str | os.PathLike, relpath: str, suffix: str) -> Path:
    """``<root>/<relpath without its extension><suffix>`` for a file keyed by an image's relpath
    (``samples/CAM_FRONT/x.jpg`` -> ``<root>/samples/CAM_FRONT/x<suffix>``); the relpath may not leave ``root``."""
    rel = PurePosixPath(safe_name(relpath, root, "image path", nested=True))
    return Path(root) / rel.parent / (rel.stem + suffix)


# --- output folders ----------------------------------------------------------------------------------------------

def require_folder_or_absent(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` when it is a folder or does not exist yet; an InputError when it is a file (or anything else)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, f"exists and is not a folder (the {what})")
    return path


def _topmost_missing(folder: Path) -> Path | None:
    """The highest of ``folder`` and its ancestors that does not exist (what making ``folder`` would create)."""
    top = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        top = path
    return top


def _remove_empty_folders(folder: Path, top: Path | None) -> None:
    """Remove ``folder`` and its parents up to ``top`` while they are empty (``top`` None: nothing)."""
    if top is None:
        return
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return
        if path == top:
            return


def require_file_path(path: str | os.PathLike) -> Path:
    """``path`` when a file can be written there: it is no folder and its parent is a folder or can be made."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(parent, f"is not a folder, so {path.name} cannot be written in it")
            break
    return path


@contextlib.contextmanager
def undo_on_failure(folder: str | os.PathLike, entries: tuple[str, ...], keep: Callable[[], bool]) -> Iterator[None]:
    """If the block fails and ``keep()`` is false, remove those of ``folder``'s ``entries`` (names of files or
    folders) that the block created, and ``folder`` itself when the block created it and left it empty: a command
    that fails before it wrote anything worth keeping leaves the file system as it found it (the folders made for
    ``folder`` included)."""
    folder = Path(folder)
    created = _topmost_missing(folder)
    before = {name for name in entries if (folder / name).exists()}
    try:
        yield
    except BaseException:
        if not keep():
            for name in entries:
                path = folder / name
                if name in before or not path.exists():
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            _remove_empty_folders(folder, created)
        raise


@contextlib.contextmanager
def staging_folder(folder: str | os.PathLike, name: str) -> Iterator[Path]:
    """A temporary folder inside ``folder`` (created when missing) to write a set of files into before moving them
    into place; removed afterwards, whatever happens, with ``folder`` (and the parents made for it) when they are
    left empty. A leftover of a killed process is swept by :func:`sweep_temporaries`."""
    folder = Path(folder)
    created = _topmost_missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(name), suffix=".tmp", dir=folder))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty_folders(folder, created)


# --- atomic writes and their temporaries -------------------------------------------------------------------------

_HOST = socket.gethostname().replace(".", "_").replace("@", "_") or "host"
#: A temporary no one has modified for this long belongs to no live writer (writers write continuously).
STALE_TEMPORARY_SECONDS = 3600.0


def temporary_prefix(name: str) -> str:
    """``.<name>.<pid>@<host>.``: a temporary's name says whose it is, so a rerun can tell dead writers' leftovers
    from files a live process (another shard sharing the folder) is writing."""
    return f".{name}.{os.getpid()}@{_HOST}."


#: ``.<name>.<pid>@<host>.<8 random>.tmp`` (or, from older versions, ``.<name>.<8 random>.tmp``): mkstemp's names.
_TEMPORARY = re.compile(r"^\..+?(?:\.(?P<pid>\d+)@(?P<host>[^.@]+))?\.[a-z0-9_]{8}\.tmp$")


def _writer_is_gone(path: Path, now: float) -> bool:
    """Whether ``path`` is a temporary of ours whose writer no longer runs: a dead process of this machine, or
    (another machine's, or unsigned) one nobody has modified for ``STALE_TEMPORARY_SECONDS``."""
    match = _TEMPORARY.match(path.name)
    if match is None:
        return False
    if match["host"] == _HOST:
        pid = int(match["pid"])
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False
    try:
        return now - path.lstat().st_mtime > STALE_TEMPORARY_SECONDS
    except FileNotFoundError:
        return False


def sweep_temporaries(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Remove the leftovers of interrupted atomic writes (``.<name>.*.tmp`` files and folders) under ``folder``
    whose writer is gone; returns how many were removed. Commands call it on their output folder when they start."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for directory, subdirs, files in os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]:
        for name in [*files, *subdirs]:
            path = Path(directory) / name
            if not _writer_is_gone(path, now):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                subdirs.remove(name)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a file where a folder should be, no permission, ...
        raise InputError(path, f"cannot write here ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, mode) as handle:
            # mkstemp makes the file readable by its owner only; give it the permissions a plain open() would.
            os.chmod(tmp, 0o666 & ~_UMASK)
            yield handle
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            raise InputError(path, "is a folder; cannot write a file there") from None
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
