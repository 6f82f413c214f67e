"""Metric3Dv2 depth through a local torch.hub checkout of YvanYin/Metric3D and a local checkpoint.

Metric3D predicts depth for a canonical camera of focal length 1000 px. Per image (REFERENCE.md 6.1): resize
keeping the aspect ratio to fit the model's input (616x1064 for ViT models, 544x1216 for ConvNeXt), scale the
focal length by the same factor, pad to the input size with the mean colour, normalise, run
``model.inference({'input': x})``, remove the padding, upsample bilinearly to the image size, multiply by
``fx_scaled / 1000`` and clamp to [0, 300] m. The output is z-depth along the optical axis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.devices import resolve_device
from easyocc.errors import InputError
from easyocc.labels.sources.base import DepthSource, check_depth
from easyocc.labels.sources.maps import read_camera_rgb
from easyocc.labels.sources.runtime import LazyModels, first_line, weights_identity

CANONICAL_FOCAL = 1000.0
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
VIT_INPUT_SIZE = (616, 1064)
CONVNEXT_INPUT_SIZE = (544, 1216)


def input_size_for(model_name: str) -> tuple[int, int]:
    """(height, width) of the network input for a hubconf entry point name."""
    return CONVNEXT_INPUT_SIZE if "convnext" in model_name else VIT_INPUT_SIZE


@dataclass(frozen=True)
class CanonicalInput:
    """A network input and what is needed to map its output back. image: (1, 3, h_in, w_in) float32 normalised;
    pad: (top, bottom, left, right) pixels; resized: (h, w) of the image inside the padding."""

    image: Any
    pad: tuple[int, int, int, int]
    resized: tuple[int, int]
    fx_scaled: float


def to_canonical_input(rgb: np.ndarray, K: np.ndarray, input_size: tuple[int, int]) -> CanonicalInput:
    """rgb: (H, W, 3) uint8; K: (3, 3) intrinsics of that image. Keep-ratio resize to fit ``input_size``, pad with
    the mean colour (0 after normalisation), normalise."""
    import torch

    height, width = rgb.shape[:2]
    scale = min(input_size[0] / height, input_size[1] / width)
    resized = (int(height * scale), int(width * scale))
    image = cv2.resize(rgb, (resized[1], resized[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    pad_h, pad_w = input_size[0] - resized[0], input_size[1] - resized[1]
    pad = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
    image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_CONSTANT, value=MEAN_RGB)
    image = (image - np.float32(MEAN_RGB)) / np.float32(STD_RGB)
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    return CanonicalInput(tensor, pad, resized, float(K[0, 0]) * scale)


def from_canonical_depth(canonical, prepared: CanonicalInput, output_size: tuple[int, int],
                         max_depth: float = 300.0):
    """canonical: (h_in, w_in) network depth (any leading singleton dims) -> (H, W) metric torch tensor."""
    import torch.nn.functional as F

    top, _, left, _ = prepared.pad
    depth = canonical.reshape(canonical.shape[-2:]).float()
    depth = depth[top : top + prepared.resized[0], left : left + prepared.resized[1]]
    depth = F.interpolate(depth[None, None], size=output_size, mode="bilinear", align_corners=False)[0, 0]
    return (depth * (prepared.fx_scaled / CANONICAL_FOCAL)).clamp(0.0, max_depth)


@dataclass(frozen=True)
class Metric3DConfig:
    """A local clone of YvanYin/Metric3D (its hubconf.py, with the packages it imports installed) and a local
    checkpoint, e.g. metric_depth_vit_giant2_800k.pth for the entry point metric3d_vit_giant2."""

    repo_dir: Path
    checkpoint: Path
    model_name: str = "metric3d_vit_giant2"
    device: str = "auto"
    #: torch.load(weights_only=False): only for a checkpoint from a source you trust (it may run code).
    trust_checkpoint: bool = False
    max_depth: float = 300.0


def load_checkpoint_state(path: Path, trust: bool) -> dict:
    """The model state dict of a Metric3D checkpoint ({'model_state_dict': ...}, {'state_dict': ...} or bare)."""
    import pickle

    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused is None:
            raise InputError(path, "cannot read the checkpoint (not a torch.save file)") from None
        raise InputError(path, f"torch.load(weights_only=True) refuses it (it holds {refused.group(1)}); pass "
                               "--metric3d-trust-checkpoint if you trust where it came from") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise InputError(path, f"cannot read the checkpoint ({first_line(exc)})") from None
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not data:
        raise InputError(path, "holds no state dict")
    return data


def load_hub_model(repo_dir: Path, model_name: str):
    """``torch.hub.load(repo_dir, model_name, source='local', pretrain=False)``, errors naming the repo."""
    import torch

    if not (repo_dir / "hubconf.py").is_file():
        raise InputError(repo_dir, "no hubconf.py (expected a clone of github.com/YvanYin/Metric3D)")
    try:
        return torch.hub.load(str(repo_dir), model_name, source="local", pretrain=False)
    except (RuntimeError, ImportError, AttributeError) as exc:
        raise InputError(repo_dir / "hubconf.py", f"cannot build '{model_name}' ({first_line(exc)})") from None


class Metric3DDepth(LazyModels, DepthSource):
    """Depth from Metric3D; the model is loaded on first use."""

    name = "metric3d"

    def __init__(self, config: Metric3DConfig):
        if not Path(config.repo_dir).is_dir():
            raise InputError(config.repo_dir, "Metric3D repository not found")
        if not Path(config.checkpoint).is_file():
            raise InputError(config.checkpoint, "Metric3D checkpoint not found")
        resolve_device(config.device)  # a bad --device fails now, not after the first images
        self.config = config
        self._fingerprint: str | None = None

    def _load(self):
        cfg = self.config
        device = resolve_device(cfg.device)
        model = load_hub_model(Path(cfg.repo_dir), cfg.model_name)
        state = load_checkpoint_state(Path(cfg.checkpoint), cfg.trust_checkpoint)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Metric3D's own hubconf loads with strict=False; a checkpoint that matches nothing is the wrong one.
        if len(missing) == len(model.state_dict()) and len(model.state_dict()):
            raise InputError(cfg.checkpoint, f"matches none of the parameters of '{cfg.model_name}' "
                                             f"({len(unexpected)} unexpected keys)")
        return device, model.to(device).eval()

    def predict(self, rgb: np.ndarray, K: np.ndarray) -> np.ndarray:
        """rgb: (H, W, 3) uint8, K: (3, 3) -> (H, W) float32 metric z-depth."""
        import torch

        device, model = self.models()
        prepared = to_canonical_input(rgb, K, input_size_for(self.config.model_name))
        with torch.no_grad():
            canonical, _, _ = model.inference({"input": prepared.image.to(device)})
            depth = from_canonical_depth(canonical, prepared, rgb.shape[:2], self.config.max_depth)
        return depth.cpu().numpy().astype(np.float32)

    def depth(self, camera: CameraFrame) -> np.ndarray:
        return check_depth(self.predict(read_camera_rgb(camera), camera.K), camera, self.name)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            cfg = self.config
            code = weights_identity(Path(cfg.repo_dir) / "hubconf.py")
            self._fingerprint = (f"metric3d:v1:{cfg.model_name}:ckpt={weights_identity(cfg.checkpoint)}"
                                 f":hubconf={code}:max={cfg.max_depth:g}")
        return self._fingerprint
