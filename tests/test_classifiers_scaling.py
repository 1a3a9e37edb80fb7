"""The SVM switches to one fit + held-out calibration above a size threshold, with comparable quality."""

from __future__ import annotations

import numpy as np
import pytest

from methods import classifiers
from methods.classifiers import ScaledClassifier, svm_solver


def _data(n: int, seed: int = 0):
    from sklearn.datasets import make_classification

    return make_classification(n_samples=n, n_features=20, n_informative=8, n_classes=4, class_sep=1.2,
                               random_state=seed)


def test_solver_choice_by_size_and_kernel():
    limit = classifiers.SVM_EXACT_MAX_SAMPLES
    assert svm_solver(limit, "rbf") == "svc" and svm_solver(limit, "linear") == "svc"
    assert svm_solver(limit + 1, "rbf") == "svc-holdout" and svm_solver(limit + 1, "linear") == "linearsvc-holdout"


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_holdout_solver_matches_the_exact_one_in_quality(monkeypatch, kernel):
    x, y = _data(1600)
    train, test = slice(0, 1200), slice(1200, None)
    exact = ScaledClassifier("svm", 4, kernel=kernel).fit(x[train], y[train])
    assert exact.solver_ == "svc"
    monkeypatch.setattr(classifiers, "SVM_EXACT_MAX_SAMPLES", 100)
    fast = ScaledClassifier("svm", 4, kernel=kernel).fit(x[train], y[train])
    assert fast.solver_ == f"{'linearsvc' if kernel == 'linear' else 'svc'}-holdout"
    proba = fast.predict_proba(x[test])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    accuracy = {name: float((m.predict_proba(x[test]).argmax(1) == y[test]).mean())
                for name, m in (("exact", exact), ("fast", fast))}
    assert accuracy["fast"] > 0.5 and accuracy["fast"] >= accuracy["exact"] - 0.05, accuracy


@pytest.mark.parametrize("name", ["audio-svm", "early-concat-svm", "late-average-svm", "audio-xgboost"])
def test_the_svm_solver_is_in_the_fit_notes(monkeypatch, name):
    """`svm_holdout` (0 exact, 1 scalable) is a fit note, so it reaches MLflow as a per-fold trial metric."""
    from methods import MultimodalData, get_method

    x, y = _data(160)
    data = MultimodalData(ids=[f"c{i}" for i in range(160)], classes=list("abcd"),
                          pooled={"audio": x[:, :10], "video": x[:, 10:], "text": x[:, 10:]}, labels=y)
    exact = get_method(name).build().fit(data).fit_notes()
    monkeypatch.setattr(classifiers, "SVM_EXACT_MAX_SAMPLES", 100)
    scalable = get_method(name).build().fit(data).fit_notes()
    if name.endswith("xgboost"):
        assert "svm_holdout" not in exact and "svm_holdout" not in scalable
    else:
        assert (exact["svm_holdout"], scalable["svm_holdout"]) == (0.0, 1.0)


@pytest.mark.timeout(120)
def test_a_kernel_svm_on_near_duplicate_rows_ends() -> None:
    """libsvm without an iteration cap cycles for minutes on this (a linear kernel, C = 14.3, 96 clips that are
    21 distinct rows with conflicting labels: the shape of the built-in corpus's text vectors); capped, it ends
    with a ConvergenceWarning and still gives probabilities."""
    import warnings

    rng = np.random.default_rng(0)
    base = rng.normal(size=(21, 384))
    x = base[rng.integers(0, 21, size=96)] + 1e-6 * rng.normal(size=(96, 384))
    y = rng.integers(0, 4, size=96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ScaledClassifier("svm", 4, seed=0, C=14.3, kernel="linear").fit(x, y)
    assert np.allclose(model.predict_proba(x).sum(axis=1), 1.0)
