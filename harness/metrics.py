"""Every reported figure is computed here, from stored predictions, by one tested module.

Definitions (the ones emotion-recognition papers use, stated because papers mix them up):
  accuracy (WA, weighted accuracy)  correct / total
  UAR (unweighted average recall)   mean over classes present in y_true of per-class recall (= balanced acc.)
  macro-F1                          mean F1 over classes present in y_true or y_pred
  weighted-F1                       per-class F1 weighted by the class's support in y_true
A class that is never predicted has precision 0 (not NaN); a class absent from y_true has no recall and is left
out of UAR, as in scikit-learn's balanced_accuracy_score.

The arithmetic is kept here, on confusion matrices, because the report also scores thousands of resampled
matrices at once (`headline_from_confusions`); scikit-learn is the reference: tests/test_metrics.py holds every
figure (confusion, WA, UAR, macro-/weighted-F1, per-class precision/recall/F1/support) equal to sklearn.metrics
on random inputs, including classes never predicted and classes absent from the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "uar", "macro_f1", "weighted_f1")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape}, y_pred {y_pred.shape}")
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes})")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


@dataclass(frozen=True)
class Scores:
    accuracy: float
    uar: float
    macro_f1: float
    weighted_f1: float
    per_class: pd.DataFrame  # index = class name; precision, recall, f1, support
    confusion: np.ndarray

    def headline(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in HEADLINE_METRICS}


def _per_class(matrices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-class support, predicted count, correct count, precision, recall and F1 of confusion matrices
    `[..., C, C]`: the one definition behind both the single and the batched scores (0 where undefined)."""
    support = matrices.sum(axis=-1)
    predicted = matrices.sum(axis=-2)
    correct = np.diagonal(matrices, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, correct / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, correct / np.maximum(support, 1), 0.0)
        denominator = precision + recall
        f1 = np.where(denominator > 0, 2 * precision * recall / np.where(denominator > 0, denominator, 1), 0.0)
    return support, predicted, correct, precision, recall, f1


def scores_from_confusion(matrix: np.ndarray, classes: list[str]) -> Scores:
    matrix = np.asarray(matrix, dtype=np.int64)
    total = int(matrix.sum())
    if total == 0:
        raise ValueError("no predictions to score")
    support, predicted, correct, precision, recall, f1 = _per_class(matrix)
    present = support > 0
    involved = present | (predicted > 0)
    per_class = pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support},
                             index=pd.Index(classes, name="class"))
    return Scores(
        accuracy=float(correct.sum() / total),
        uar=float(recall[present].mean()),
        macro_f1=float(f1[involved].mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        per_class=per_class,
        confusion=matrix,
    )


def score(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> Scores:
    return scores_from_confusion(confusion_matrix(y_true, y_pred, len(classes)), classes)


def uar(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The UAR of two label arrays, by the definition above (0.0 for no clips): the one UAR that the harness's own
    training loops (fine-tuning, end-to-end) stop early on, so they select by what the leaderboard reports.
    (`methods/` keeps its own copy, `unweighted_average_recall`, because a method never imports the harness;
    tests/test_metrics.py holds the two equal.)"""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if not y_true.size:
        return 0.0
    n_classes = int(max(y_true.max(), y_pred.max())) + 1
    return float(headline_from_confusions(confusion_matrix(y_true, y_pred, n_classes))["uar"])


def summarise_folds(fold_scores: list[Scores]) -> dict[str, float]:
    """Mean and sample standard deviation over folds of each headline metric: {uar_mean, uar_std, ...}."""
    summary: dict[str, float] = {}
    for name in HEADLINE_METRICS:
        values = np.array([getattr(s, name) for s in fold_scores], dtype=float)
        summary[f"{name}_mean"] = float(values.mean())
        summary[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary


def headline_from_confusions(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """The headline metrics of a stack of confusion matrices `[..., C, C]`, vectorised over the leading axes.

    The same definitions as `scores_from_confusion` (a test holds them equal); this form exists so the report's
    bootstrap and permutation tests can score thousands of resampled confusion matrices at once. A matrix with no
    predictions scores NaN.
    """
    matrices = np.asarray(matrices, dtype=float)
    support, predicted, correct, _, recall, f1 = _per_class(matrices)
    total = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        present = support > 0
        involved = present | (predicted > 0)
        return {
            "accuracy": np.where(total > 0, correct.sum(axis=-1) / total, np.nan),
            "uar": np.where(total > 0, (recall * present).sum(axis=-1) / present.sum(axis=-1), np.nan),
            "macro_f1": np.where(total > 0, (f1 * involved).sum(axis=-1) / involved.sum(axis=-1), np.nan),
            "weighted_f1": np.where(total > 0, (f1 * support).sum(axis=-1) / total, np.nan),
        }


# ---- perceived emotion: scores against annotator rating distributions (soft labels) --------------------------
# Corpora with crowd ratings (CREMA-D's tabulatedVotes.csv, through the card's `ratings:`) score a method's stored
# class probabilities against what listeners perceived, not only against the acted label (as EMO-SUPERB does):
#   jsd                 Jensen-Shannon divergence, base 2 (in [0, 1]), between the predicted distribution and the
#                       clip's normalised vote counts: scipy.spatial.distance.jensenshannon squared (scipy returns
#                       the distance, the square root of the divergence); mean over clips. Lower is better.
#   plurality_accuracy  accuracy against the plurality vote. Ties: a clip whose top vote count is shared by k
#                       classes gives 1/k credit when the prediction is one of them (the expected accuracy of
#                       breaking the tie at random; no clip is dropped). Higher is better.
# Clips without any rating are left out and counted.
SOFT_METRICS: tuple[str, ...] = ("jsd", "plurality_accuracy")
SOFT_LOWER_IS_BETTER: frozenset[str] = frozenset({"jsd"})


def soft_label_clip_scores(probabilities: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each clip's soft scores, [clips] per metric of SOFT_METRICS (NaN for a clip without any rating), plus
    `tied` (1.0 where the top vote count is shared): the per-clip values whose mean `soft_label_scores` reports and
    whose grouped resampling gives the report's intervals and verdicts (`harness.stats.GroupedClipScores`)."""
    from scipy.spatial.distance import jensenshannon

    probabilities = np.asarray(probabilities, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if probabilities.shape != counts.shape or probabilities.ndim != 2:
        raise ValueError(f"probabilities {probabilities.shape} and counts {counts.shape} must be [clips, classes]")
    rated = counts.sum(axis=1) > 0
    out = {name: np.full(len(counts), np.nan) for name in (*SOFT_METRICS, "tied")}
    p, c = probabilities[rated], counts[rated]
    if len(p):
        top = c == c.max(axis=1, keepdims=True)
        out["jsd"][rated] = jensenshannon(p, c, axis=1, base=2) ** 2  # normalises both rows to sum 1
        out["plurality_accuracy"][rated] = top[np.arange(len(p)), p.argmax(axis=1)] / top.sum(axis=1)
        out["tied"][rated] = (top.sum(axis=1) > 1).astype(float)
    return out


def soft_label_scores(probabilities: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """`probabilities` [clips, classes] against rating `counts` [clips, classes] (same class order): the mean
    JSD, the tie-aware plurality accuracy, and how many clips were scored, unrated, and tied."""
    clips = soft_label_clip_scores(probabilities, counts)
    rated = ~np.isnan(clips["jsd"])
    if not rated.any():
        raise ValueError("no rated clip to score")
    return {"jsd": float(np.mean(clips["jsd"][rated])), "plurality_accuracy": float(np.mean(
        clips["plurality_accuracy"][rated])), "n_rated": float(rated.sum()), "n_unrated": float((~rated).sum()),
        "n_tied": float(np.sum(clips["tied"][rated]))}


def summarise_soft_folds(fold_scores: list[dict[str, float]], prefix: str) -> dict[str, float]:
    """Mean and sample standard deviation over folds of each soft metric, named `<prefix>_<metric>_mean/_std`,
    as `summarise_folds` does for the hard ones (fold means, not a pool, so the two are read the same way)."""
    summary: dict[str, float] = {}
    for name in SOFT_METRICS:
        values = np.array([s[name] for s in fold_scores], dtype=float)
        summary[f"{prefix}_{name}_mean"] = float(values.mean())
        summary[f"{prefix}_{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary
