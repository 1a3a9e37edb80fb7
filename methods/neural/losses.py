"""The emotion metric loss of Mocanu et al. (Image and Vision Computing 2023, Eq. 16).

For an anchor a of a polar class (positive or negative valence):
    [ |a-p|^2 - |a-r1|^2 + alpha ]_+  +  [ |a-r2|^2 - |a-n|^2 + beta ]_+
p: same class; r1, r2: a *related* emotion (another class of the same polarity); n: the opposite polarity.
The first term pulls same-class clips closer than related emotions, the second keeps related emotions closer
than opposite ones. A neutral anchor (or a polar anchor whose batch holds no related clip) uses the plain
triplet [ |a-p|^2 - |a-n|^2 + alpha ]_+ with n any other class.

Mining is "batch-all" within the mini-batch: each term is averaged over every valid (anchor, p, r1),
(anchor, r2, n) or (anchor, p, n) combination of that anchor; an anchor's loss is the sum of its term means and
the batch loss is the mean over anchors that have at least one valid combination (0 when none has).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

POLARITY_SIGN = {"positive": 1, "negative": -1, "neutral": 0}


def polarity_vector(classes: Sequence[str], polarity: dict[str, str] | None) -> torch.Tensor:
    """Class index -> +1 / -1 / 0. Classes missing from the map (or no map at all) count as neutral, which
    turns their anchors into plain triplets."""
    polarity = polarity or {}
    unknown = sorted(set(polarity.values()) - set(POLARITY_SIGN))
    if unknown:
        raise ValueError(f"polarity values must be positive/negative/neutral, got {unknown}")
    return torch.tensor([POLARITY_SIGN[polarity.get(c, "neutral")] for c in classes], dtype=torch.long)


def _hinge_mean(d_ap: torch.Tensor, d_an: torch.Tensor, valid: torch.Tensor, margin: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: mean over valid (x, y) of [d(a,x) - d(a,y) + margin]_+, and whether any was valid.

    d_ap, d_an: [B, B] squared distances; valid: [B, B, B] for (anchor, x, y)."""
    hinge = torch.relu(d_ap[:, :, None] - d_an[:, None, :] + margin)
    count = valid.sum(dim=(1, 2))
    total = torch.where(valid, hinge, torch.zeros_like(hinge)).sum(dim=(1, 2))
    return total / count.clamp_min(1), count > 0


def emotion_metric_loss(embedding: torch.Tensor, labels: torch.Tensor, class_polarity: torch.Tensor,
                        alpha: float = 0.2, beta: float = 0.2) -> torch.Tensor:
    """Eq. 16 over all valid combinations in the batch (see the module docstring)."""
    e = embedding.float()
    dist = (e[:, None, :] - e[None, :, :]).pow(2).sum(-1)  # [B, B] squared Euclidean
    sign = class_polarity.to(labels.device)[labels]  # [B]
    b = len(labels)
    not_self = ~torch.eye(b, dtype=torch.bool, device=labels.device)
    same = (labels[:, None] == labels[None, :]) & not_self
    other = labels[:, None] != labels[None, :]
    related = other & (sign[:, None] == sign[None, :]) & (sign[:, None] != 0)
    opposite = (sign[:, None] * sign[None, :]) < 0
    polar = sign != 0
    has_related = related.any(dim=1)
    emotion_anchor = polar & has_related  # Eq. 16 applies; otherwise the plain triplet
    term1, ok1 = _hinge_mean(dist, dist, emotion_anchor[:, None, None] & same[:, :, None] & related[:, None, :],
                             alpha)
    term2, ok2 = _hinge_mean(dist, dist, emotion_anchor[:, None, None] & related[:, :, None]
                             & opposite[:, None, :], beta)
    plain, ok3 = _hinge_mean(dist, dist, (~emotion_anchor)[:, None, None] & same[:, :, None] & other[:, None, :],
                             alpha)
    per_anchor = term1 * ok1 + term2 * ok2 + plain * ok3
    counted = ok1 | ok2 | ok3
    if not bool(counted.any()):
        return e.sum() * 0.0  # keeps the graph; no valid combination in this batch
    return per_anchor[counted].mean()
