"""MELD through its card: the real train/dev CSVs and a fixture tree with partly missing media."""

from __future__ import annotations

import pytest
from fixtures.corpora import REAL_DATA, touch

from harness.datasets import get_dataset
from harness.protocols import get_protocol, make_folds

MELD = REAL_DATA / "meld"
SPEC = get_dataset("meld")
needs_real = pytest.mark.skipif(not (MELD / "train_sent_emo.csv").exists(), reason=f"real MELD CSVs not at {MELD}")

# Published MELD counts (Poria et al., 2019, Table 3) for train and dev.
EMOTIONS = {
    "train": {"anger": 1109, "disgust": 271, "fear": 268, "joy": 1743, "neutral": 4710, "sadness": 683,
              "surprise": 1205},
    "dev": {"anger": 153, "disgust": 22, "fear": 40, "joy": 163, "neutral": 470, "sadness": 111, "surprise": 150},
}


@pytest.fixture(scope="module")
def real():
    return SPEC.scan(MELD)


@needs_real
def test_real_csvs_rows_and_classes_per_split(real):
    table = real.table
    assert table["split"].value_counts().to_dict() == {"train": 9989, "dev": 1109}
    for split, counts in EMOTIONS.items():
        assert table.loc[table.split == split, "label"].value_counts().to_dict() == counts
    assert table.loc[table.split == "train", "speaker"].nunique() == 260
    row = table.set_index("clip_id").loc["dev_dia0_utt0"]
    assert (row["speaker"], row["label"], row["sentiment"]) == ("Phoebe", "sadness", "negative")
    assert row["text"] == "Oh my God, he’s lost it. He’s totally lost it."
    assert row["session"] == "dev_dia0"


@needs_real
def test_real_csvs_alone_give_a_text_only_manifest(real):
    assert real.modalities() == ["text"]
    reasons = dict(zip(real.problems.path, real.problems.reason, strict=True))
    assert reasons["test_sent_emo.csv"] == "table missing: no 'test' clips"
    assert reasons["train_splits/"] == "folder absent: no video for 9989 clips (kept for their other modalities)"
    fold = make_folds(real, SPEC.protocol)[0]
    assert (len(fold.train), len(fold.val), len(fold.test)) == (9989, 1109, 0)
    assert SPEC.headline_metric == "weighted_f1"
    assert not get_protocol(SPEC.protocol.name).speaker_independent  # the official split shares speakers


@needs_real
def test_sentiment_target(real):
    sentiment = SPEC.scan_target(MELD, "sentiment")
    assert sentiment.class_counts().to_dict() == {"negative": 2945 + 406, "neutral": 4710 + 470,
                                                  "positive": 2334 + 233}


def _csv(rows: list[str]) -> str:
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
    return "\n".join([header, *rows]) + "\n"


def test_fixture_with_cp1252_test_csv_and_missing_clips(tmp_path):
    times = '"00:16:16,059","00:16:21,731"'
    (tmp_path / "train_sent_emo.csv").write_text(_csv([
        f"1,Hello there.,Ross,neutral,neutral,0,0,1,1,{times}",
        f"2,I can’t believe it!,Rachel,surprise,positive,0,1,1,1,{times}",
        f"3,Don\u0092t go.,Monica,anger,negative,1,0,1,1,{times}"]), encoding="utf-8")
    (tmp_path / "dev_sent_emo.csv").write_text(_csv([f"1,Fine.,Joey,joy,positive,0,0,2,1,{times}"]))
    # The real test CSV is Windows-1252 in places (e.g. byte 0x92 for the apostrophe).
    (tmp_path / "test_sent_emo.csv").write_bytes(_csv([f"1,It’s over.,Chandler,sadness,negative,0,0,3,1,{times}"])
                                                 .encode("cp1252"))
    touch(tmp_path / "train_splits/dia0_utt0.mp4")
    touch(tmp_path / "train_splits/dia1_utt0.mp4")  # dia0_utt1 missing from the archive
    touch(tmp_path / "output_repeated_splits_test/dia0_utt0.mp4")
    manifest = SPEC.scan(tmp_path)
    table = manifest.table.set_index("clip_id")
    assert len(table) == 5 and set(manifest.modalities()) == {"audio", "video", "text"}
    assert table.loc["test_dia0_utt0", "text"] == "It’s over."
    assert table.loc["train_dia1_utt0", "text"] == "Don’t go."  # a C1 control character mapped back
    assert table.loc["train_dia0_utt1", "video_path"] is None and table.loc["train_dia0_utt1", "text"]
    assert table.loc["train_dia0_utt0", "video_path"] == "train_splits/dia0_utt0.mp4"
    reasons = dict(zip(manifest.problems.path, manifest.problems.reason, strict=True))
    assert reasons["train_splits/dia0_utt1.mp4"] == "video file missing; clip kept for its other modalities"
    assert reasons["dev_splits_complete/"].startswith("folder absent: no video for 1 clips")
    assert "decoded as cp1252" in reasons["test_sent_emo.csv"]
    assert "control characters repaired" in reasons["train_sent_emo.csv"]
    fold = make_folds(manifest, SPEC.protocol)[0]
    assert (len(fold.train), len(fold.val), len(fold.test)) == (3, 1, 1)
