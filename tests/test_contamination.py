"""Contamination flags (issue 23 item 3): every extractor declares the corpora its weights were trained on, or
"unknown"; a result whose extractor saw its evaluation corpus is tagged in MLflow and marked in the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.config import Settings
from harness.features.base import (
    _EXTRACTORS,
    Extractor,
    ExtractorOptions,
    ExtractorRef,
    Features,
    contamination,
    extractor_names,
    get_extractor,
)
from harness.prepare import contamination_label

TUNED = "toy-ravdess-tuned"


class ToyTunedExtractor(Extractor):
    """Stands for a speech encoder fine-tuned on RAVDESS (as emotion2vec+ was on common evaluation corpora)."""

    name = TUNED
    modality = "audio"
    trained_on = ("ravdess", "LibriSpeech")

    class Options(ExtractorOptions):
        checkpoint: str = "toy/tuned"

    def extract(self, clip) -> Features:
        return Features(np.zeros((1, 2)), np.zeros(2))


@pytest.fixture
def tuned():
    _EXTRACTORS.add(TUNED, ToyTunedExtractor, replace=True)
    yield TUNED
    _EXTRACTORS.items.pop(TUNED, None)


def test_every_extractor_declares_its_training_corpora_or_unknown() -> None:
    """A tuple (maybe empty: no learned weights) or None (unknown); never left as a typo like a bare string."""
    for name in extractor_names():
        declared = get_extractor(name).trained_on
        assert declared is None or (isinstance(declared, tuple) and all(isinstance(c, str) for c in declared)), name


def test_the_verdict_follows_the_declaration() -> None:
    assert contamination(("ravdess",), "ravdess") == "yes"
    assert contamination(("RAVDESS",), "ravdess@song") == "yes"  # a subset of the corpus is the corpus
    assert contamination(("ravdess",), "crema-d") == "no"
    assert contamination((), "ravdess") == "no"
    assert contamination(None, "ravdess") == "unknown"


def test_a_result_on_the_corpus_the_extractor_saw_is_flagged(tuned) -> None:
    refs = {"audio": ExtractorRef(tuned), "text": ExtractorRef("bert")}
    assert contamination_label("ravdess", refs, ["audio", "text"]) == (
        "yes: audio=toy-ravdess-tuned (trained on ravdess, LibriSpeech)")
    assert contamination_label("crema-d", refs, ["audio", "text"]) == "no"
    # another checkpoint than the one the declaration describes: unknown, not "no"
    other = {"audio": ExtractorRef(tuned, {"checkpoint": "someone/else"})}
    assert contamination_label("crema-d", other, ["audio"]) == "unknown: audio=toy-ravdess-tuned"
    assert contamination_label("crema-d", {"audio": ExtractorRef("imported-aus")}, ["audio"]) == (
        "unknown: audio=imported-aus")  # imported features: nothing declared


def test_the_flag_is_a_result_tag_and_marks_the_table(tuned, tmp_path) -> None:
    """plan_job writes the flag into the MLflow tags (ResultTags.contamination); the leaderboard's method cell
    and a sentence under the table say so."""
    from fixtures.corpora import ravdess_tree

    from harness.corpus import open_corpus
    from harness.datasets import get_dataset
    from harness.pipeline import plan_job
    from harness.prepare import PreparedDataset, extractor_refs
    from harness.report.text import CONTAMINATED, contamination_mark, contamination_texts
    from harness.results import ResultTags
    from methods import MultimodalData, get_method

    ravdess_tree(tmp_path / "rav", actors=range(1, 7), av=False)
    settings = Settings(data_dirs={"ravdess": tmp_path / "rav"}, workspace=tmp_path / "ws",
                        features={"audio": tuned})
    spec = get_dataset("ravdess")
    corpus = open_corpus(settings, spec, say=lambda line: None)
    n = len(corpus.manifest)
    data = MultimodalData(ids=corpus.manifest.ids, classes=list(spec.classes),
                          pooled={"audio": np.zeros((n, 2), np.float32)}, labels=np.zeros(n, int))
    prepared = PreparedDataset(spec, corpus.manifest, corpus.folds, data, {}, pd.DataFrame(),
                               extractor_refs(spec, settings))
    _, tags = plan_job(get_method("audio-svm"), prepared, settings)
    assert tags.contamination.startswith("yes: audio=toy-ravdess-tuned")
    assert ResultTags.from_tags(tags.to_tags()).contamination == tags.contamination

    row = pd.Series({"method": "audio-svm", "contamination": tags.contamination})
    clean = pd.Series({"method": "text-svm", "contamination": "no"})
    assert contamination_mark(row) == CONTAMINATED and contamination_mark(clean) == ""
    section = type("S", (), {"rows": pd.DataFrame([row, clean])})()
    (sentence,) = contamination_texts(section)
    assert "`audio-svm`" in sentence and "toy-ravdess-tuned" in sentence


def test_list_extractors_shows_the_declaration(capsys) -> None:
    from argparse import Namespace

    from harness.cli.listing import cmd_list

    cmd_list(Namespace(what="extractors"))
    out = capsys.readouterr().out
    assert out.count(" trained on: ") == len(extractor_names())  # one line per extractor, under the title
    assert "trained on: BookCorpus, English Wikipedia" in out  # bert
    assert "trained on: none (no learned weights)" in out  # egemaps
