"""Voxel metrics as small count objects: ``update`` per sample, ``merge`` across workers, ``all_reduce`` across ranks.

Every metric keeps raw int64 counts; scores are computed once from the counts summed over the whole set (never
averaged per sample or per rank), exactly as the Occ3D devkit's ``Metric_mIoU`` sums one confusion matrix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np

from easyocc.occ3d import FREE, NUM_CLASSES, NUM_SEMANTIC_CLASSES, OCCNERF_15_CLASSES


class CountMetric:
    """A metric whose whole state is int64 count arrays (``_count_arrays``), so summing states is exact."""

    def _count_arrays(self) -> list[np.ndarray]:
        raise NotImplementedError

    def merge(self, other: "CountMetric") -> "CountMetric":
        """Add ``other``'s counts into this metric (in place); returns self."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for mine, theirs in zip(self._count_arrays(), other._count_arrays()):
            if mine.shape != theirs.shape:
                raise ValueError(f"count shapes differ: {mine.shape} vs {theirs.shape}")
            mine += theirs
        return self

    def all_reduce(self, group=None) -> "CountMetric":
        """Sum the counts of every rank of a torch.distributed ``group`` in memory; afterwards every rank holds the
        total. One collective for all arrays; on NCCL the buffer travels through the current CUDA device."""
        import torch
        import torch.distributed as dist

        arrays = self._count_arrays()
        flat = torch.from_numpy(np.concatenate([a.reshape(-1) for a in arrays]).astype(np.int64))
        if dist.get_backend(group) == "nccl":
            flat = flat.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat = flat.cpu().numpy()
        offset = 0
        for a in arrays:
            a.reshape(-1)[:] = flat[offset : offset + a.size]
            offset += a.size
        return self


@numba.njit(cache=True, nogil=True, inline="always")
def _count_voxel(gt, pred, i, num_classes, hist):
    """Count voxel i when 0 <= gt < C; returns 1 when its prediction is outside 0..C-1 (then not counted)."""
    g = gt[i]
    if g < 0 or g >= num_classes:
        return 0
    p = pred[i]
    if p < 0 or p >= num_classes:
        return 1
    hist[g * num_classes + p] += 1
    return 0


@numba.njit(cache=True, nogil=True)
def _accumulate_confusion(gt, pred, mask, use_mask, num_classes, hist):
    """hist[gt * C + pred] += 1 over voxels with 0 <= gt < C (and mask != 0); returns how many counted voxels had
    a prediction outside 0..C-1 (left out of the matrix)."""
    n = gt.shape[0]
    bad = 0
    if not use_mask:
        for i in range(n):
            bad += _count_voxel(gt, pred, i, num_classes, hist)
        return bad
    # Visibility masks are sparse and clustered: test them eight bytes at a time and skip empty words.
    words = n // 8
    mask_words = mask[: words * 8].view(np.uint64)
    for w in range(words):
        if mask_words[w] == 0:
            continue
        for i in range(w * 8, w * 8 + 8):
            if mask[i] != 0:
                bad += _count_voxel(gt, pred, i, num_classes, hist)
    for i in range(words * 8, n):
        if mask[i] != 0:
            bad += _count_voxel(gt, pred, i, num_classes, hist)
    return bad


def _flat(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array).reshape(-1)
    return array.view(np.uint8) if array.dtype == np.bool_ else array


@dataclass(frozen=True)
class VoxelScores:
    """Scores of one summed confusion matrix, in percent (0..100); nan where undefined.

    per_class: (18,) IoU per class (nan where the class is absent from both GT and prediction);
    miou: mean over classes 0..16 (official); miou_15: mean over the OccNeRF/GaussianOcc 15 classes;
    iou: geometric IoU of occupied (0..16) vs free.
    """

    per_class: np.ndarray
    miou: float
    miou_15: float
    iou: float


def per_class_iou(hist: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) per class of a confusion matrix (rows = GT, columns = prediction): (C,) float64,
    nan where the class is absent from both GT and prediction."""
    tp = np.diag(hist).astype(np.float64)
    union = hist.sum(axis=0) + hist.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def nanmean_percent(values: np.ndarray) -> float:
    """Mean of the non-nan values x 100 (nan when all are nan), as the devkit's ``np.nanmean(...) * 100``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values) * 100.0)


def geometric_iou(hist: np.ndarray) -> float:
    """IoU of occupied (classes 0..16) vs free from an 18x18 matrix, x100: tp = hist[:17, :17].sum(),
    iou = tp / (hist.sum() - hist[17, 17]) (GaussTR's ``compute_occ_iou``); nan for an empty matrix."""
    occupied = slice(0, NUM_SEMANTIC_CLASSES)
    tp = float(hist[occupied, occupied].sum())
    denominator = float(hist.sum() - hist[FREE, FREE])
    return tp / denominator * 100.0 if denominator > 0 else float("nan")


class ConfusionMatrix(CountMetric):
    """The Occ3D devkit's 18x18 confusion matrix (rows = GT, columns = prediction), summed over a dataset.

    >>> cm = ConfusionMatrix()
    >>> gt = np.full((2, 2, 1), 17, np.uint8); gt[0, 0, 0] = 4
    >>> cm.update(gt, gt.copy()); round(cm.compute().miou, 2)
    100.0
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes
        self.hist = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.num_samples = np.zeros(1, dtype=np.int64)

    def _count_arrays(self) -> list[np.ndarray]:
        return [self.hist, self.num_samples]

    def update(self, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count one sample.

        gt, pred: (X, Y, Z) integer class ids (uint8 for speed); voxels with gt outside 0..C-1 (255) are ignored,
        as the devkit does. mask: (X, Y, Z) bool/uint8 or None; only voxels where it is set are counted.
        Raises ValueError when a counted voxel has a prediction outside 0..C-1.
        """
        if gt.shape != pred.shape or (mask is not None and mask.shape != gt.shape):
            shapes = f"gt {gt.shape}, pred {pred.shape}" + (f", mask {mask.shape}" if mask is not None else "")
            raise ValueError(f"shapes differ: {shapes}")
        use_mask = mask is not None
        mask_flat = _flat(mask) if use_mask else np.zeros(1, np.uint8)
        bad = _accumulate_confusion(
            _flat(gt), _flat(pred), mask_flat, use_mask, self.num_classes, self.hist.reshape(-1)
        )
        if bad:
            raise ValueError(f"{bad} predicted voxels have a class outside 0..{self.num_classes - 1}")
        self.num_samples += 1

    def compute(self) -> VoxelScores:
        """Per-class IoU, official mIoU (classes 0..16), mIoU_15 and geometric IoU, all in percent."""
        iou = per_class_iou(self.hist)
        return VoxelScores(
            per_class=iou * 100.0,
            miou=nanmean_percent(iou[:NUM_SEMANTIC_CLASSES]),
            miou_15=nanmean_percent(iou[list(OCCNERF_15_CLASSES)]),
            iou=geometric_iou(self.hist),
        )
