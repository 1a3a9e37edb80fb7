"""Perceived-emotion (soft-label) scores: JSD against annotator distributions and tie-aware plurality accuracy,
read through the CREMA-D card's `ratings:` from a generated tabulatedVotes.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from harness.datasets import get_dataset
from harness.metrics import soft_label_scores, summarise_soft_folds
from harness.ratings import RatingsError, read_rating_set, read_ratings, soft_label_metrics

CLASSES = ["anger", "disgust", "fear", "happy", "neutral", "sad"]
CODES = ["A", "D", "F", "H", "N", "S"]


def test_jsd_is_scipys_squared_distance_and_ties_get_fractional_credit():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]])
    counts = np.array([[5, 1, 0], [3, 3, 0], [0, 2, 2], [0, 0, 0]])  # clip 2: tie A/B; clip 3: tie B/C; 4 unrated
    scores = soft_label_scores(probabilities, counts)
    expected_jsd = np.mean([jensenshannon(p, c / c.sum(), base=2) ** 2 for p, c in zip(probabilities[:3], counts[:3],
                                                                                         strict=True)])
    assert scores["jsd"] == pytest.approx(expected_jsd)
    # clip 1 right (1), clip 2 predicts B, one of 2 tied -> 1/2, clip 3 predicts C, one of 2 tied -> 1/2
    assert scores["plurality_accuracy"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert (scores["n_rated"], scores["n_unrated"], scores["n_tied"]) == (3, 1, 2)
    perfect = soft_label_scores(counts[:3] / counts[:3].sum(axis=1, keepdims=True), counts[:3])
    assert perfect["jsd"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="no rated clip"):
        soft_label_scores(probabilities[3:], counts[3:])
    assert perfect["plurality_accuracy"] == pytest.approx(2 / 3)  # argmax takes one of the two tied classes
    summary = summarise_soft_folds([scores, {"jsd": 0.0, "plurality_accuracy": 1.0}], "soft_voice")
    assert summary["soft_voice_jsd_mean"] == pytest.approx(expected_jsd / 2)
    assert summary["soft_voice_plurality_accuracy_std"] == pytest.approx(np.std([2 / 3, 1.0], ddof=1))


def write_tabulated_votes(root: Path, votes: dict[str, list[int]]) -> Path:
    """A CREMA-D-shaped processedResults/tabulatedVotes.csv: voice rows (1xxxxx) with `votes`, face rows (2xxxxx)
    with all votes on neutral, so the filter must pick the right mode."""
    path = root / "processedResults" / "tabulatedVotes.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["", *CODES, "fileName", "numResponses", "agreement", "emoVote"])
        for mode, offset in ((1, 0), (2, 0)):
            for i, (clip, counts) in enumerate(votes.items(), start=1):
                row = counts if mode == 1 else [0, 0, 0, 0, 9, 0]
                writer.writerow([str(100000 * mode + i + offset), *row, clip, sum(row), 0.0, "X"])
    return path


def test_crema_d_card_reads_voice_and_face_ratings_apart(tmp_path):
    spec = get_dataset("crema-d")
    assert set(spec.ratings) == {"voice", "face", "av"}
    write_tabulated_votes(tmp_path, {"1001_DFA_ANG_XX": [6, 2, 0, 0, 1, 0], "1001_DFA_SAD_XX": [0, 0, 0, 0, 4, 4]})
    ratings = read_ratings(spec, tmp_path)
    assert set(ratings) == {"voice", "face"}  # no mode-3 rows in this table: no `av` set
    assert list(ratings["voice"].columns) == CLASSES
    assert ratings["voice"].loc["1001_DFA_ANG_XX"].tolist() == [6, 2, 0, 0, 1, 0]
    assert ratings["face"].loc["1001_DFA_ANG_XX"].tolist() == [0, 0, 0, 0, 9, 0]
    assert read_ratings(spec, tmp_path / "absent") == {}  # optional: no table, no soft scores


def test_a_rating_table_without_a_filter_for_its_modes_is_one_clear_error(tmp_path):
    write_tabulated_votes(tmp_path, {"1001_DFA_ANG_XX": [6, 2, 0, 0, 1, 0]})
    entry = {**get_dataset("crema-d").ratings["voice"], "rows": {}}
    with pytest.raises(RatingsError, match="two rows for clip '1001_DFA_ANG_XX'.*rows:"):
        read_rating_set(tmp_path, "voice", entry)
    with pytest.raises(RatingsError, match=r"names columns \['Q'\]"):
        read_rating_set(tmp_path, "voice", {**entry, "counts": {"A": "anger", "Q": "sad"}})


def test_soft_metrics_of_a_result_per_fold_and_refused_for_other_classes():
    ratings = {"voice": pd.DataFrame([[6, 2, 0, 0, 1, 0], [0, 0, 0, 0, 4, 4], [1, 0, 0, 0, 0, 0]],
                                     index=["a", "b", "c"], columns=CLASSES)}
    probabilities = np.array([[0.9, 0.02, 0.02, 0.02, 0.02, 0.02], [0.02, 0.02, 0.02, 0.02, 0.02, 0.9],
                              [0.02, 0.9, 0.02, 0.02, 0.02, 0.02]])
    predictions = pd.DataFrame({"fold": ["f0", "f0", "f1"], "clip_id": ["a", "b", "c"]})
    for c, name in enumerate(CLASSES):
        predictions[f"p_{name}"] = probabilities[:, c]
    metrics, notes = soft_label_metrics(predictions, CLASSES, ratings)
    assert notes == {}
    assert metrics["soft_voice_plurality_accuracy_mean"] == pytest.approx(((1 + 0.5) / 2 + 0) / 2)
    assert metrics["soft_voice_n_rated"] == 3 and metrics["soft_voice_n_tied"] == 1
    assert 0 < metrics["soft_voice_jsd_mean"] < 1
    five = CLASSES[:-1]
    metrics, notes = soft_label_metrics(predictions, five, ratings)
    assert metrics == {} and "differ from the result's" in notes["voice"]
