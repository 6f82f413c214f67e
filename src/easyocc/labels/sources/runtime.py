"""What the foundation-model sources share: loading local weights with one-line errors, an
identity of the weights for cache fingerprints, and models loaded on first use (not pickled to workers)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from easyocc.errors import EasyOccError, InputError

_EDGE_BYTES = 1 << 20  # hashed at each end of a weights file: cheap, and any re-export changes it


def weights_identity(*paths: str | Path) -> str:
    """A short digest of files (or of every file directly inside folders): names, sizes and the first and last
    MiB of each. It changes when the weights change, without reading gigabytes."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            size = file.stat().st_size
            digest.update(f"{file.name}:{size}:".encode())
            with open(file, "rb") as handle:
                digest.update(handle.read(_EDGE_BYTES))
                if size > 2 * _EDGE_BYTES:
                    handle.seek(-_EDGE_BYTES, 2)
                    digest.update(handle.read(_EDGE_BYTES))
    return digest.hexdigest()[:16]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def load_pretrained(loader, directory: Path, what: str) -> Any:
    """``loader.from_pretrained(directory, local_files_only=True)`` (never a download), errors naming the
    folder."""
    try:
        return loader.from_pretrained(str(directory), local_files_only=True)
    except EasyOccError:
        raise
    except Exception as exc:  # transformers and safetensors raise many types; all mean "this folder won't load"
        raise InputError(directory, f"cannot load the {what} ({first_line(exc)})") from None


class LazyModels:
    """Mixin: ``self.models()`` loads with ``self._load()`` on first use; pickling drops the loaded models, so a
    source can be sent to worker processes, each loading its own copy."""

    _loaded: Any = None

    def _load(self) -> Any:
        raise NotImplementedError

    def models(self) -> Any:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = None
        return state
