"""Cross-corpus: the label map is applied (mapped and dropped classes), hyperparameters come from A's validation
parts, B is scored by A's fold models, and a corpus cannot be tested on its own clips."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.robustness_data import speaker_folds, tiny_data

from harness.datasets import get_dataset
from harness.protocols import LeakageError
from harness.robustness.cross_corpus import (
    LabelMapError,
    cross_corpus,
    load_label_map,
    pair_classes,
    to_shared,
)

EMODB = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
RAVDESS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
SHARED_NAME = {"anger": "angry", "happiness": "happy", "sadness": "sad", "fearful": "fear", "surprised": "surprise"}


def test_shipped_map_covers_every_card_class():
    label_map = load_label_map()
    for name in ("ravdess", "crema-d", "emodb", "meld", "iemocap", "savee", "synthetic"):
        mapping = label_map.mapping(name, get_dataset(name).classes)
        assert set(mapping) == set(get_dataset(name).classes)
    assert label_map.corpora["ravdess"]["calm"] is None and label_map.corpora["emodb"]["boredom"] is None


def test_pair_classes_names_mapped_and_dropped():
    classes = pair_classes(load_label_map(), "emodb", EMODB, "iemocap", ("neutral", "happy", "angry", "sad"))
    assert classes.shared == ["neutral", "happy", "sad", "angry"]
    assert classes.mapped["emodb"] == {"anger": "angry", "happiness": "happy", "sadness": "sad", "neutral": "neutral"}
    assert classes.dropped["emodb"] == ["boredom", "disgust", "fear"] and classes.dropped["iemocap"] == []
    assert "dropped from emodb: boredom, disgust, fear" in classes.describe()


def test_bad_label_maps_are_errors_naming_the_file(tmp_path):
    bad = tmp_path / "map.yaml"
    bad.write_text("shared: [happy, sad]\ncorpora:\n  x: {joy: happy, grief: sorrow}\n")
    with pytest.raises(LabelMapError, match=r"map\.yaml.*sorrow"):
        load_label_map(bad)
    bad.write_text("shared: [happy, sad]\ncorpora:\n  x: {joy: happy}\n")
    with pytest.raises(LabelMapError, match="does not list classes \\['grief'\\]"):
        load_label_map(bad).mapping("x", ["joy", "grief"])
    with pytest.raises(LabelMapError, match="no entry for corpus 'y'"):
        load_label_map(bad).mapping("y", ["joy"])


def test_to_shared_relabels_and_drops():
    data = tiny_data(n_speakers=2, per_class=1, classes=EMODB)
    out = to_shared(data, {"anger": "angry", "neutral": "neutral"}, ["neutral", "angry"], ["audio"])
    assert out.classes == ["neutral", "angry"] and len(out) == 4 and out.modalities == ["audio"]
    assert [out.classes[y] for y in out.labels] == ["angry", "neutral", "angry", "neutral"]


def _corpora():
    a = tiny_data(n_speakers=6, per_class=3, classes=EMODB, centre_of=SHARED_NAME, prefix="emo", seed=1,
                  separation=1.5)
    b = tiny_data(n_speakers=4, per_class=3, classes=RAVDESS, centre_of=SHARED_NAME, prefix="rav", seed=2,
                  separation=1.5)
    return a, b


def test_cross_corpus_transfers_over_shared_classes():
    a, b = _corpora()
    frame, record = cross_corpus("early-concat-svm", {}, a, speaker_folds(a), b, "emodb", "ravdess",
                                 load_label_map(), trials=2, seed=0)
    assert record["shared"] == ["neutral", "happy", "sad", "angry", "fear", "disgust"]
    assert record["dropped"] == {"emodb": ["boredom"], "ravdess": ["calm", "surprised"]}
    assert record["n_test_clips"] == 4 * 3 * 6 and record["modalities"] == ["audio", "text", "video"]
    uar = frame[frame["metric"] == "uar"]
    to_b = uar[uar["test_on"] == "ravdess"]["value"]
    assert len(to_b) == 3 and to_b.mean() > 0.5  # shared centres: transfer works, well above chance (1/6)
    assert set(frame["test_on"]) == {"emodb", "ravdess"}  # the diagonal (A's own test parts) too


def test_hyperparameters_come_from_a_validation_only():
    a, b = _corpora()
    _, first = cross_corpus("early-concat-svm", {}, a, speaker_folds(a), b, "emodb", "ravdess", load_label_map(),
                            trials=3, seed=0)
    b_flipped = b.subset(np.arange(len(b)))
    b_flipped.labels = np.roll(b_flipped.labels, 5)  # change B's labels: the choice must not move
    _, second = cross_corpus("early-concat-svm", {}, a, speaker_folds(a), b_flipped, "emodb", "ravdess",
                             load_label_map(), trials=3, seed=0)
    assert first["config"] == second["config"] and first["val_uar"] == second["val_uar"]


def test_a_corpus_cannot_be_tested_on_its_own_clips():
    a, _ = _corpora()
    with pytest.raises(LeakageError, match="also in emodb"):
        cross_corpus("audio-svm", {}, a, speaker_folds(a), a, "emodb", "emodb", load_label_map(), trials=1)


def test_feature_width_mismatch_is_an_error():
    a, _ = _corpora()
    b = tiny_data(n_speakers=2, per_class=1, classes=RAVDESS, dims={"audio": 9}, prefix="rav")
    with pytest.raises(ValueError, match="same audio extractor"):
        cross_corpus("audio-svm", {}, a, speaker_folds(a), b, "emodb", "ravdess", load_label_map(), trials=1)
