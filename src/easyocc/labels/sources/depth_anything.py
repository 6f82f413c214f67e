"""Depth Anything V2 metric depth through ``transformers`` (``DepthAnythingForDepthEstimation`` and its image
processor), loaded from a local folder such as depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf.

The metric models are trained for one camera (outdoor: Virtual KITTI 2) and take no intrinsics, so their scale on
other cameras is only approximate. The prediction is resized bilinearly (bicubic overshoots at depth edges) to the
image size; it is z-depth in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.devices import resolve_device
from easyocc.errors import InputError
from easyocc.labels.sources.base import DepthSource, check_depth
from easyocc.labels.sources.maps import read_camera_rgb
from easyocc.labels.sources.runtime import LazyModels, load_pretrained, weights_identity


@dataclass(frozen=True)
class DepthAnythingConfig:
    model_dir: Path
    device: str = "auto"


class DepthAnythingDepth(LazyModels, DepthSource):
    """Depth from a metric Depth Anything (V2) model; loaded on first use."""

    name = "depth-anything"

    def __init__(self, config: DepthAnythingConfig):
        if not Path(config.model_dir).is_dir():
            raise InputError(config.model_dir, "Depth Anything model folder not found")
        resolve_device(config.device)  # a bad --device fails now, not after the first images
        self.config = config
        self._fingerprint: str | None = None

    def _load(self):
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        folder = Path(self.config.model_dir)
        processor = load_pretrained(AutoImageProcessor, folder, "Depth Anything image processor")
        model = load_pretrained(DepthAnythingForDepthEstimation, folder, "Depth Anything model")
        if model.config.depth_estimation_type != "metric":
            raise InputError(folder, f"is a '{model.config.depth_estimation_type}' depth model; easyocc needs "
                                     "metric depth (a Depth-Anything-V2-Metric-* model)")
        device = resolve_device(self.config.device)
        return device, processor, model.to(device).eval()

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """rgb: (H, W, 3) uint8 -> (H, W) float32 metric depth."""
        import torch
        import torch.nn.functional as F

        device, processor, model = self.models()
        pixels = processor(images=rgb, return_tensors="pt")["pixel_values"].to(device)
        with torch.no_grad():
            predicted = model(pixel_values=pixels).predicted_depth  # (1, h, w)
            depth = F.interpolate(predicted[:, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)
        return depth[0, 0].clamp(min=0).cpu().numpy().astype(np.float32)

    def depth(self, camera: CameraFrame) -> np.ndarray:
        return check_depth(self.predict(read_camera_rgb(camera)), camera, self.name)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = f"depth-anything:v1:{weights_identity(self.config.model_dir)}"
        return self._fingerprint
