"""The fourth seed paper's fusion rules: unimodal outputs combined then classified; raw equal-width early fusion."""

from __future__ import annotations

import numpy as np
import pytest

from methods import get_method, method_names
from methods.babaali import OutputLateFusion, RawEarlyFusion
from methods.data import MultimodalData

CLASSES = ["a", "b", "c"]


def equal_width(n: int = 60, width: int = 8, seed: int = 0) -> MultimodalData:
    """Audio says a-vs-rest, video says b-vs-c: each alone is ambiguous, together they decide."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    audio = rng.normal(0, 1, (n, width)) + 3.0 * (labels == 0)[:, None]
    video = rng.normal(0, 1, (n, width)) + 3.0 * (labels == 1)[:, None] - 3.0 * (labels == 2)[:, None]
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=CLASSES,
                          pooled={"audio": audio.astype(np.float32), "video": video.astype(np.float32)},
                          labels=labels)


def test_variants_are_registered_by_name_only() -> None:
    names = method_names()
    for rule in ("sum", "product", "concat"):
        for classifier in ("svm", "xgboost", "mlp"):
            assert f"babaali-late-{rule}-{classifier}" in names
    assert {"babaali-early-sum-svm", "babaali-early-product-mlp"} <= set(names)
    default = set(method_names(default_suite_only=True))
    assert not {n for n in names if n.startswith("babaali-")} & default
    assert get_method("babaali-late-concat-svm").search_space().keys() == {"C", "kernel"}


@pytest.mark.parametrize("rule", ["sum", "product", "concat"])
def test_late_fusion_of_unimodal_outputs_beats_chance_on_held_out_clips(rule: str) -> None:
    data = equal_width(n=90)
    train, test = data.subset(range(60)), data.subset(range(60, 90))
    method = get_method(f"babaali-late-{rule}-svm").build().fit(train)
    probabilities = method.predict_proba(test)
    assert probabilities.shape == (30, 3) and np.allclose(probabilities.sum(1), 1.0)
    assert (probabilities.argmax(1) == test.labels).mean() > 0.7  # chance is 1/3


def test_late_fusion_combines_the_unimodal_outputs_by_the_rule() -> None:
    data = equal_width()
    method = OutputLateFusion(rule="sum", classifier="svm").fit(data)
    audio = method.unimodal_["audio"].predict_proba(data.pooled["audio"])
    video = method.unimodal_["video"].predict_proba(data.pooled["video"])
    assert np.allclose(method._combine(method.unimodal_, data), audio + video)
    method.params["rule"] = "product"
    assert np.allclose(method._combine(method.unimodal_, data), audio * video)
    method.params["rule"] = "concat"
    assert np.allclose(method._combine(method.unimodal_, data), np.concatenate([audio, video], axis=1))
    data.available["video"] = np.arange(len(data)) % 2 == 0  # absent video: the neutral element
    method.params["rule"] = "sum"
    combined = method._combine(method.unimodal_, data)
    assert np.allclose(combined[1], audio[1]) and np.allclose(combined[0], audio[0] + video[0])


def test_raw_early_fusion_sums_raw_vectors_without_a_projection() -> None:
    data = equal_width()
    method = RawEarlyFusion(rule="sum", classifier="svm").fit(data)
    assert np.allclose(method._combine(data), data.pooled["audio"] + data.pooled["video"], atol=1e-6)
    assert not hasattr(method, "projections_")
    product = get_method("babaali-early-product-xgboost").build().fit(data)
    assert np.allclose(product._combine(data), data.pooled["audio"] * data.pooled["video"], atol=1e-5)


def test_raw_early_fusion_of_unequal_widths_names_the_fix() -> None:
    data = equal_width()
    data.pooled["video"] = np.zeros((len(data), 5), np.float32)
    with pytest.raises(ValueError, match="needs equal widths.*early-sum-svm"):
        get_method("babaali-early-sum-svm").build().fit(data)
