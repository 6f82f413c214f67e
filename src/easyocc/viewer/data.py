"""What the viewer reads: a nuScenes-format dataroot (through the dataset index) and, per keyframe, the Occ3D
volumes of the ground truth, the pseudo-labels and a prediction (through the ``easyocc.occ3d`` readers), the camera
images and, optionally, a 2D source's maps; and the keyframe's scores (``easyocc.evaluation.ConfusionMatrix``).

Files that are absent for a keyframe (predictions exist only for the val split) leave their layer empty for that
keyframe; files that exist but cannot be read are errors naming the file.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from easyocc.data.nuscenes_index import CAMERA_NAMES, DatasetIndex, Keyframe, Scene
from easyocc.errors import EasyOccError, InputError
from easyocc.occ3d import CLASS_NAMES, Occ3DLabels, labels_as_prediction, read_labels, read_prediction
from easyocc.viewer import layers as L

#: Width of the camera images the viewer shows (the height keeps the aspect ratio).
IMAGE_WIDTH = 480
#: Keyframes whose volumes are kept in memory (stepping back and forth stays instant).
_CACHED_KEYFRAMES = 4


@dataclass(frozen=True)
class ViewerInputs:
    """Where the viewer reads. data: a nuScenes-format dataroot; version: its tables ("auto": the only v1.0-*);
    labels: pseudo-labels (``<scene>/<token>/labels.npz``); pred: predictions (``<token>.npz``); gt: Occ3D ground
    truth (``<scene>/<token>/labels.npz``). Each of labels, pred and gt may be None."""

    data: Path
    version: str = "auto"
    labels: Path | None = None
    pred: Path | None = None
    gt: Path | None = None


def default_gt(data: Path) -> Path | None:
    """``DATA/gts`` when it exists: where SimScenes (and the common Occ3D set-ups) keep the ground truth."""
    path = Path(data) / "gts"
    return path if path.is_dir() else None


@dataclass
class Scores:
    """Occ3D scores of one keyframe against its GT: ``camera`` (GT camera mask) and ``none`` (every voxel)."""

    camera: object
    none: object


@dataclass
class KeyframeVolumes:
    """The volumes of one keyframe, each None when its file is absent. gt, labels: Occ3D labels; pred: (200, 200,
    16) uint8."""

    gt: Occ3DLabels | None = None
    labels: Occ3DLabels | None = None
    pred: np.ndarray | None = None
    scores: dict[str, Scores] = field(default_factory=dict)

    def observed(self) -> np.ndarray | None:
        """The camera mask that dims or hides voxels: the GT's, else the pseudo-labels' (None without either)."""
        for source in (self.gt, self.labels):
            if source is not None and source.mask_camera is not None:
                return source.mask_camera
        return None

    def candidate(self, name: str) -> np.ndarray | None:
        """The volume scored against the GT: "pred" or "labels" (ignored voxels as free), as a prediction."""
        if name == "pred":
            return self.pred
        return None if self.labels is None else labels_as_prediction(self.labels.semantics)

    def layer(self, name: str, mode: str) -> list[L.MeshGroup] | None:
        """The meshes of layer ``name`` (a key of ``LAYER_TITLES``) under camera-mask ``mode``; None when this
        keyframe lacks a file the layer needs."""
        observed = self.observed()
        if name == "gt":
            return None if self.gt is None else L.semantic_layer_groups(self.gt.semantics, observed, mode)
        if name == "labels":
            return None if self.labels is None else L.semantic_layer_groups(self.labels.semantics, observed, mode)
        if name == "pred":
            return None if self.pred is None else L.semantic_layer_groups(self.pred, observed, mode)
        if name.startswith("errors-"):
            candidate = self.candidate(name.split("-", 1)[1])
            if self.gt is None or candidate is None:
                return None
            return L.error_layer_groups(self.gt.semantics, candidate, observed, mode)
        raise ValueError(f"unknown layer '{name}' (known: {', '.join(L.LAYER_TITLES)})")


def keyframe_scores(gt: Occ3DLabels, candidate: np.ndarray) -> Scores:
    """One keyframe's confusion matrices (the evaluator's) under the GT camera mask and over every voxel."""
    from easyocc.evaluation import ConfusionMatrix

    scores = {}
    for mask, voxels in (("camera", gt.mask_camera), ("none", None)):
        matrix = ConfusionMatrix()
        matrix.update(gt.semantics, candidate, voxels)
        scores[mask] = matrix.compute()
    return Scores(**scores)


class ViewerData:
    """The dataset's scenes and, per keyframe, its volumes (a few kept in memory) and camera images."""

    def __init__(self, inputs: ViewerInputs, semantic_source=None, depth_source=None):
        from easyocc.data.occ_dataset import resolve_version

        for path, what in ((inputs.labels, "pseudo-label"), (inputs.pred, "prediction"), (inputs.gt, "ground-truth")):
            if path is not None and not Path(path).is_dir():
                raise InputError(path, f"{what} directory not found" if not Path(path).exists() else "not a directory")
        self.inputs = inputs
        self.version = resolve_version(inputs.data, inputs.version)
        self.index = DatasetIndex(inputs.data, self.version)
        if not self.index.scenes:
            raise InputError(Path(inputs.data) / self.version, "no scenes in the tables")
        self.semantic_source = semantic_source
        self.depth_source = depth_source
        self._volumes: OrderedDict[str, KeyframeVolumes] = OrderedDict()

    # --- what there is ------------------------------------------------------------------------------------------

    def layers(self) -> list[str]:
        """The layers the inputs allow, in LAYER_TITLES order."""
        given = {"gt": self.inputs.gt, "labels": self.inputs.labels, "pred": self.inputs.pred}
        names = [n for n in ("gt", "labels", "pred") if given[n] is not None]
        names += [f"errors-{n}" for n in ("pred", "labels") if given[n] is not None and given["gt"] is not None]
        return names

    def image_modes(self) -> list[str]:
        modes = ["none", "photo"]
        modes += ["semantics"] if self.semantic_source is not None else []
        modes += ["depth"] if self.depth_source is not None else []
        return modes

    def require_image_mode(self, mode: str) -> None:
        if mode not in L.IMAGE_MODES:
            raise EasyOccError(f"unknown camera image mode '{mode}' (known: {', '.join(L.IMAGE_MODES)})")
        if mode not in self.image_modes():
            raise EasyOccError(f"camera images '{mode}' need a 2D source (--{mode} NAME)")

    def scene(self, name: str | None) -> Scene:
        """The scene called ``name``; by default the first with a prediction (with --pred), else the first."""
        if name is not None:
            found = next((s for s in self.index.scenes if s.name == name), None)
            if found is None:
                known = ", ".join(s.name for s in self.index.scenes[:8])
                raise EasyOccError(f"no scene '{name}' in {self.inputs.data} (scenes: {known}"
                                   f"{', ...' if len(self.index.scenes) > 8 else ''})")
            return found
        if self.inputs.pred is not None:
            for scene in self.index.scenes:
                if any(self.prediction_path(kf).is_file() for kf in scene.keyframes):
                    return scene
        return self.index.scenes[0]

    @staticmethod
    def keyframe(scene: Scene, which: str | int | None) -> int:
        """Index in ``scene`` of a keyframe given by index (0-based) or sample token; 0 for None."""
        if which is None:
            return 0
        text = str(which)
        if text.lstrip("-").isdigit():
            index = int(text)
            if not 0 <= index < len(scene.keyframes):
                raise EasyOccError(f"keyframe {index} is outside {scene.name} (0..{len(scene.keyframes) - 1})")
            return index
        for i, kf in enumerate(scene.keyframes):
            if kf.token == text:
                return i
        raise EasyOccError(f"no keyframe with sample token {text} in {scene.name}")

    # --- files --------------------------------------------------------------------------------------------------

    def prediction_path(self, kf: Keyframe) -> Path:
        from easyocc.occ3d import prediction_path

        return prediction_path(self.inputs.pred, kf.token)

    def volumes(self, kf: Keyframe) -> KeyframeVolumes:
        """The keyframe's volumes and scores (read once; the last few are kept)."""
        from easyocc.data.occ_dataset import label_path

        if kf.token in self._volumes:
            self._volumes.move_to_end(kf.token)
            return self._volumes[kf.token]
        volumes = KeyframeVolumes()
        if self.inputs.gt is not None and label_path(self.inputs.gt, kf).is_file():
            volumes.gt = read_labels(label_path(self.inputs.gt, kf))
        if self.inputs.labels is not None and label_path(self.inputs.labels, kf).is_file():
            volumes.labels = read_labels(label_path(self.inputs.labels, kf))
        if self.inputs.pred is not None and self.prediction_path(kf).is_file():
            volumes.pred = read_prediction(self.prediction_path(kf))
        if volumes.gt is not None:
            for name in ("pred", "labels"):
                candidate = volumes.candidate(name)
                if candidate is not None:
                    volumes.scores[name] = keyframe_scores(volumes.gt, candidate)
        self._volumes[kf.token] = volumes
        while len(self._volumes) > _CACHED_KEYFRAMES:
            self._volumes.popitem(last=False)
        return volumes

    def camera_images(self, kf: Keyframe, mode: str, width: int = IMAGE_WIDTH) -> dict[str, np.ndarray]:
        """The six camera images (H, W, 3) uint8 at ``width`` pixels, with the 2D source's semantics or depth laid
        over them for ``mode`` "semantics" / "depth"; {} for "none"."""
        from easyocc.data.occ_dataset import DataConfig, load_camera_image

        self.require_image_mode(mode)
        if mode == "none":
            return {}
        images = {}
        for name in CAMERA_NAMES:
            cam = kf.cameras[name]
            height = max(1, round(width * cam.height / cam.width))
            chw, _ = load_camera_image(cam.image_path, cam.K, (cam.width, cam.height),
                                       DataConfig(image_size=(height, width)))
            image = chw.transpose(1, 2, 0)
            if mode == "semantics":
                image = L.semantic_overlay(image, L.sample_nearest(self.semantic_source.semantics(cam), image.shape))
            elif mode == "depth":
                image = L.depth_overlay(image, L.sample_nearest(self.depth_source.depth(cam), image.shape))
            images[name] = np.ascontiguousarray(image)
        return images


#: Titles of the volumes scored against the GT.
SCORED_TITLES = {"pred": "prediction", "labels": "pseudo-labels"}


def scores_tables(scores: dict[str, Scores]) -> list[tuple[list[str], list[list[str]]]]:
    """One keyframe's scores as tables of (header, rows) of text: Occ3D mIoU / IoU per scored volume, then the
    per-class IoU (camera mask) of the classes present in the GT or a scored volume. [] without scores."""
    if not scores:
        return []
    summary = (["", "mIoU", "IoU", "mIoU, full"],
               [[SCORED_TITLES[n], _pct(s.camera.miou), _pct(s.camera.iou), _pct(s.none.miou)]
                for n, s in scores.items()])
    per_class = (["class"] + [SCORED_TITLES[n] for n in scores], [
        [cls] + [_pct(s.camera.per_class[c]) for s in scores.values()]
        for c, cls in enumerate(CLASS_NAMES[:-1])
        if not all(np.isnan(s.camera.per_class[c]) for s in scores.values())
    ])
    return [summary, per_class]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown lines; columns after the first are right-aligned."""
    return (["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
            + ["| " + " | ".join(row) + " |" for row in rows])


SCORES_NOTE = ("Occ3D mIoU (17 classes present in GT or prediction) and geometric IoU of this keyframe alone, "
               "under the GT camera mask; *full*: every voxel.")


def _pct(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{value:.1f}"
