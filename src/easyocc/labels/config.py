"""The settings of the 3D stage of Easy3D-Labels, as one typed dataclass.

Every field that changes the labels goes into the output folder's manifest (:meth:`LabelConfig.manifest`), so a
rerun with other settings into the same folder is refused; how the work is split (workers, shards, device) is not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from easyocc.errors import EasyOccError
from easyocc.occ3d import CLASS_IDS, DYNAMIC_CLASSES, FREE

#: Small classes that share their voxels with the ground or larger neighbours and lose a plain vote to them
#: (ShelfOcc's rare-class priority): with ``rare_priority``, one of them wins a voxel holding at least
#: ``rare_min_points`` of its points.
RARE_CLASSES: tuple[int, ...] = tuple(
    CLASS_IDS[n] for n in ("barrier", "bicycle", "motorcycle", "pedestrian", "traffic_cone")
)


@dataclass(frozen=True)
class LabelConfig:
    """How 2D maps become 3D pseudo-labels.

    frames: previous keyframes of the same scene added to the current one (0 = the current keyframe alone).
    min_points: a voxel is occupied when at least this many points fall in it.
    dynamic_classes: classes taken from the current keyframe only (they move between keyframes).
    pixel_stride: lift one pixel in ``pixel_stride`` along rows and columns (1 = every pixel).
    max_range: points farther than this from their camera (metres along the ray) are dropped and free-space rays
        stop there; ``None`` = no limit.
    ray_stride: one free-space ray per ``ray_stride`` x ``ray_stride`` pixels; 0 = automatic (the largest stride whose
        rays stay less than a voxel apart at the far corner of the grid, see :func:`visibility.auto_ray_stride`).
    cell_divisions: each frame's cloud is kept as fine cells of ``voxel_size / cell_divisions`` with per-class point
        counts (a power of two: the current frame's cells nest exactly in its voxels); 0 keeps every point.
    carve: drop past frames' points in voxels the current keyframe's cameras see through (the depth around the
        pixel of the voxel's centre lies more than ``carve_margin`` beyond it): such points were misplaced by depth
        errors, or have moved. Camera frames only. Off = the paper's plain aggregation.
    carve_margin: metres beyond a voxel's centre the current depth must lie for the voxel to be seen through.
    outlier_neighbors: statistical outlier removal on each frame's cells with this many neighbours (0 = off).
    outlier_std_ratio: cells whose mean neighbour distance exceeds mean + ratio * std are dropped.
    future_frames: following keyframes of the same scene added too, static classes only (labels are made offline,
        so the future is there; ShelfOcc accumulates the whole sequence). 0 = the past alone (the paper). Default
        13: on the SimScenes measurement (README, "Beyond the paper") it raised mIoU on both noise presets.
    pass_through: per voxel, weigh the free-space rays of the window's frames that cross it against the points
        that end in it, and drop the points of voxels crossed more than ``pass_through_ratio`` of the time (static
        classes against every frame's rays, dynamic classes against the current frame's alone). ShelfOcc's filter.
        Default on at ratio 0.97: on the SimScenes measurement it raised mIoU and RayIoU on both noise presets
        (at 0.9 it removed true surfaces: other frames' rays cross them when monocular depth puts them farther).
    pass_through_ratio: the share of crossings, crossings / (crossings + points), above which a voxel is emptied.
    rare_priority: in the vote, a class of ``rare_classes`` wins a voxel holding at least ``rare_min_points`` of its
        points (the one with most points among them); occupancy still needs ``min_points`` in all.
    rare_classes: the classes ``rare_priority`` favours (default :data:`RARE_CLASSES`).
    rare_min_points: the points a rare class needs in a voxel to win it.
    """

    frames: int = 13
    min_points: int = 2
    dynamic_classes: tuple[int, ...] = DYNAMIC_CLASSES
    pixel_stride: int = 1
    max_range: float | None = None
    ray_stride: int = 0
    cell_divisions: int = 4
    carve: bool = True
    carve_margin: float = 0.4
    outlier_neighbors: int = 0
    outlier_std_ratio: float = 2.0
    future_frames: int = 13
    pass_through: bool = True
    pass_through_ratio: float = 0.97
    rare_priority: bool = False
    rare_classes: tuple[int, ...] = RARE_CLASSES
    rare_min_points: int = 2

    def __post_init__(self):
        object.__setattr__(self, "dynamic_classes", tuple(sorted({int(c) for c in self.dynamic_classes})))
        object.__setattr__(self, "rare_classes", tuple(sorted({int(c) for c in self.rare_classes})))
        problems = []
        if self.frames < 0:
            problems.append(f"frames must be >= 0, got {self.frames}")
        if self.min_points < 1:
            problems.append(f"min_points must be >= 1, got {self.min_points}")
        if any(not 0 <= c < FREE for c in self.dynamic_classes):
            problems.append(f"dynamic classes must be in 0..{FREE - 1}, got {list(self.dynamic_classes)}")
        if self.pixel_stride < 1:
            problems.append(f"pixel_stride must be >= 1, got {self.pixel_stride}")
        if self.max_range is not None and not (self.max_range > 0 and math.isfinite(self.max_range)):
            problems.append(f"max_range must be a positive number, got {self.max_range}")
        if self.ray_stride < 0:
            problems.append(f"ray_stride must be >= 0 (0 = automatic), got {self.ray_stride}")
        d = self.cell_divisions
        if d < 0 or (d and d & (d - 1)) or d > 64:
            problems.append(f"cell_divisions must be 0 or a power of two up to 64, got {d}")
        if not (self.carve_margin >= 0 and math.isfinite(self.carve_margin)):
            problems.append(f"carve_margin must be >= 0, got {self.carve_margin}")
        if self.outlier_neighbors < 0:
            problems.append(f"outlier_neighbors must be >= 0, got {self.outlier_neighbors}")
        if not self.outlier_std_ratio > 0:
            problems.append(f"outlier_std_ratio must be > 0, got {self.outlier_std_ratio}")
        if self.future_frames < 0:
            problems.append(f"future_frames must be >= 0, got {self.future_frames}")
        if not 0 < self.pass_through_ratio < 1:
            problems.append(f"pass_through_ratio must be in (0, 1), got {self.pass_through_ratio}")
        if any(not 0 <= c < FREE for c in self.rare_classes):
            problems.append(f"rare classes must be in 0..{FREE - 1}, got {list(self.rare_classes)}")
        if self.rare_min_points < 1:
            problems.append(f"rare_min_points must be >= 1, got {self.rare_min_points}")
        if problems:
            raise EasyOccError("invalid label settings: " + "; ".join(problems))

    def manifest(self) -> dict:
        """The settings as plain JSON values."""
        out = asdict(self)
        out["dynamic_classes"] = list(self.dynamic_classes)
        out["rare_classes"] = list(self.rare_classes)
        return out

    @classmethod
    def before_ideas(cls) -> dict:
        """The settings of labels made before the 2026 ideas existed (their switches off, their parameters at the
        defaults): what a manifest that lacks those keys was made with."""
        return cls(future_frames=0, pass_through=False, rare_priority=False).manifest()

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
