"""Where SimScenes keeps what a perfect foundation model would output, beside the nuScenes dataroot.

For the image ``<root>/samples/CAM_X/<stem>.jpg`` (the sample_data filename):
- ``<root>/sim/samples/CAM_X/<stem>_depth.npy``: float32 (H, W) exact metric depth, z along the optical axis,
  ``inf`` where the ray hits nothing (sky);
- ``<root>/sim/samples/CAM_X/<stem>_semantic.png``: uint8 (H, W) Occ3D ids, 17 for sky.

For the LiDAR scan ``<root>/samples/LIDAR_TOP/<name>.pcd.bin``:
- ``<root>/sim/samples/LIDAR_TOP/<name>_semantic.npy``: uint8 (N,) Occ3D id of each point, in the scan's order.
"""

from __future__ import annotations

from pathlib import Path

from easyocc.fileio import map_path

SIM_DIR = "sim"


def _sim_path(dataroot: str | Path, image_relpath: str, suffix: str) -> Path:
    return map_path(Path(dataroot) / SIM_DIR, image_relpath, suffix)


def sim_depth_path(dataroot: str | Path, image_relpath: str) -> Path:
    return _sim_path(dataroot, image_relpath, "_depth.npy")


def sim_semantic_path(dataroot: str | Path, image_relpath: str) -> Path:
    return _sim_path(dataroot, image_relpath, "_semantic.png")


def sim_lidar_semantic_path(dataroot: str | Path, scan_relpath: str) -> Path:
    scan = scan_relpath[: -len(".bin")] if scan_relpath.endswith(".pcd.bin") else scan_relpath  # x.pcd.bin -> x
    return _sim_path(dataroot, scan, "_semantic.npy")
