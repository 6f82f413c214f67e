"""easyocc: camera-only 3D semantic occupancy learned from 3D pseudo-labels.

Stages (one folder each): ``data`` (nuScenes-format datasets, SimScenes), ``labels`` (Easy3D pseudo-labels),
``models``/``losses``/``training`` (the EasyOcc model), ``evaluation`` (Occ3D mIoU, RayIoU).
"""

__version__ = "0.1.0"
