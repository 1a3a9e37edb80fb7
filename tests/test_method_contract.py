"""The contract every registered method keeps (in the spirit of scikit-learn's `check_estimator`).

For each variant: it builds from its defaults; `get_params()` holds every declared hyperparameter and rebuilds
an equal method; a misspelt hyperparameter is an error; every searched and context parameter is declared; `fit`
returns the method; `predict_proba` gives finite rows that sum to 1, also for clips that lack a modality.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from methods import get_method, method_names
from methods.base import UnknownParameterError
from methods.data import MultimodalData
from methods.registry import DuplicateNameError, Registry

CLASSES = ["neutral", "happy", "angry", "sad"]
POLARITY = {"neutral": "neutral", "happy": "positive", "angry": "negative", "sad": "negative"}
DIMS = {"audio": 6, "video": 6, "text": 6}  # equal widths: raw sum/product fusion requires them
# The smallest training run the neural loop allows, so the contract stays a fast test.
NEURAL_FAST = {"max_epochs": 1, "patience": 1, "batch_size": 16, "device": "cpu"}


def toy_data(n: int = 40, seed: int = 0) -> MultimodalData:
    """Pooled vectors and short sequences of every modality; the label shifts each modality's mean."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    centres = {m: rng.normal(0, 1, (len(CLASSES), d)) for m, d in DIMS.items()}
    sequences = {m: [(centres[m][y] + rng.normal(0, 1, (int(rng.integers(2, 6)), d))).astype(np.float32)
                     for y in labels] for m, d in DIMS.items()}
    pooled = {m: np.stack([s.mean(axis=0) for s in seqs]) for m, seqs in sequences.items()}
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=CLASSES, pooled=pooled, sequences=sequences,
                          labels=labels)


def with_missing(data: MultimodalData, modality: str, rows: slice) -> MultimodalData:
    """`modality` marked unavailable on `rows`, with garbage where it is absent (it must never be read)."""
    data.available[modality][rows] = False
    data.pooled[modality][rows] = 1e6
    for i in range(*rows.indices(len(data))):
        data.sequences[modality][i] = np.full_like(data.sequences[modality][i], 1e6)
    return data


def build(name: str, **params):
    spec = get_method(name)
    context = {"polarity": POLARITY} if "polarity" in spec.cls.context_params else {}
    fast = {k: v for k, v in NEURAL_FAST.items() if spec.accepts(k)}
    return spec.build(**context, **fast, **params)


ALL = method_names()


@pytest.mark.parametrize("name", ALL)
def test_declared_parameters(name):
    spec = get_method(name)
    method = spec.build()
    params = method.get_params()
    assert set(params) == set(spec.defaults()), "get_params must list every declared hyperparameter"
    assert {k: params[k] for k in spec.fixed} == spec.fixed
    assert type(method)(**params).get_params() == params  # the logged configuration rebuilds the method
    undeclared = [k for k in [*spec.search_space(), *spec.cls.context_params] if not spec.accepts(k)]
    assert undeclared == [], f"{name} searches or receives parameters it does not declare"
    with pytest.raises(UnknownParameterError, match="unknown hyperparameters \\['no_such_param'\\]"):
        spec.build(no_such_param=1)


@pytest.mark.parametrize("name", ALL)
def test_fit_and_predict_with_a_missing_modality(name):
    spec = get_method(name)
    data = toy_data()
    wanted = spec.required_modalities() or tuple(DIMS)
    data = with_missing(data, wanted[-1], slice(0, 3))   # training clips without it
    data = with_missing(data, wanted[-1], slice(34, 36))  # test clips without it
    train, test = data.subset(np.arange(32)), data.subset(np.arange(32, 40))
    method = build(name)
    epochs: list[tuple[int, dict]] = []
    if spec.cls.trains_by_epoch:  # the declared capability, used by the search's scheduler: it must be true
        method.epoch_callback = lambda epoch, values: epochs.append((epoch, values))
    assert method.fit(train, test) is method
    if spec.cls.trains_by_epoch:
        assert epochs and "val_uar" in epochs[0][1], f"{name} declares trains_by_epoch but reported no epoch"
    else:
        assert not hasattr(method, "epoch_callback"), f"{name} takes epoch callbacks: declare trains_by_epoch"
    probabilities = method.predict_proba(test)
    assert probabilities.shape == (len(test), len(CLASSES))
    assert np.isfinite(probabilities).all() and (probabilities >= 0).all()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_classical_hyperparameters_follow_the_classifier():
    spec = get_method("early-concat-xgboost")
    assert spec.accepts("max_depth") and not spec.accepts("C")
    with pytest.raises(UnknownParameterError, match="'C'"):
        spec.build(C=1.0)  # an SVM parameter on XGBoost used to pass silently
    assert get_method("early-concat-svm").build().get_params()["mode"] == "concat"


def test_registry_lists_sorted_and_refuses_duplicates():
    registry: Registry[int] = Registry("thing")
    registry.add("b", 1)
    registry.add("a", 2)
    registry.add("b", 1)  # the same item again: harmless (a module imported twice)
    assert registry.names() == ["a", "b"]
    with pytest.raises(DuplicateNameError, match="'b' is registered twice"):
        registry.add("b", 3)
    registry.add("b", 3, replace=True)
    assert registry.get("b") == 3
    with pytest.raises(KeyError, match="unknown thing 'c'; choose from: a, b"):
        registry.get("c")
    assert ALL == sorted(ALL)


def test_methods_import_nothing_of_the_harness():
    code = ("import sys, methods; methods.method_names(); "
            "print(','.join(sorted(m for m in sys.modules if m == 'harness' or m.startswith('harness.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
