"""CREMA-D through its card: the real published inventory and metadata, and a fixture tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.corpora import REAL_DATA, touch

from harness.datasets import get_dataset
from harness.datasets.cards import parse_card

CREMA = REAL_DATA / "crema-d"
SPEC = get_dataset("crema-d")
CARD = parse_card(Path(SPEC.source))
needs_real = pytest.mark.skipif(not (CREMA / "AudioWAV.sizes.tsv").exists(), reason=f"real CREMA-D not at {CREMA}")


@pytest.fixture(scope="module")
def inventory() -> list[str]:
    return ["AudioWAV/" + line.split("\t")[0] for line in (CREMA / "AudioWAV.sizes.tsv").read_text().splitlines()]


@needs_real
def test_every_real_file_name_parses(inventory):
    assert len(inventory) == 7442
    manifest = CARD.manifest_from_paths(CREMA, inventory)
    assert len(manifest) == 7442 and manifest.problems.empty
    # Published: 91 actors x 6 emotions; 12 sentences per emotion and actor, plus 3 extra intensity levels of IEO
    # for the five non-neutral emotions (neutral has XX only): 91*15 = 1365 clips... less the known gaps.
    assert manifest.table["speaker"].nunique() == 91
    assert manifest.class_counts().to_dict() == {"anger": 1271, "disgust": 1271, "fear": 1271, "happy": 1271,
                                                 "neutral": 1087, "sad": 1271}
    per_actor = manifest.table.groupby("speaker")["label"].nunique()
    assert (per_actor == 6).all()
    assert manifest.table.groupby("gender")["speaker"].nunique().to_dict() == {"female": 43, "male": 48}
    assert manifest.table["text"].nunique() == 12
    assert manifest.table["intensity"].value_counts().to_dict() == {"unspecified": 6077, "high": 455, "low": 455,
                                                                   "medium": 455}
    row = manifest.table.set_index("clip_id").loc["1001_DFA_ANG_XX"]
    assert (row["label"], row["speaker"], row["text"], row["perceived_voice"]) == (
        "anger", "1001", "Don't forget a jacket.", "A")


@needs_real
def test_perceived_emotion_targets_from_the_summary_table(inventory):
    read = CARD.reader.read_paths(inventory)
    voice = CARD.build(CREMA, read, "perceived-voice", check_media=False)
    assert voice.dataset == "crema-d@perceived-voice"
    assert voice.class_counts().to_dict() == {"anger": 986, "disgust": 547, "fear": 645, "happy": 353,
                                              "neutral": 3897, "sad": 370}
    ties = voice.problems[voice.problems.reason.str.contains("excluded by design")]
    assert len(voice) + ties["path"].str.extract(r"\((\d+) clips\)")[0].astype(int).sum() == 7442


@needs_real
def test_speaker_folds_on_the_real_inventory(inventory):
    from harness.protocols import make_folds

    manifest = CARD.manifest_from_paths(CREMA, inventory)
    folds = make_folds(manifest, SPEC.protocol)
    assert len(folds) == 5
    assert sorted(s for f in folds for s in manifest.speakers_of(f.test)) == sorted(manifest.table.speaker.unique())


def test_names_that_do_not_fit_are_reported_loudly(tmp_path):
    touch(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav")
    touch(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav.bak")
    touch(tmp_path / "AudioWAV/1002_IEO_HAP_HI.wav")
    touch(tmp_path / "AudioWAV/1002_IEO_JOY_HI.wav")  # no such emotion code
    touch(tmp_path / "AudioWAV/1003_XYZ_SAD_XX.wav")  # no such sentence
    touch(tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv")
    assert SPEC.is_present(tmp_path)
    manifest = SPEC.scan(tmp_path)
    assert sorted(manifest.ids) == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI"]
    assert manifest.table.set_index("clip_id").loc["1001_DFA_ANG_XX", "video_path"] == "VideoFlash/1001_DFA_ANG_XX.flv"
    assert manifest.table.set_index("clip_id").loc["1002_IEO_HAP_HI", "video_path"] is None
    reasons = dict(zip(manifest.problems.path, manifest.problems.reason, strict=True))
    assert "does not match the card's pattern" in reasons["AudioWAV/1002_IEO_JOY_HI.wav"]
    assert "not in the card's derive.text map" in reasons["AudioWAV/1003_XYZ_SAD_XX.wav"]
    # Without the demographics table gender is unknown rather than guessed.
    assert set(manifest.table["gender"]) == {"unknown"}


@needs_real
def test_intensity_subsets_of_the_real_inventory(inventory):
    """`--target high-intensity` and `--target intensity-level` select the graded IEO clips of the published
    inventory: 91 per emotion at high intensity, 455 per level, every actor, sentence IEO only."""
    read = CARD.reader.read_paths(inventory)
    high = CARD.build(CREMA, read, "high-intensity", check_media=False)
    assert high.dataset == "crema-d@high-intensity"
    assert high.class_counts().to_dict() == {"anger": 91, "disgust": 91, "fear": 91, "happy": 91, "sad": 91}
    assert set(high.table["intensity"]) == {"high"} and set(high.table["sentence"]) == {"IEO"}
    assert high.table["speaker"].nunique() == 91
    levels = CARD.build(CREMA, read, "intensity-level", check_media=False)
    assert levels.class_counts().to_dict() == {"high": 455, "low": 455, "medium": 455}
    assert set(levels.table["sentence"]) == {"IEO"} and set(levels.table["intensity"]) == {"low", "medium", "high"}
    assert list(levels.classes) == ["low", "medium", "high"]
