"""The pseudo loss: Lovász-softmax against its definition, class weights, regions and ignored voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from easyocc.config import config_from_dict
from easyocc.losses import (
    LossConfig,
    PseudoLoss,
    class_counts,
    class_weights_from_counts,
    lovasz_softmax_flat,
)
from easyocc.occ3d import FREE, IGNORE, NUM_CLASSES


def jaccard_loss_of_set(mispredicted: set[int], ground_truth: set[int]) -> float:
    """Berman et al.'s set function: Δ_J(M) = |M| / |G ∪ M| (0 for M empty)."""
    if not mispredicted:
        return 0.0
    return len(mispredicted) / len(ground_truth | mispredicted)


def lovasz_extension_by_thresholds(errors: np.ndarray, ground_truth: set[int]) -> float:
    """The Lovász extension by its definition for x in [0, 1]^p: the integral over t in [0, 1] of Δ({i: x_i >= t}).

    The level set is constant between consecutive distinct error values, so the integral is a finite sum.
    """
    levels = np.unique(np.concatenate([[0.0], errors]))
    total = 0.0
    for low, high in zip(levels[:-1], levels[1:]):
        level_set = {i for i, e in enumerate(errors) if e >= high}
        total += (high - low) * jaccard_loss_of_set(level_set, ground_truth)
    return total


def lovasz_softmax_reference(probs: np.ndarray, labels: np.ndarray, classes: str) -> float:
    """probs (C, P), labels (P,): the mean over classes of the Lovász extension at |[y = c] - p_c|."""
    losses = []
    for c in range(probs.shape[0]):
        ground_truth = set(np.flatnonzero(labels == c).tolist())
        if classes == "present" and not ground_truth:
            continue
        errors = np.abs((labels == c).astype(float) - probs[c])
        losses.append(lovasz_extension_by_thresholds(errors, ground_truth))
    return float(np.mean(losses))


def test_lovasz_hand_computed_two_voxels():
    # Class 0 on voxel 0 only; p_0 = (0.8, 0.3): errors (0.2, 0.3). For t <= 0.2 both voxels are mispredicted
    # (Δ = 2/2), for 0.2 < t <= 0.3 only voxel 1 (Δ = 1/2): 0.2 * 1 + 0.1 * 0.5 = 0.25. Class 1 mirrors it:
    # errors (0.2, 0.3), G = {1}: t <= 0.2 -> 1, then {1} alone mispredicted -> 1/1: 0.2 + 0.1 = 0.3.
    probs = torch.tensor([[0.8, 0.3], [0.2, 0.7]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    assert lovasz_softmax_flat(probs, labels).item() == pytest.approx((0.25 + 0.3) / 2)


@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("seed", range(6))
def test_lovasz_matches_definition_on_random_cases(classes, seed):
    rng = np.random.default_rng(seed)
    num_classes, num_voxels = 5, int(rng.integers(1, 12))
    logits = rng.normal(size=(num_classes, num_voxels)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    if seed % 2:
        probs = np.round(probs, 1)  # ties between errors
    labels = rng.integers(0, num_classes - 1, size=num_voxels)  # the last class never occurs
    got = lovasz_softmax_flat(torch.from_numpy(probs), torch.from_numpy(labels), classes).item()
    assert got == pytest.approx(lovasz_softmax_reference(probs, labels, classes), abs=1e-12)


def test_lovasz_perfect_and_empty():
    labels = torch.tensor([0, 2, 1, 1])
    assert lovasz_softmax_flat(F.one_hot(labels, 3).T.double(), labels).item() == 0.0
    empty = lovasz_softmax_flat(torch.zeros(3, 0, requires_grad=True), torch.zeros(0, dtype=torch.long))
    assert empty.item() == 0.0 and empty.requires_grad


def test_lovasz_gradient_flows():
    logits = torch.randn(4, 50, dtype=torch.float64, requires_grad=True)
    lovasz_softmax_flat(logits.softmax(0), torch.randint(0, 4, (50,))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_class_weights_inverse_sqrt_frequency():
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    counts[[1, 4, FREE]] = [100, 400, 10_000]
    weights = class_weights_from_counts(counts)
    assert weights[1] / weights[4] == pytest.approx(2.0)  # sqrt(400 / 100)
    assert weights[4] / weights[FREE] == pytest.approx(5.0)  # sqrt(10000 / 400)
    assert weights[[1, 4, FREE]].mean() == pytest.approx(1.0)
    assert np.all(weights[[0, 2, 3, 16]] == 0)
    with pytest.raises(ValueError):
        class_weights_from_counts(np.zeros(NUM_CLASSES))


def test_class_weights_inverse_frequency_and_none():
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    counts[[1, 4, FREE]] = [100, 400, 10_000]
    weights = class_weights_from_counts(counts, "inverse_frequency")
    assert weights[1] / weights[4] == pytest.approx(4.0)  # 400 / 100
    assert weights[4] / weights[FREE] == pytest.approx(25.0)  # 10000 / 400
    # scaled to mean 1 over the classes that occur: 1/f = 105, 26.25, 1.05 (f = count / 10500)
    np.testing.assert_allclose(weights[[1, 4, FREE]], np.array([105.0, 26.25, 1.05]) / (132.3 / 3), rtol=1e-6)
    assert np.all(weights[[0, 2, 3, 16]] == 0)
    assert np.all(class_weights_from_counts(counts, "none") == 1.0)
    with pytest.raises(ValueError, match="unknown class weighting 'sqrt'"):
        class_weights_from_counts(counts, "sqrt")
    config = config_from_dict(LossConfig, {"class_weighting": "inverse_frequency"})
    loss = PseudoLoss(config, weights)
    torch.testing.assert_close(loss.class_weights, torch.from_numpy(weights))


def test_class_counts_respect_mask_and_ignore():
    semantics = np.array([[[0, 3, 3, IGNORE, FREE, FREE]]], dtype=np.uint8)
    mask = np.array([[[1, 1, 0, 1, 1, 1]]], dtype=np.uint8)
    assert class_counts(semantics).tolist() == [1, 0, 0, 2] + [0] * 13 + [2]
    assert class_counts(semantics, mask).tolist() == [1, 0, 0, 1] + [0] * 13 + [2]


def _volume(seed=0, shape=(1, 6, 5, 4)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], NUM_CLASSES, *shape[1:], generator=generator, dtype=torch.float64)
    semantics = torch.randint(0, NUM_CLASSES, shape, generator=generator).to(torch.uint8)
    mask = torch.rand(shape, generator=generator) > 0.4
    return logits.requires_grad_(), semantics, mask


def test_cross_entropy_is_the_class_weighted_mean():
    logits, semantics, mask = _volume()
    weights = np.linspace(0.5, 2.0, NUM_CLASSES).astype(np.float32)
    loss = PseudoLoss(config_from_dict(LossConfig, {"lovasz_weight": 0.0}), weights).double()
    out = loss(logits, semantics, mask)
    log_probs = logits.detach().log_softmax(1).movedim(1, -1)[mask]
    targets = semantics[mask].long()
    w = torch.from_numpy(weights).double()[targets]
    expected = -(w * log_probs[torch.arange(len(targets)), targets]).sum() / w.sum()
    assert out["ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["ce"].item())


def test_camera_region_and_ignore_leave_other_voxels_out():
    logits, semantics, mask = _volume(1)
    semantics[0, 0, 0, 0] = IGNORE
    mask[0, 0, 0, 0] = True
    config = config_from_dict(LossConfig, {"class_weighting": "none", "lovasz_classes": "all"})
    out = PseudoLoss(config)(logits, semantics, mask)
    out["loss"].backward()
    outside = ~mask
    outside[0, 0, 0, 0] = True
    assert logits.grad.movedim(1, -1)[outside].abs().max() == 0
    assert logits.grad.movedim(1, -1)[~outside].abs().sum() > 0
    # The same logits with the camera mask everywhere: a different loss.
    everywhere = PseudoLoss(config_from_dict(LossConfig, {"class_weighting": "none", "region": "all"}))
    assert everywhere(logits, semantics, mask)["loss"].item() != pytest.approx(out["loss"].item())


def test_lovasz_over_occupied_voxels_ignores_free_ones():
    logits, semantics, mask = _volume(2)
    config = config_from_dict(LossConfig, {"ce_weight": 0.0, "class_weighting": "none", "lovasz_voxels": "occupied",
                                           "region": "all"})
    loss = PseudoLoss(config)
    before = loss(logits, semantics, mask)["lovasz"].item()
    changed = logits.detach().clone()
    free = (semantics == FREE)[:, None].expand_as(changed)
    changed[free] = torch.randn(int(free.sum()), dtype=changed.dtype)
    assert loss(changed, semantics, mask)["lovasz"].item() == pytest.approx(before)
    probs = logits.detach().softmax(1).movedim(1, 0).reshape(NUM_CLASSES, -1)
    labels = semantics.reshape(-1).long()
    occupied = labels != FREE
    assert before == pytest.approx(lovasz_softmax_reference(probs[:, occupied].numpy(), labels[occupied].numpy(),
                                                            "present"), abs=1e-9)


def test_total_is_the_weighted_sum_and_config_is_checked():
    logits, semantics, mask = _volume(3)
    out = PseudoLoss(config_from_dict(LossConfig, {"ce_weight": 0.5, "lovasz_weight": 2.0,
                                                   "class_weighting": "none"}))(logits, semantics, mask)
    assert out["loss"].item() == pytest.approx(0.5 * out["ce"].item() + 2.0 * out["lovasz"].item())
    with pytest.raises(ValueError, match="needs class_weights"):
        PseudoLoss(LossConfig())
    with pytest.raises(ValueError):
        config_from_dict(LossConfig, {"ce_weight": 0.0, "lovasz_weight": 0.0})


def test_no_labelled_voxel_gives_zero_loss_not_nan():
    logits, semantics, _ = _volume(4)
    out = PseudoLoss(config_from_dict(LossConfig, {"class_weighting": "none"}))(
        logits, semantics, torch.zeros(semantics.shape, dtype=torch.bool))
    assert out["loss"].item() == 0.0
    out["loss"].backward()
    assert logits.grad.abs().sum() == 0
