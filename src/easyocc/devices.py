"""Devices and implementations, one vocabulary for every stage.

- A **device** is where torch runs: ``auto`` (the GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or
  ``cuda:N``. :func:`resolve_device` turns the name into a checked ``torch.device``; every option that names a
  device (``--device`` of labels, train, predict and the foundation-model sources, ``eval --ray-device``) goes
  through it.
- A **backend** is which implementation runs a stage that has two: ``numba`` (CPU kernels) or ``torch`` (on the
  device); ``auto`` is torch on a GPU and numba on the CPU (:func:`resolve_backend`). The labels' 3D stage
  (``easyocc labels --backend``) and the RayIoU caster (``easyocc eval --ray-backend``) have both.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_backend("auto", resolve_device("cpu"))
'numba'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from easyocc.errors import EasyOccError

if TYPE_CHECKING:
    import torch

#: What a device option accepts, for help texts and errors.
DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
#: The implementations of a stage that has two (``auto``: torch on a GPU, numba on the CPU).
BACKENDS: tuple[str, ...] = ("auto", "numba", "torch")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> "torch.device":
    """The ``torch.device`` that ``name`` (:data:`DEVICE_NAMES`) means here, checked: an EasyOccError for another
    name or a GPU that is not there.

    local_rank: under torchrun, the process's GPU: ``auto`` and a bare ``cuda`` then mean ``cuda:local_rank``.
    """
    import torch

    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise EasyOccError(f"invalid device '{name}' ({DEVICE_NAMES})")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EasyOccError(f"device '{name}': torch sees no CUDA device here")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
        if (device.index or 0) >= torch.cuda.device_count():
            raise EasyOccError(f"device '{name}': torch sees {torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_backend(name: str, device: "torch.device") -> str:
    """``numba`` or ``torch`` for the backend ``name`` (:data:`BACKENDS`) on ``device``: ``auto`` is torch on a GPU
    and numba on the CPU; an EasyOccError for another name. numba runs on the CPU whatever the device."""
    if name not in BACKENDS:
        raise EasyOccError(f"unknown backend '{name}' ({', '.join(BACKENDS)})")
    if name == "auto":
        return "torch" if device.type == "cuda" else "numba"
    return name
