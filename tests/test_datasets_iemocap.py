"""IEMOCAP: the parser on a fixture tree in the real format; 4- and 6-class settings; leave-one-session-out."""

from __future__ import annotations

import pytest
from fixtures.corpora import iemocap_tree

from harness.datasets import get_dataset
from harness.protocols import make_folds

SPEC = get_dataset("iemocap")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("iemocap")
    iemocap_tree(path)
    return path


def test_four_class_setting_merges_excited_into_happy(root):
    assert SPEC.is_present(root)
    manifest = SPEC.scan(root)
    assert manifest.classes == ["neutral", "happy", "angry", "sad"]
    assert len(manifest) == 5 * 7
    assert manifest.class_counts().to_dict() == {"neutral": 10, "happy": 10, "angry": 5, "sad": 10}
    row = manifest.table.set_index("clip_id").loc["Ses03F_impro01_F001"]
    assert (row["label"], row["raw_label"], row["speaker"], row["session"], row["gender"]) == (
        "happy", "exc", "Ses03F", "Ses03", "F")
    assert row["audio_path"] == "Session3/sentences/wav/Ses03F_impro01/Ses03F_impro01_F001.wav"
    assert row["text"] == "Utterance 2 of Ses03F_impro01."
    assert row["dialog_video"] == "Session3/dialog/avi/DivX/Ses03F_impro01.avi"
    assert (float(row["start"]), float(row["valence"])) == (7.5, 2.5)
    assert manifest.table.loc[manifest.table.clip_id == "Ses01F_script01_1_M000", "speaker"].item() == "Ses01M"
    assert manifest.modalities() == ["audio", "text"]
    # fru and xxx are outside the 4-class setting: excluded by design and counted, not silently dropped.
    excluded = manifest.problems[manifest.problems.reason.str.contains("excluded by design")]
    assert sorted(excluded["path"]) == ["(5 clips)", "(5 clips)"]
    assert set(excluded["reason"].str.extract(r"label '(\w+)'")[0]) == {"fru", "xxx"}


def test_six_class_target(root):
    manifest = SPEC.scan_target(root, "6class")
    assert manifest.dataset == "iemocap@6class"
    assert manifest.class_counts().to_dict() == {"neutral": 10, "happy": 5, "sad": 10, "angry": 5,
                                                 "excited": 5, "frustrated": 5}


def test_leave_one_session_out_validates_on_another_sessions_speaker(root):
    manifest = SPEC.scan(root)
    folds = make_folds(manifest, SPEC.protocol)  # asserts speaker independence
    assert [f.name for f in folds] == [f"test-Ses0{i}" for i in range(1, 6)]
    table = manifest.table.set_index("clip_id")
    for i, fold in enumerate(folds):
        test_sessions = set(table.loc[fold.test, "session"])
        val_speakers = set(table.loc[fold.val, "speaker"])
        assert test_sessions == {f"Ses0{i + 1}"}
        assert len(val_speakers) == 1 and val_speakers.pop()[:5] not in test_sessions
        assert not set(table.loc[fold.train, "session"]) & test_sessions
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(manifest)


def test_missing_session_and_broken_line_are_reported(tmp_path):
    iemocap_tree(tmp_path, sessions=range(1, 3))
    evaluation = tmp_path / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    evaluation.write_text(evaluation.read_text() + "\n[garbled line\n")
    manifest = SPEC.scan(tmp_path)
    reasons = dict(zip(manifest.problems.path, manifest.problems.reason, strict=True))
    assert reasons["Session3/"].startswith("session folder absent")
    assert "unparseable evaluation line" in reasons["Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"]
    assert len(manifest) == 2 * 7
