"""What the viewer draws, as pure functions: voxel layers and their error categories, the camera-mask modes, mesh
groups with their colours, the ego car, camera frusta and camera images with a 2D map laid over them.

Colours: classes in the Occ3D palette (:data:`easyocc.occ3d.CLASS_COLORS`); the error categories have their own
four colours (:data:`ERROR_COLORS`), chosen to stand apart from each other, not from the palette.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from easyocc.geometry import matrix_to_quaternion
from easyocc.occ3d import CLASS_COLORS, CLASS_NAMES, FREE, IGNORE, NUM_SEMANTIC_CLASSES, OCC3D_GRID, VoxelGrid
from easyocc.viewer.meshing import EMPTY, TriangleMesh, group_meshes

#: Layer name -> title. "errors-*" compare a prediction (or the pseudo-labels) with the ground truth.
LAYER_TITLES: dict[str, str] = {
    "gt": "ground truth",
    "labels": "pseudo-labels",
    "pred": "prediction",
    "errors-pred": "errors: prediction vs GT",
    "errors-labels": "errors: pseudo-labels vs GT",
}
#: Error categories of a voxel whose GT is known: the indices of ERROR_NAMES / ERROR_COLORS.
CORRECT, WRONG_CLASS, MISSED, HALLUCINATED = range(4)
ERROR_NAMES: tuple[str, ...] = ("correct", "wrong class", "missed", "hallucinated")
ERROR_COLORS: np.ndarray = np.array(
    [
        [200, 200, 200],  # correct: light grey, so that the errors stand out
        [255, 150, 0],  # wrong class: orange
        [30, 100, 255],  # missed (GT occupied, predicted free): blue
        [230, 20, 20],  # hallucinated (GT free, predicted occupied): red
    ],
    dtype=np.uint8,
)
#: Camera-mask mode -> what happens to voxels the cameras do not observe.
MASK_MODES: dict[str, str] = {"dim": "dim unobserved voxels", "hide": "hide unobserved voxels",
                              "all": "show every voxel"}
#: Opacity of dimmed (unobserved) voxels.
DIM_OPACITY = 0.2


def semantic_categories(semantics: np.ndarray) -> np.ndarray:
    """Occupied voxels of a label or prediction volume: (X, Y, Z) int16, the class 0..16, -1 for free and ignored."""
    semantics = np.asarray(semantics)
    return np.where((semantics < NUM_SEMANTIC_CLASSES), semantics, EMPTY).astype(np.int16)


def error_categories(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Each voxel's error category: (X, Y, Z) int16 of CORRECT / WRONG_CLASS / MISSED / HALLUCINATED, -1 where both
    are free or the GT is ignored (255).

    gt: (X, Y, Z) uint8 0..17 or 255; pred: (X, Y, Z) uint8 0..17 (an ignored 255 counts as free, no prediction).
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: gt {gt.shape}, pred {pred.shape}")
    known = gt != IGNORE
    gt_occupied = known & (gt != FREE)
    pred_occupied = (pred != FREE) & (pred != IGNORE)
    out = np.full(gt.shape, EMPTY, dtype=np.int16)
    out[gt_occupied & (pred == gt)] = CORRECT
    out[gt_occupied & pred_occupied & (pred != gt)] = WRONG_CLASS
    out[gt_occupied & ~pred_occupied] = MISSED
    out[known & ~gt_occupied & pred_occupied] = HALLUCINATED
    return out


@dataclass(frozen=True)
class MeshGroup:
    """One mesh of a layer: the voxels of one category (class or error), observed or not.

    category: the class id (semantic layers) or the error category; rgb: (3,) uint8; opacity: None when opaque.
    """

    name: str
    category: int
    observed: bool
    rgb: tuple[int, int, int]
    opacity: float | None
    mesh: TriangleMesh


def layer_groups(categories: np.ndarray, names, colors: np.ndarray, observed: np.ndarray | None = None,
                 mode: str = "dim", grid: VoxelGrid = OCC3D_GRID) -> list[MeshGroup]:
    """The meshes of a layer, one per category (and, with ``mode="dim"``, one more per category for the voxels
    the cameras do not observe, drawn translucent).

    categories: (X, Y, Z) int, a category >= 0 per occupied voxel, -1 elsewhere; names, colors: per category;
    observed: (X, Y, Z) bool/uint8 camera mask, or None (every voxel counts as observed); mode: a key of MASK_MODES.
    """
    if mode not in MASK_MODES:
        raise ValueError(f"unknown camera-mask mode '{mode}' (known: {', '.join(MASK_MODES)})")
    categories = np.asarray(categories).astype(np.int32)
    count = len(names)
    if observed is not None and mode != "all":
        seen = np.asarray(observed).astype(bool)
        shown = categories >= 0
        if mode == "hide":
            categories = np.where(seen, categories, EMPTY)
        else:  # unobserved voxels form groups of their own, offset by ``count``
            categories = np.where(shown & ~seen, categories + count, categories)
    groups = []
    for group, mesh in sorted(group_meshes(categories, grid).items()):
        category, unobserved = group % count, group >= count
        name = names[category] + (" (unobserved)" if unobserved else "")
        rgb = tuple(int(c) for c in colors[category])
        groups.append(MeshGroup(name, category, not unobserved, rgb, DIM_OPACITY if unobserved else None, mesh))
    return groups


def semantic_layer_groups(semantics: np.ndarray, observed: np.ndarray | None = None, mode: str = "dim",
                          grid: VoxelGrid = OCC3D_GRID) -> list[MeshGroup]:
    """:func:`layer_groups` of a label or prediction volume in the Occ3D palette."""
    return layer_groups(semantic_categories(semantics), CLASS_NAMES[:NUM_SEMANTIC_CLASSES], CLASS_COLORS, observed,
                        mode, grid)


def error_layer_groups(gt: np.ndarray, pred: np.ndarray, observed: np.ndarray | None = None, mode: str = "dim",
                       grid: VoxelGrid = OCC3D_GRID) -> list[MeshGroup]:
    """:func:`layer_groups` of the error categories of ``pred`` against ``gt``."""
    return layer_groups(error_categories(gt, pred), ERROR_NAMES, ERROR_COLORS, observed, mode, grid)


# --- the ego car and its cameras -------------------------------------------------------------------------------

#: The nuScenes ego car (Renault Zoe), length x width x height in metres, and its centre in the ego frame (whose
#: origin is the rear axle on the ground).
EGO_DIMENSIONS = (4.08, 1.73, 1.56)
EGO_CENTER = (1.4, 0.0, 0.78)
EGO_RGB = (90, 90, 100)


@dataclass(frozen=True)
class Frustum:
    """A camera drawn as a frustum (OpenCV frame: +z forward, +x right, +y down).

    fov: vertical field of view in radians; aspect: width / height; wxyz: (4,) rotation of the camera in the
    keyframe's ego frame; position: (3,) metres.
    """

    fov: float
    aspect: float
    wxyz: np.ndarray
    position: np.ndarray


def camera_frustum(K: np.ndarray, width: int, height: int, ref_T_cam: np.ndarray) -> Frustum:
    """The frustum of a pinhole camera. K: (3, 3) intrinsics for a width x height image; ref_T_cam: (4, 4)."""
    fov = 2.0 * math.atan2(height / 2.0, float(K[1, 1]))
    return Frustum(fov, width / height, matrix_to_quaternion(ref_T_cam[:3, :3]), np.asarray(ref_T_cam[:3, 3]))


# --- camera images ------------------------------------------------------------------------------------------------

#: Image modes of the cameras: the photo alone or with a 2D source's map laid over it.
IMAGE_MODES: dict[str, str] = {"none": "no images", "photo": "photos", "semantics": "photos + semantics",
                               "depth": "photos + depth"}
#: Depth colour scale: 0 .. DEPTH_RANGE metres over the turbo colour map.
DEPTH_RANGE = 60.0


def semantic_overlay(image: np.ndarray, semantics: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The photo (H, W, 3) uint8 with each pixel's class colour blended in; sky (17) and unsure (255) pixels keep
    the photo. semantics: (H, W) uint8 Occ3D ids."""
    labelled = semantics < NUM_SEMANTIC_CLASSES
    colours = CLASS_COLORS[np.where(labelled, semantics, 0)].astype(np.float32)
    return _blend(image, colours, labelled, alpha)


def depth_overlay(image: np.ndarray, depth: np.ndarray, alpha: float = 0.65,
                  depth_range: float = DEPTH_RANGE) -> np.ndarray:
    """The photo (H, W, 3) uint8 with depth (H, W) metres in the turbo colour map (0 .. depth_range m) blended in;
    pixels without depth (0) keep the photo."""
    from matplotlib import colormaps

    has_depth = depth > 0
    colours = colormaps["turbo"](np.clip(depth / depth_range, 0.0, 1.0))[..., :3] * 255.0
    return _blend(image, colours.astype(np.float32), has_depth, alpha)


def _blend(image: np.ndarray, colours: np.ndarray, where: np.ndarray, alpha: float) -> np.ndarray:
    if image.shape[:2] != colours.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and map {colours.shape[:2]} sizes differ")
    mixed = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return np.where(where[..., None], np.rint(mixed), image).astype(np.uint8)


def sample_nearest(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A 2D map (H, W) resampled to ``shape[:2]`` by its nearest pixel (pixel centres aligned, OpenCV style)."""
    height, width = array.shape[:2]
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * height / shape[0]).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * width / shape[1]).astype(np.int64), width - 1)
    return array[rows[:, None], cols[None, :]]
