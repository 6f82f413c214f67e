"""Names of the evaluation protocols (light: the command line imports it for ``--help``)."""

from __future__ import annotations

#: Mask name -> the ``labels.npz`` members it needs (ANDed together); "none" counts all 640,000 voxels.
MASK_KEYS: dict[str, tuple[str, ...]] = {
    "camera": ("mask_camera",),
    "none": (),
    "lidar": ("mask_lidar",),
    "camera+lidar": ("mask_camera", "mask_lidar"),
}
MASK_DESCRIPTIONS: dict[str, str] = {
    "camera": "camera mask",
    "none": "no mask, all voxels",
    "lidar": "LiDAR mask",
    "camera+lidar": "camera AND LiDAR mask",
}


def voxel_protocols(mask: str) -> dict[str, str]:
    """Voxel metric name -> what it measures under ``mask``."""
    where = MASK_DESCRIPTIONS[mask]
    return {
        "mIoU": f"Occ3D mIoU ({where}, 17 classes: others..vegetation)",
        "mIoU_15": f"mIoU_15 ({where}, 15 classes: OccNeRF/GaussianOcc 'without others', no others/other_flat)",
        "IoU": f"IoU ({where}, geometric: occupied 0..16 vs free)",
    }


def ray_protocols(max_origins: int, rays_per_origin: int, thresholds=(1, 2, 4)) -> dict[str, str]:
    """RayIoU metric name -> what it measures."""
    rays = f"SparseOcc, no mask, 17 classes, <= {max_origins} origins x {rays_per_origin:,} LiDAR rays"
    labels = {"RayIoU": f"RayIoU ({rays}; mean of " + ", ".join(f"@{t:g}" for t in thresholds) + " m)"}
    labels.update({f"RayIoU@{t:g}": f"RayIoU@{t:g} ({rays}; depth error < {t:g} m)" for t in thresholds})
    return labels
