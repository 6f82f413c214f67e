"""ResNet-18/34/50/101 image encoders whose parameter names match torchvision's, so a local torchvision state dict
(``resnet101-*.pth``) loads with ``load_pretrained``. torchvision itself is not imported.

Names: ``conv1``, ``bn1``, ``layer{1..4}.{i}.conv{1,2[,3]}`` / ``bn{...}``, ``layer{k}.0.downsample.{0,1}``, and
``fc`` when ``with_fc`` (off by default: the encoder returns feature maps, not ImageNet logits). Bottlenecks stride
in their 3x3 convolution (torchvision's "ResNet v1.5").
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import torch
from torch import nn

from easyocc.errors import InputError

#: name -> (block type, blocks per stage)
ARCHITECTURES: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet trunk returning the four stage outputs.

    forward(images: (N, 3, H, W)) -> [C2 (N, c, H/4, W/4), C3 (H/8), C4 (H/16), C5 (H/32)],
    with ``stage_channels`` = (64, 128, 256, 512) x expansion (1 for resnet18/34, 4 for resnet50/101).
    """

    def __init__(self, name: str = "resnet101", with_fc: bool = False, num_classes: int = 1000):
        super().__init__()
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown backbone '{name}' (known: {', '.join(ARCHITECTURES)})")
        kind, blocks = ARCHITECTURES[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.name = name
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = 64
        for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
            layers, in_channels = self._stage(block, in_channels, width, count, stride=1 if stage == 1 else 2)
            setattr(self, f"layer{stage}", layers)
        self.stage_channels = tuple(w * block.expansion for w in (64, 128, 256, 512))
        if with_fc:
            self.fc = nn.Linear(self.stage_channels[-1], num_classes)
        self._init_weights()

    @staticmethod
    def _stage(block, in_channels: int, width: int, count: int, stride: int) -> tuple[nn.Sequential, int]:
        out_channels = width * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        layers = [block(in_channels, width, stride, downsample)]
        layers += [block(out_channels, width) for _ in range(count - 1)]
        return nn.Sequential(*layers), out_channels

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


def _unwrap_state_dict(obj) -> dict:
    """The tensor mapping inside a checkpoint: plain, or under 'state_dict' / 'model'; 'module.' prefixes dropped."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _short_list(keys: list[str], most: int = 4) -> str:
    shown = ", ".join(keys[:most])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > most else shown


def load_pretrained(backbone: ResNet, path: str | PathLike) -> None:
    """Load a torchvision ResNet state dict into ``backbone``, strictly for the keys the backbone has.

    ``fc.*`` is accepted and ignored when the backbone has no ``fc``; a BN's ``num_batches_tracked`` may be absent
    (older torchvision files). Any other missing, unexpected or mis-shaped key is an InputError naming the file and
    listing the keys in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "pretrained weights not found")
    try:
        state = _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # torch.load raises many types for foreign or corrupt files
        raise InputError(path, f"not a readable torch state dict ({type(exc).__name__}: {exc})") from None
    own = backbone.state_dict()
    ignorable = lambda k: k.endswith("num_batches_tracked")  # noqa: E731
    missing = [k for k in own if k not in state and not ignorable(k)]
    unexpected = [k for k in state if k not in own and not (k.startswith("fc.") and not hasattr(backbone, "fc"))]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short_list(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (file vs {backbone.name}): {_short_list(mismatched, 2)}")
    if problems:
        raise InputError(path, f"does not fit {backbone.name}: " + "; ".join(problems))
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
