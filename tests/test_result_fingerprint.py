"""A finished result is reused only when everything it was evaluated against is identical."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from harness.config import Settings
from harness.datasets.synthetic import SPEC
from harness.manifest import Manifest
from harness.pipeline import result_fingerprint
from harness.prepare import PreparedDataset
from harness.protocols import Fold
from methods import MultimodalData, get_method


def _prepared(tmp_path, labels: list[str], test_ids: list[str]) -> PreparedDataset:
    ids = [f"c{i}" for i in range(6)]
    table = pd.DataFrame({"clip_id": ids, "speaker": ["a", "a", "b", "b", "c", "c"], "label": labels})
    manifest = Manifest("toy", tmp_path, ["happy", "sad"], table)
    train = [c for c in ids if c not in test_ids and c not in ("c2", "c3")]
    folds = [Fold("fold0", train, ["c2", "c3"], test_ids)]
    data = MultimodalData(ids=ids, classes=manifest.classes, pooled={"audio": np.zeros((6, 2))},
                          labels=np.array([manifest.classes.index(x) for x in labels]))
    return PreparedDataset(SPEC, manifest, folds, data, {"audio": "egemaps:k"}, pd.DataFrame(), {})


def test_labels_and_fold_membership_are_part_of_the_result_key(tmp_path):
    method, settings = get_method("audio-svm"), Settings()
    labels = ["happy", "sad"] * 3
    base = result_fingerprint(method, _prepared(tmp_path, labels, ["c4", "c5"]), settings, {}, True, [{}])
    assert base == result_fingerprint(method, _prepared(tmp_path, labels, ["c4", "c5"]), settings, {}, True, [{}])
    relabelled = ["sad"] + labels[1:]  # a card's label mapping changed; media and fold sizes did not
    assert base != result_fingerprint(method, _prepared(tmp_path, relabelled, ["c4", "c5"]), settings, {}, True, [{}])
    moved = _prepared(tmp_path, labels, ["c4", "c5"])
    moved = dataclasses.replace(moved, folds=[Fold("fold0", ["c4", "c5"], ["c2", "c3"], ["c0", "c1"])])
    assert base != result_fingerprint(method, moved, settings, {}, True, [{}])  # same fold sizes, other clips
    same = _prepared(tmp_path, labels, ["c4", "c5"])
    assert base != result_fingerprint(method, same, settings, {}, False, [{}])  # validated models, no refit
    assert base != result_fingerprint(method, same, settings, {}, True, [{"C": 2.0}])  # other sampled configs
