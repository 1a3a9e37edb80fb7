"""IEMOCAP: the parser on a fixture tree in the real format; 4- and 6-class settings; leave-one-session-out;
utterance-level video cut out of the dialogue AVI."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.corpora import COUNTER_FPS, frame_counts, iemocap_tree

from harness.datasets import get_dataset
from harness.features.base import ClipInput, build_extractor
from harness.features.extractors.face import FaceCropper
from harness.features.runner import decode_clip, extract, load_features
from harness.features.store import FeatureStore
from harness.manifest import Manifest
from harness.media import load_frames
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
    assert row["video_path"] == "Session3/dialog/avi/DivX/Ses03F_impro01.avi"
    assert (float(row["video_start"]), float(row["video_end"])) == (7.5, 9.25)
    assert manifest.modalities() == ["audio", "video", "text"]
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


def test_utterance_video_is_its_segment_of_the_dialogue_avi(root):
    manifest = SPEC.scan(root)
    row = manifest.table.set_index("clip_id").loc["Ses03F_impro01_F001"]  # [7.5000 - 9.2500]
    frames, _ = load_frames(manifest.resolve(row["video_path"]), start=float(row["video_start"]),
                            end=float(row["video_end"]))
    assert frame_counts(frames) == list(range(round(7.5 * COUNTER_FPS), round(9.25 * COUNTER_FPS)))


def test_two_utterances_of_one_dialogue_get_different_features(root, tmp_path):
    scanned = SPEC.scan(root)
    one_dialog = scanned.table[scanned.table["dialog"] == "Ses01F_impro01"]
    manifest = Manifest(scanned.dataset, scanned.root, scanned.classes, one_dialog)
    assert manifest.table["video_path"].nunique() == 1 and len(manifest) == 3  # one AVI, 3 kept utterances
    store = FeatureStore(str(tmp_path))
    result = extract(manifest, "frame-grid", store, executor="local", verbose=False)
    assert result.n_clips == 3 and result.n_failed == 0
    features, _ = load_features(manifest, "frame-grid", store)
    pooled = features.pooled[[features.index()[c] for c in ("Ses01F_impro01_F000", "Ses01F_impro01_M000")]]
    assert not np.allclose(pooled[0], pooled[1])
    # Face crops are cached per segment: a segment shares them neither with its whole file nor with another one.
    video = str(manifest.resolve(manifest.table["video_path"].iloc[0]))
    extractor = build_extractor("mtcnn-landmarks", {"detector": "full-frame"})
    segment = decode_clip({"clip_id": "x", "video_path": video, "video_start": 1.5, "video_end": 3.25}, extractor)
    later = decode_clip({"clip_id": "y", "video_path": video, "video_start": 3.25, "video_end": 5.0}, extractor)
    whole = decode_clip({"clip_id": "z", "video_path": video}, extractor)
    cropper = FaceCropper(extractor.config)
    assert len({cropper.cache_key(clip) for clip in (segment, later, whole)}) == 3
    assert cropper.cache_key(segment) == cropper.cache_key(ClipInput.from_bytes(segment.to_bytes()))
    assert frame_counts(decode_clip({"clip_id": "x", "video_path": video, "video_start": 1.5, "video_end": 3.25},
                                    build_extractor("frame-grid")).frames) == list(range(18, 39))
    # The bounds are part of the feature cache key: moving one is a cache miss.
    moved = manifest.table.copy()
    moved.loc[moved.index[0], "video_end"] = "3.0000"
    assert Manifest(manifest.dataset, manifest.root, manifest.classes, moved).fingerprint() != manifest.fingerprint()


def test_manifests_without_segments_keep_their_fingerprint(root):
    manifest = SPEC.scan(root)
    whole = manifest.table.drop(columns=["video_start", "video_end"])
    plain = Manifest(manifest.dataset, manifest.root, manifest.classes, whole)
    assert plain.table["video_start"].isna().all()  # an optional column, filled with None
    blank = manifest.table.assign(video_start="", video_end="")
    # empty bounds and absent bound columns key identically: bounds count only when a clip has one
    assert Manifest(manifest.dataset, manifest.root, manifest.classes, blank).fingerprint() == plain.fingerprint()
    assert manifest.fingerprint() != plain.fingerprint()


def test_missing_dialogue_video_leaves_video_empty_and_is_reported(tmp_path):
    iemocap_tree(tmp_path, sessions=range(1, 2))
    missing = "Session1/dialog/avi/DivX/Ses01F_script01_1.avi"
    (tmp_path / missing).unlink()
    manifest = SPEC.scan(tmp_path)
    table = manifest.table.set_index("clip_id")
    assert table.loc[table["dialog"] == "Ses01F_script01_1", "video_path"].isna().all()
    assert table.loc[table["dialog"] == "Ses01F_impro01", "video_path"].notna().all()
    reasons = manifest.problems.loc[manifest.problems.path == missing, "reason"]
    assert len(reasons) == 4 and reasons.str.startswith("video file missing").all()  # one line per utterance
