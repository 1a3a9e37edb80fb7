"""Degenerate corpora are named in one line before the search (issue 20)."""

from __future__ import annotations

import numpy as np

from harness.datachecks import thin_classes, too_few_classes
from harness.protocols import Fold

CLASSES = ["angry", "happy", "sad"]


def test_a_one_class_corpus_is_refused() -> None:
    assert "only 1 class present (happy)" in too_few_classes(np.array([1, 1, 1]), CLASSES)
    assert too_few_classes(np.array([0, 1, 1]), CLASSES) is None


def test_a_class_too_thin_in_one_training_part_is_named_with_its_fold() -> None:
    ids = [f"c{i}" for i in range(8)]
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])  # 'sad' has 2 clips: one fold's training part keeps only 1
    folds = [Fold("fold0", ids[:3] + ids[3:5] + ids[6:7], [], ids[7:]),
             Fold("fold1", ids[:6] + ids[6:8], [], [])]
    assert thin_classes(ids, labels, CLASSES, folds) == (
        "class 'sad' has 1 training clip(s) in fold0 (the methods need >= 2 per class); drop the class with a "
        "card target (--target) or use a protocol with fewer folds")
    assert thin_classes(ids, labels, CLASSES, folds[1:]) is None


def test_the_run_skips_a_degenerate_dataset_with_the_reason() -> None:
    from types import SimpleNamespace

    from harness.pipeline import _degenerate

    ids = [f"c{i}" for i in range(4)]
    one_class = SimpleNamespace(data=SimpleNamespace(ids=ids, labels=np.zeros(4, int), classes=CLASSES),
                                folds=[Fold("fold0", ids[:2], [], ids[2:])])
    assert "only 1 class present (angry)" in _degenerate(one_class)
    fine = SimpleNamespace(data=SimpleNamespace(ids=ids, labels=np.array([0, 0, 1, 1]), classes=CLASSES),
                           folds=[Fold("fold0", ids, [], [])])
    assert _degenerate(fine) is None
