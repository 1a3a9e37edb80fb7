"""Each classical method fits and predicts; scaling is fitted on training data only; missing modalities count."""

from __future__ import annotations

import numpy as np
import pytest

from methods import MultimodalData, get_method, method_names
from methods.classifiers import ScaledClassifier

CLASSES = ["neutral", "happy", "angry", "sad"]


def _data(n: int = 96, seed: int = 0) -> MultimodalData:
    """Audio separates arousal, video valence: only the pair identifies all four classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    arousal = np.isin(labels, [1, 2]).astype(float)
    valence = np.where(labels == 1, 1.0, np.where(labels == 0, 0.0, -1.0))
    audio = np.c_[arousal + 0.2 * rng.normal(size=n), rng.normal(size=(n, 2))]
    video = np.c_[valence + 0.2 * rng.normal(size=n), rng.normal(size=(n, 2))]
    text = rng.normal(size=(n, 3))
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=CLASSES,
                          pooled={"audio": audio, "video": video, "text": text}, labels=labels)


CLASSICAL = [n for n in method_names() if get_method(n).cls.family in ("classical", "unimodal")
             and get_method(n).cls.input_kind == "pooled"]


def test_the_classical_family_is_complete():
    expected = {f"early-{m}-{c}" for m in ("concat", "sum", "product") for c in ("svm", "xgboost", "mlp")}
    expected |= {f"late-{m}-{c}" for m in ("average", "stack") for c in ("svm", "xgboost", "mlp")}
    expected |= {f"{m}-{c}" for m in ("audio", "video", "text") for c in ("svm", "xgboost", "mlp")}
    assert expected <= set(CLASSICAL)


@pytest.mark.parametrize("name", CLASSICAL)
def test_fit_predict(name):
    data = _data()
    train, test = data.subset(np.arange(64)), data.subset(np.arange(64, 96))
    method = get_method(name).build(seed=0).fit(train, None)
    probabilities = method.predict_proba(test)
    assert probabilities.shape == (32, 4)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    accuracy = (probabilities.argmax(axis=1) == test.labels).mean()
    if name.startswith(("early-concat", "late-")):
        assert accuracy >= 0.75, f"{name} should combine audio and video, got {accuracy:.2f}"
    if name.startswith("text-"):
        assert accuracy <= 0.6, "text is noise here; a high score would mean leakage"


def test_fusion_beats_each_modality_on_complementary_cues():
    data = _data(160)
    train, test = data.subset(np.arange(96)), data.subset(np.arange(96, 160))

    def acc(name):
        return (get_method(name).build().fit(train).predict(test) == test.labels).mean()

    assert acc("early-concat-svm") > max(acc("audio-svm"), acc("video-svm")) + 0.15


def test_scaler_is_fitted_on_training_rows_only():
    x_train = np.random.default_rng(0).normal(5.0, 2.0, size=(40, 3))
    y = np.arange(40) % 2
    model = ScaledClassifier("svm", 2).fit(x_train, y)
    assert np.allclose(model.scaler_.mean_, x_train.mean(axis=0))


def test_missing_modality_is_imputed_and_counted():
    data = _data()
    data.available["video"][:10] = False
    data.pooled["video"][:10] = 1e6  # garbage where unavailable: must not be read
    early = get_method("early-concat-svm").build().fit(data.subset(np.arange(64)))
    assert early.fit_notes()["train_clips_imputed"] == 10
    assert np.isfinite(early.predict_proba(data.subset(np.arange(10)))).all()
    unimodal = get_method("video-svm").build().fit(data.subset(np.arange(64)))
    assert unimodal.fit_notes()["train_clips_without_modality"] == 10
    prior = unimodal.predict_proba(data.subset(np.arange(3)))
    assert np.allclose(prior, unimodal.prior_)


def test_late_average_ignores_unavailable_modality():
    data = _data()
    late = get_method("late-average-svm").build(modalities=["audio", "video"]).fit(data.subset(np.arange(64)))
    test = data.subset(np.arange(64, 70))
    test.available["video"][:] = False
    only_audio = late.models_["audio"].predict_proba(test.pooled["audio"])
    assert np.allclose(late.predict_proba(test), only_audio)


@pytest.mark.parametrize("kind", ["svm", "xgboost", "mlp"])
def test_class_weighting_is_a_searched_hyperparameter(kind):
    """balanced vs none is searched by every classical method and chosen by the headline metric; on a skewed
    set, balanced weighting predicts the rare class more often than no weighting does."""
    from methods.classifiers import CLASS_WEIGHTS

    assert get_method(f"text-{kind}").search_space()["class_weight"].values == CLASS_WEIGHTS
    assert "class_weight" in get_method(f"early-concat-{kind}").search_space()
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.15).astype(int)  # 15 % rare class
    x = rng.normal(size=(300, 4)) + y[:, None] * 0.8
    rare = {w: ScaledClassifier(kind, 2, class_weight=w).fit(x, y).predict_proba(x).argmax(axis=1).sum()
            for w in CLASS_WEIGHTS}
    assert rare["balanced"] > rare["none"]
    with pytest.raises(ValueError, match="class_weight"):
        ScaledClassifier(kind, 2, class_weight="sometimes")
