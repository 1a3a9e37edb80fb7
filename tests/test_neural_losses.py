"""The emotion metric loss (Mocanu et al. Eq. 16) against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from methods.neural.losses import emotion_metric_loss, polarity_vector

CLASSES = ["neutral", "happy", "calm", "angry"]
POLARITY = {"neutral": "neutral", "happy": "positive", "calm": "positive", "angry": "negative"}


def _loss(points: list[float], labels: list[int], alpha: float, beta: float) -> torch.Tensor:
    embedding = torch.tensor(points, dtype=torch.float32).unsqueeze(1)  # 1-D embeddings: d(i, j) = (e_i - e_j)^2
    return emotion_metric_loss(embedding, torch.tensor(labels), polarity_vector(CLASSES, POLARITY), alpha, beta)


def test_eq16_on_four_samples_matches_hand_computation() -> None:
    # happy@0, happy@1, calm@2, angry@3; alpha = beta = 1.
    # anchor 0: [d01 - d02 + 1]+ = [1-4+1]+ = 0;  [d02 - d03 + 1]+ = [4-9+1]+ = 0       -> 0
    # anchor 1: [d10 - d12 + 1]+ = [1-1+1]+ = 1;  [d12 - d13 + 1]+ = [1-4+1]+ = 0       -> 1
    # anchor 2 (calm, no same-class partner): term 2 only, r2 in {0, 1}, n = 3:
    #           ([4-1+1]+ + [1-1+1]+) / 2 = (4 + 1) / 2                                   -> 2.5
    # anchor 3 (angry): no related class and no positive -> no valid combination, not counted
    value = _loss([0.0, 1.0, 2.0, 3.0], [1, 1, 2, 3], alpha=1.0, beta=1.0)
    assert value.item() == pytest.approx((0.0 + 1.0 + 2.5) / 3)


def test_neutral_anchor_uses_plain_triplet() -> None:
    # neutral@0, neutral@2, happy@1, angry@3; alpha = 1 (beta unused).
    # anchor 0: p = 2 (d=4); n in {happy d=1, angry d=9}: ([4-1+1]+ + [4-9+1]+) / 2 = 2
    # anchor 1 (e=2): p = 0 (d=4); n in {happy d=1, angry d=1}: (4 + 4) / 2 = 4
    # happy and angry anchors: no related class, no same-class partner -> not counted
    value = _loss([0.0, 2.0, 1.0, 3.0], [0, 0, 1, 3], alpha=1.0, beta=5.0)
    assert value.item() == pytest.approx(3.0)


def test_zero_when_margins_are_satisfied() -> None:
    value = _loss([0.0, 0.1, 1.0, 5.0], [1, 1, 2, 3], alpha=0.5, beta=0.5)
    assert value.item() == 0.0


def test_gradient_reaches_embeddings() -> None:
    embedding = torch.tensor([[0.0], [1.0], [2.0], [3.0]], requires_grad=True)
    loss = emotion_metric_loss(embedding, torch.tensor([1, 1, 2, 3]), polarity_vector(CLASSES, POLARITY), 1.0, 1.0)
    loss.backward()
    assert embedding.grad is not None and embedding.grad.abs().sum() > 0


def test_without_polarity_every_anchor_is_a_plain_triplet() -> None:
    # No map: all neutral. happy@0, happy@1, calm@2, angry@3, alpha = 1:
    # anchor 0: p=1 (d=1), n in {calm d=4, angry d=9}: [1-4+1]+ = 0, [1-9+1]+ = 0 -> 0
    # anchor 1: p=0 (d=1), n in {calm d=1, angry d=4}: [1-1+1]+ = 1, [1-4+1]+ = 0 -> 0.5
    embedding = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    value = emotion_metric_loss(embedding, torch.tensor([1, 1, 2, 3]), polarity_vector(CLASSES, None), 1.0, 1.0)
    assert value.item() == pytest.approx(0.25)


def test_unknown_polarity_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive/negative/neutral"):
        polarity_vector(CLASSES, {"happy": "good"})


def test_crema_d_card_polarity_drives_the_loss() -> None:
    """CREMA-D's six classes through its dataset card: negative anchors get Eq. 16 (related negatives exist),
    the lone positive class (happy) falls back to the plain triplet."""
    from harness.datasets import get_dataset

    card = get_dataset("crema-d")
    signs = polarity_vector(list(card.classes), card.polarity)
    assert signs.tolist() == [-1, -1, -1, 1, 0, -1]
    # anger@0, anger@1, disgust@2, happy@3; alpha = beta = 1.
    # anchor 0: [1-4+1]+ = 0 ; [d02 - d03 + 1]+ = [4-9+1]+ = 0      -> 0
    # anchor 1: [1-1+1]+ = 1 ; [d12 - d13 + 1]+ = [1-4+1]+ = 0      -> 1
    # anchor 2 (disgust): no partner; r2 in {0, 1}, n = 3: ([4-1+1]+ + [1-1+1]+) / 2 -> 2.5
    # anchor 3 (happy): no related positive class, no partner -> not counted
    embedding = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    value = emotion_metric_loss(embedding, torch.tensor([0, 0, 1, 3]), signs, 1.0, 1.0)
    assert value.item() == pytest.approx(3.5 / 3)
