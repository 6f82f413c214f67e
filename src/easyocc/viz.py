"""Pictures: bird's-eye views of Occ3D volumes, per-class IoU charts, camera mosaics. Matplotlib, no display needed."""

from __future__ import annotations

from os import PathLike
from typing import Sequence

import numpy as np

from easyocc.occ3d import CLASS_COLORS, CLASS_NAMES, FREE, IGNORE, NUM_SEMANTIC_CLASSES

#: Colour of unobserved columns (mask all zero) in bird's-eye views.
UNOBSERVED_RGB = np.array([40, 40, 40], dtype=np.uint8)
#: The six cameras as a 2 x 3 mosaic, as nuScenes viewers show them (front row, then back row seen from behind).
MOSAIC_LAYOUT = (("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"), ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"))


def top_class(semantics: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Class of the highest non-free voxel of each column (FREE where none).

    semantics: (X, Y, Z) uint8; mask: optional (X, Y, Z), voxels outside it count as free.
    Returns (X, Y) uint8.
    """
    occupied = (semantics != FREE) & (semantics != IGNORE)
    if mask is not None:
        occupied &= mask.astype(bool)
    z_count = semantics.shape[2]
    # argmax over the reversed z axis finds the highest occupied voxel.
    top = z_count - 1 - np.argmax(occupied[:, :, ::-1], axis=2)
    cls = np.take_along_axis(semantics, top[..., None], axis=2)[..., 0]
    return np.where(occupied.any(axis=2), cls, FREE).astype(np.uint8)


def bev_image(semantics: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Bird's-eye RGB image (X, Y, 3) uint8 of a volume: ego x (forward) points up, ego y (left) points left.

    With a mask, columns the mask never observes are dark grey.
    """
    rgb = CLASS_COLORS[top_class(semantics, mask)]
    if mask is not None:
        rgb[~mask.astype(bool).any(axis=2)] = UNOBSERVED_RGB
    # Array [x, y] -> image [row, col] with x up and y to the left: flip both axes.
    return np.ascontiguousarray(rgb[::-1, ::-1])


def _legend_handles(classes: Sequence[int]):
    from matplotlib.patches import Patch

    return [Patch(facecolor=CLASS_COLORS[c] / 255.0, edgecolor="k", label=CLASS_NAMES[c]) for c in classes]


def save_bev_panels(
    path: str | PathLike,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray | None]],
    title: str | None = None,
) -> None:
    """Save bird's-eye views side by side: ``panels`` is a list of (title, semantics (X, Y, Z), mask or None)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.9), squeeze=False)
    present: set[int] = set()
    for ax, (name, sem, mask) in zip(axes[0], panels):
        tops = top_class(sem, mask)
        present.update(int(c) for c in np.unique(tops) if c < NUM_SEMANTIC_CLASSES)
        ax.imshow(bev_image(sem, mask), interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(handles=_legend_handles(sorted(present)), loc="lower center", ncol=min(6, max(1, len(present))),
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95 if title else 1))
    _save(fig, path)


def save_per_class_chart(path: str | PathLike, series: dict[str, dict[str, float]], title: str) -> None:
    """Grouped horizontal bars of per-class IoU (in %): ``series`` maps a label (e.g. 'model') to class -> IoU.

    Classes that are nan in every series (absent from GT and predictions) are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CLASS_NAMES[:NUM_SEMANTIC_CLASSES] if any(np.isfinite(s.get(n, np.nan)) for s in series.values())]
    fig, ax = plt.subplots(figsize=(7, 0.32 * max(len(names), 4) * max(1, len(series)) ** 0.5 + 1.2))
    height = 0.8 / max(1, len(series))
    y = np.arange(len(names))
    for i, (label, values) in enumerate(series.items()):
        v = np.array([values.get(n, np.nan) for n in names], dtype=float)
        ax.barh(y + i * height, np.nan_to_num(v), height=height, label=label)
    ax.set_yticks(y + height * (len(series) - 1) / 2)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("IoU (%)")
    ax.set_xlim(0, 100)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def save_grouped_bars(path: str | PathLike, groups: dict[str, dict[str, float]], ylabel: str, title: str) -> None:
    """Vertical bars, one group per key of ``groups`` (e.g. a model), one bar per metric inside it (metric -> value;
    nan or missing: no bar), each bar labelled with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(m for values in groups.values() for m in values))
    width = 0.8 / max(1, len(metrics))
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(metrics)) ** 0.5 + 2), 4.2))
    for i, metric in enumerate(metrics):
        v = np.array([values.get(metric, np.nan) for values in groups.values()], dtype=float)
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, np.nan_to_num(v), width=width, label=metric)
        ax.bar_label(bars, labels=["" if np.isnan(a) else f"{a:.1f}" for a in v], fontsize=7, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels(list(groups), rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                       fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def camera_mosaic(images: dict[str, np.ndarray], layout=MOSAIC_LAYOUT) -> np.ndarray:
    """Tile six (H, W, 3) uint8 camera images of equal size into a 2 x 3 mosaic (2H, 3W, 3)."""
    rows = [np.concatenate([images[name] for name in row], axis=1) for row in layout]
    return np.concatenate(rows, axis=0)


def _save(fig, path: str | PathLike) -> None:
    import matplotlib.pyplot as plt

    from easyocc.fileio import atomic_write

    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
