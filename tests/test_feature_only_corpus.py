"""A corpus with no media at all: a label table described by a card, and features imported for every modality.

Many researchers have features and no media (OpenFace / openSMILE outputs shared by a corpus's authors, MELD and
IEMOCAP feature releases). The card below is the one docs/datasets.md shows: a CSV reader with no `media`, and
`features:` naming the imports, so `harness run` needs no `--features`. The run goes through `pipeline.run`
(Ray Data, Ray Tune, MLflow) for a fusion method and a unimodal one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config import Settings

CLASSES = ["angry", "happy", "neutral", "sad"]
CARD = """name: feature-only-toy
title: A label table and imported features, no media
classes: [angry, happy, neutral, sad]
modalities: [audio, video, text]
features: {audio: shared-egemaps, video: shared-openface, text: shared-bert}
protocol: {name: speaker-kfold, params: {k: 3}}
present: [labels.csv]
reader:
  kind: csv
  tables:
    - {file: labels.csv}
clip_id: "{clip_id}"
speaker: "{speaker}"
label: "{label}"
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Settings, Path]:
    """6 speakers x 4 emotions x 2 clips: a labels.csv, a card, and one NPZ of features per modality."""
    from harness.datasets import register_dataset
    from harness.datasets.cards import parse_card

    work = tmp_path_factory.mktemp("feature-only")
    root = work / "corpus"
    root.mkdir()
    rows = [{"clip_id": f"s{s}_{label}_{take}", "speaker": f"s{s}", "label": label}
            for s in range(6) for label in CLASSES for take in range(2)]
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    cards = work / "cards"
    cards.mkdir()
    (cards / "feature-only-toy.yaml").write_text(CARD)
    register_dataset(parse_card(cards / "feature-only-toy.yaml").to_spec(), replace=True)
    rng = np.random.default_rng(0)
    labels = np.array([CLASSES.index(r["label"]) for r in rows])
    for modality, dim, frames in (("audio", 6, 5), ("video", 4, 3), ("text", 8, 4)):
        signal = np.eye(4)[labels] @ rng.normal(size=(4, dim))  # each modality carries the label, with noise
        sequences = signal[:, None, :] + 0.8 * rng.normal(size=(len(rows), frames, dim))
        keep = slice(1, None) if modality == "video" else slice(None)  # one clip without video features
        np.savez(work / f"{modality}.npz", clip_id=np.array([r["clip_id"] for r in rows])[keep],
                 sequence=sequences[keep].astype(np.float32), lengths=np.full(len(rows), frames)[keep])
    settings = Settings(workspace=work / "ws", tracking_uri=f"sqlite:///{work}/mlruns.db",
                        reports_dir=work / "reports", trials=1, data_dirs={"feature-only-toy": root})
    return settings, work


def test_a_card_describes_a_corpus_without_media(corpus):
    from harness import pipeline
    from harness.corpus import open_corpus

    settings, _ = corpus
    manifest = open_corpus(settings, pipeline.get_dataset("feature-only-toy"), with_folds=False).manifest
    assert len(manifest) == 48 and manifest.modalities() == []
    assert manifest.table["speaker"].nunique() == 6


@pytest.mark.slow  # a Ray start, a Tune search and MLflow: about 70 s on the shared 2-core machine
def test_imported_features_alone_run_fusion_and_unimodal_methods(ray_session, corpus, capsys):
    from harness import pipeline
    from harness.features.commands import run_import

    settings, work = corpus
    for modality, name in (("audio", "shared-egemaps"), ("video", "shared-openface"), ("text", "shared-bert")):
        assert run_import(settings, "feature-only-toy", name, work / f"{modality}.npz", modality=modality) == 0
    capsys.readouterr()
    prepared = pipeline.prepare_dataset(settings, pipeline.get_dataset("feature-only-toy"), need_sequences=False)
    assert set(prepared.data.modalities) == {"audio", "video", "text"}
    assert int((~prepared.data.available["video"]).sum()) == 1  # the clip the video import lacks
    assert prepared.data.available["audio"].all() and prepared.data.available["text"].all()
    outcome = pipeline.run(settings, pipeline.RunOptions(methods=["early-concat-svm", "text-svm"],
                                                         datasets=["feature-only-toy"]))
    assert sorted(outcome.ran) == ["early-concat-svm@feature-only-toy", "text-svm@feature-only-toy"]
    assert not outcome.skipped and not outcome.failed
    assert "needs" not in capsys.readouterr().out  # no "needs video, which this dataset lacks"


def test_speaker_norm_changes_a_sequence_methods_predictions(corpus):
    """`--speaker-norm` reaches the frames a sequence method reads: neural-audio fitted on normalised data
    predicts differently from the same seed on plain data (the flag is not logged-but-ignored)."""
    from harness import pipeline
    from harness.features.commands import run_import
    from methods import get_method

    settings, work = corpus
    run_import(settings, "feature-only-toy", "shared-egemaps", work / "audio.npz", modality="audio")
    spec = pipeline.get_dataset("feature-only-toy")
    shifted = work / "audio-shifted.npz"  # a per-speaker offset, the nuisance speaker norm removes
    with np.load(work / "audio.npz") as npz:
        offsets = np.array([5.0 * int(c.split("_")[0][1:]) for c in npz["clip_id"]], dtype=np.float32)
        np.savez(shifted, clip_id=npz["clip_id"], sequence=npz["sequence"] + offsets[:, None, None],
                 lengths=npz["lengths"])
    run_import(settings, "feature-only-toy", "shifted-egemaps", shifted, modality="audio")
    chosen = dataclasses.replace(settings, features={"audio": "shifted-egemaps"})
    predictions = {}
    for norm in (False, True):
        prepared = pipeline.prepare_dataset(dataclasses.replace(chosen, speaker_norm=norm), spec,
                                            need_sequences=True, modalities={"audio"})
        data = prepared.data
        method = get_method("neural-audio").build(seed=0, max_epochs=3)
        method.fit(data, data)
        predictions[norm] = method.predict_proba(data)
    assert not np.allclose(predictions[False], predictions[True], atol=1e-4)


@pytest.mark.parametrize("name", ["av-xattn", "ima-hadamard-av"])
def test_sequence_methods_read_imported_au_sequences(corpus, name):
    """The documented RAVDESS example's shape (audio + OpenFace AUs imported as video, no video media) for the
    sequence methods: prepared sequences from imports, fitted for 2 epochs, probabilities for every clip.
    (`pipeline.run` samples these methods' search spaces, whose epochs are too many for a default test.)"""
    from harness import pipeline
    from harness.features.commands import run_import
    from methods import get_method

    settings, work = corpus
    for modality, feature in (("audio", "shared-egemaps"), ("video", "shared-openface"), ("text", "shared-bert")):
        run_import(settings, "feature-only-toy", feature, work / f"{modality}.npz", modality=modality)
    prepared = pipeline.prepare_dataset(settings, pipeline.get_dataset("feature-only-toy"), need_sequences=True,
                                        modalities={"audio", "video", "text"})
    data = prepared.data
    assert data.sequences["video"][1].shape == (3, 4)  # the imported AU frames, as imported
    method = get_method(name).build(seed=0, max_epochs=2)
    method.fit(data, data)
    proba = method.predict_proba(data)
    assert proba.shape == (48, 4) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
