"""Reading and writing per-image 2D maps (camera images, label PNGs, depth arrays), errors naming the file.

Every reader raises :class:`~easyocc.errors.InputError` with the file's path for a missing, unreadable or
malformed file; every writer is atomic (:func:`easyocc.fileio.atomic_write`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from easyocc.errors import InputError
from easyocc.fileio import atomic_write

#: 16-bit depth PNGs store millimetres; 0 means "no depth".
DEPTH_PNG_SCALE = 1000.0


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (the CLI prints errors in one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"cannot read the image ({one_line(exc)})") from None
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """A camera image as (H, W, 3) uint8 RGB."""
    return np.asarray(_open_image(Path(path)).convert("RGB"))


def read_camera_rgb(camera) -> np.ndarray:
    """A CameraFrame's image as (camera.height, camera.width, 3) uint8 RGB; an error if its size disagrees."""
    rgb = read_rgb(camera.image_path)
    if rgb.shape[:2] != (camera.height, camera.width):
        raise InputError(camera.image_path, f"image is {rgb.shape[1]}x{rgb.shape[0]}, the dataset tables say "
                                            f"{camera.width}x{camera.height}")
    return rgb


def read_label_png(path: str | Path) -> np.ndarray:
    """A single-channel 8-bit PNG (class ids) as (H, W) uint8; colour or 16-bit images are refused."""
    path = Path(path)
    image = _open_image(path)
    if image.mode not in ("L", "P"):
        raise InputError(path, f"expected a single-channel 8-bit label image, got mode {image.mode}")
    return np.asarray(image, dtype=np.uint8)


def read_depth_png(path: str | Path) -> np.ndarray:
    """A 16-bit PNG of millimetres as (H, W) float32 metres (0 stays 0: no depth)."""
    path = Path(path)
    image = _open_image(path)
    if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise InputError(path, f"expected a 16-bit depth PNG in millimetres, got mode {image.mode}")
    return np.asarray(image).astype(np.float32) / DEPTH_PNG_SCALE


def read_npy(path: str | Path) -> np.ndarray:
    """A .npy array (no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"cannot read as .npy ({one_line(exc)})") from None


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """labels: (H, W) uint8 -> a lossless 8-bit PNG, written atomically."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be (H, W) uint8, got {labels.shape} {labels.dtype}")
    _write_png(path, Image.fromarray(labels))  # (H, W) uint8 -> mode "L"


def write_depth_png(path: str | Path, depth: np.ndarray) -> None:
    """depth: (H, W) metres -> a 16-bit PNG of millimetres (rounded, clipped to 65.535 m), written atomically."""
    mm = np.clip(np.rint(np.asarray(depth, dtype=np.float64) * DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16)
    _write_png(path, Image.fromarray(mm))


def _write_png(path: str | Path, image: Image.Image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast: these are caches, not archives
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getbuffer())


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """An array as .npy, written atomically."""
    with atomic_write(path, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)
