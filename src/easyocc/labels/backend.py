"""The implementation of the 3D stage's heavy steps, picked once: numba kernels on the CPU, or torch on a device.

Both lift an image into fine cells, count a frame's cells and vote a window with the same arithmetic, so they give
the same labels (tested); free-space rays are walked by numba either way. :func:`label_backend` picks one from the
``easyocc.devices`` vocabulary (``auto`` = torch on a GPU, numba on the CPU); the pipeline only calls its methods.

>>> label_backend("auto", "cpu").name
'numba'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

from easyocc.labels.cells import FrameCells, cells_from_image, merge_runs
from easyocc.labels.config import LabelConfig
from easyocc.occ3d import OCC3D_GRID, VoxelGrid

if TYPE_CHECKING:
    import torch


#: Points per voxel (X, Y, Z) -> the (static, dynamic) voxels whose points go (``visibility.pass_through_drops``).
PassThrough = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def _rare(config: LabelConfig) -> tuple[int, ...]:
    """The classes the vote favours: ``config.rare_classes`` when ``rare_priority`` is on."""
    return config.rare_classes if config.rare_priority else ()


class LabelBackend(Protocol):
    """What the pipeline asks of an implementation (shapes as :class:`NumbaBackend` documents them)."""

    name: str

    def image_runs(self, depth, semantics, K, ref_T_cam, keep, stride, max_range, divisions, grid): ...

    def frame_cells(self, runs: list, divisions: int, grid: VoxelGrid) -> FrameCells: ...

    def window_vote(self, window, config, grid, carved, pass_through): ...


class NumbaBackend:
    """The CPU kernels (numba, parallel over image rows and voxels)."""

    name = "numba"

    def image_runs(self, depth: np.ndarray, semantics: np.ndarray, K: np.ndarray, ref_T_cam: np.ndarray,
                   keep: np.ndarray | None, stride: int, max_range: float | None, divisions: int,
                   grid: VoxelGrid = OCC3D_GRID):
        """One image's points as runs of (cell, class) keys (see :func:`cells.cells_from_image`)."""
        return cells_from_image(depth, semantics, K, ref_T_cam, keep, stride, max_range, divisions, grid)

    def frame_cells(self, runs: list, divisions: int, grid: VoxelGrid = OCC3D_GRID) -> FrameCells:
        """The runs of a frame's images counted into its cells."""
        return merge_runs(runs, divisions, grid)

    def window_vote(self, window: Sequence, config: LabelConfig, grid: VoxelGrid = OCC3D_GRID,
                    carved: np.ndarray | None = None, pass_through: PassThrough | None = None):
        """(semantics (X, Y, Z) uint8, total points (X, Y, Z) uint64, current-frame voxels (X, Y, Z) bool) of a
        window of ``PosedFrame`` (current last): other frames' points in ``carved`` voxels are dropped;
        ``pass_through`` maps the points per voxel to the (static, dynamic) voxels to empty
        (``visibility.pass_through_drops``); the vote favours ``config.rare_classes`` with ``rare_priority``."""
        from easyocc.labels.aggregate import drop_passed_through, window_counts
        from easyocc.labels.voxelize import vote

        counts = window_counts(window, config.dynamic_classes, grid, carved)
        if pass_through is not None:
            drop_passed_through(counts.counts, *pass_through(counts.counts.sum(-1, dtype=np.uint64)),
                                config.dynamic_classes)
        semantics, total = vote(counts.counts, config.min_points, _rare(config), config.rare_min_points)
        return semantics, total, counts.current

    def __repr__(self) -> str:
        return "NumbaBackend()"


class TorchBackend:
    """The same steps in torch on ``device`` (``torch_backend``): a GPU, or the CPU (for tests)."""

    name = "torch"

    def __init__(self, device: "torch.device"):
        self.device = device

    def image_runs(self, depth, semantics, K, ref_T_cam, keep, stride, max_range, divisions, grid=OCC3D_GRID):
        from easyocc.labels.torch_backend import image_keys

        return image_keys(depth, semantics, K, ref_T_cam, keep, stride, max_range, divisions, self.device, grid)

    def frame_cells(self, runs, divisions, grid=OCC3D_GRID) -> FrameCells:
        from easyocc.labels.torch_backend import cells_from_keys

        return cells_from_keys(runs, divisions, grid)

    def window_vote(self, window, config, grid=OCC3D_GRID, carved=None, pass_through=None):
        from easyocc.labels.torch_backend import window_vote

        return window_vote(window, config.dynamic_classes, config.min_points, self.device, grid, carved, pass_through,
                           _rare(config), config.rare_min_points)

    def __repr__(self) -> str:
        return f"TorchBackend({str(self.device)!r})"


def label_backend(backend: str = "auto", device: "str | torch.device" = "auto") -> LabelBackend:
    """The 3D stage's implementation: ``backend`` numba, torch or auto (torch on a GPU, numba on the CPU) on
    ``device`` (auto, cpu, cuda, cuda:N; checked: a one-line EasyOccError for a bad name or a missing GPU)."""
    from easyocc.devices import resolve_backend, resolve_device

    torch_device = resolve_device(device) if isinstance(device, str) else device
    return TorchBackend(torch_device) if resolve_backend(backend, torch_device) == "torch" else NumbaBackend()
