"""A picture of one SimScenes keyframe: the six camera images, their exact semantics, and the Occ3D ground truth
in bird's-eye view (all voxels, and the voxels the cameras observe), in the Occ3D colours."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import DatasetIndex
from easyocc.data.synthetic import layout
from easyocc.occ3d import CLASS_COLORS, CLASS_NAMES, FREE, NUM_SEMANTIC_CLASSES, label_path, read_labels
from easyocc.viz import bev_image, camera_mosaic, top_class


def save_keyframe_preview(dataroot: str | PathLike, out_path: str | PathLike, scene_index: int = 0,
                          keyframe_index: int | None = None, version: str = "v1.0-mini") -> Path:
    """Draw keyframe ``keyframe_index`` (default: the middle one) of scene ``scene_index`` to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from PIL import Image

    from easyocc.fileio import atomic_write

    index = DatasetIndex(dataroot, version)
    scene = index.scenes[scene_index]
    kf = scene.keyframes[len(scene.keyframes) // 2 if keyframe_index is None else keyframe_index]
    rgb = {n: np.asarray(Image.open(c.image_path).convert("RGB")) for n, c in kf.cameras.items()}
    sem_ids = {n: np.asarray(Image.open(layout.sim_semantic_path(dataroot, c.relpath))) for n, c in kf.cameras.items()}
    sem = {n: CLASS_COLORS[s] for n, s in sem_ids.items()}
    labels = read_labels(label_path(Path(dataroot) / "gts", scene.name, kf.token))

    fig = plt.figure(figsize=(16, 7.2))
    grid = fig.add_gridspec(2, 3, width_ratios=[3, 1, 1], height_ratios=[1, 1])
    for spec, image, title in ((grid[0, 0], camera_mosaic(rgb), "six cameras (JPEG)"),
                               (grid[1, 0], camera_mosaic(sem), "exact semantics per pixel")):
        ax = fig.add_subplot(spec)
        ax.imshow(image)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    for col, (mask, title) in enumerate(((None, "Occ3D GT (bird's-eye view)"),
                                         (labels.mask_camera, "GT inside mask_camera"))):
        ax = fig.add_subplot(grid[:, 1 + col])
        ax.imshow(bev_image(labels.semantics, mask), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    classes = np.concatenate([np.unique(top_class(labels.semantics))] + [np.unique(s) for s in sem_ids.values()])
    present = sorted({int(c) for c in classes if c < NUM_SEMANTIC_CLASSES})
    handles = [Patch(facecolor=CLASS_COLORS[c] / 255.0, edgecolor="k", label=CLASS_NAMES[c]) for c in present]
    handles.append(Patch(facecolor=CLASS_COLORS[FREE] / 255.0, edgecolor="k", label="free / sky"))
    fig.legend(handles=handles, loc="lower center", ncol=10, fontsize=8, frameon=False)
    fig.suptitle(f"SimScenes {scene.name}, keyframe {kf.index} ({kf.token[:8]}): ego at the centre, x forward = up",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    out_path = Path(out_path)
    with atomic_write(out_path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return out_path
