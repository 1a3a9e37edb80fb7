"""Degenerate corpora, refused before the search in one line each (issue 20).

Why: a one-class corpus once scanned with "problems: none" and ranked `test UAR 1.000`; a class with 1-2 clips
failed every `audio-svm` unit in calibration (1,622 lines). Both are visible from the labels and the folds alone,
so they are checked once per dataset after its folds are made and before any unit runs:
- `too_few_classes`: fewer than 2 classes present (nothing to recognise): the dataset is skipped;
- `thin_classes`: a class with fewer than `MIN_TRAIN_PER_CLASS` clips in some fold's training part: the methods
  are skipped for that dataset with this reason (the harness's methods calibrate, stack or stop early inside the
  training part with stratified splits of >= 2 per class; see methods/classifiers.py `_svm`, classical stacking).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.protocols import Fold

MIN_TRAIN_PER_CLASS = 2


def too_few_classes(labels: np.ndarray, classes: Sequence[str]) -> str | None:
    """Why a corpus with these labels cannot be benchmarked (fewer than 2 classes present), or None."""
    present = sorted({classes[int(i)] for i in np.unique(labels)})
    if len(present) >= 2:
        return None
    return (f"only {len(present)} class present ({', '.join(present) or 'none'}): recognition needs >= 2; check the "
            "card's label template and the corpus (`harness data scan`)")


def thin_classes(ids: Sequence[str], labels: np.ndarray, classes: Sequence[str], folds: Sequence[Fold],
                 minimum: int = MIN_TRAIN_PER_CLASS) -> str | None:
    """The first (fold, class) whose training part holds fewer than `minimum` clips of a class present in the
    corpus, as one line naming the count and the fix, or None."""
    index = {clip: i for i, clip in enumerate(ids)}
    present = np.unique(labels)
    for fold in folds:
        rows = [index[c] for c in fold.train if c in index]
        counts = np.bincount(labels[rows].astype(int), minlength=len(classes)) if rows else np.zeros(len(classes))
        for c in present:
            if counts[int(c)] < minimum:
                return (f"class {classes[int(c)]!r} has {int(counts[int(c)])} training clip(s) in {fold.name} "
                        f"(the methods need >= {minimum} per class); drop the class with a card target "
                        "(--target) or use a protocol with fewer folds")
    return None
