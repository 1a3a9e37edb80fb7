"""RAVDESS through its card, on fixture trees with the real names and layout."""

from __future__ import annotations

import pytest
from fixtures.corpora import ravdess_tree, touch

from harness.datasets import get_dataset
from harness.protocols import ProtocolSpec, get_protocol, make_folds

SPEC = get_dataset("ravdess")
N_PER_ACTOR = 8 + 6  # speech emotions + song emotions in the fixture


def test_full_tree_merges_wav_and_av_mp4_into_one_clip(tmp_path):
    ravdess_tree(tmp_path)
    assert SPEC.is_present(tmp_path)
    manifest = SPEC.scan(tmp_path)
    assert len(manifest) == 24 * N_PER_ACTOR and manifest.problems.empty
    assert manifest.classes == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert manifest.modalities() == ["audio", "video", "text"]
    clip = manifest.table.set_index("clip_id").loc["01-05-01-01-01-07"]
    assert clip["audio_path"] == "Actor_07/03-01-05-01-01-01-07.wav"
    assert clip["video_path"] == "Actor_07/01-01-05-01-01-01-07.mp4"
    assert (clip["label"], clip["speaker"], clip["gender"], clip["vocal_channel"], clip["intensity"]) == (
        "angry", "07", "male", "speech", "normal")
    assert clip["text"] == "Kids are talking by the door"
    table = manifest.table
    assert table.groupby("vocal_channel").size().to_dict() == {"song": 24 * 6, "speech": 24 * 8}
    assert set(table.loc[table.vocal_channel == "song", "label"]) == {
        "neutral", "calm", "happy", "sad", "angry", "fearful"}
    assert table.groupby("gender")["speaker"].nunique().to_dict() == {"female": 12, "male": 12}
    # Text is one of two fixed statements whatever the emotion: it cannot carry the label.
    assert table["text"].nunique() == 1


def test_audio_only_wavs_give_an_audio_only_manifest(tmp_path):
    ravdess_tree(tmp_path, actors=range(1, 4), av=False)
    manifest = SPEC.scan(tmp_path)
    assert len(manifest) == 3 * N_PER_ACTOR
    assert manifest.has_modality("audio").all() and not manifest.has_modality("video").any()
    assert manifest.modalities() == ["audio", "text"]


def test_video_only_file_is_used_only_without_the_av_file(tmp_path):
    ravdess_tree(tmp_path, actors=range(1, 3), wav=False, av=False, silent=True)
    touch(tmp_path / "Actor_01/01-01-03-01-01-01-01.mp4")
    table = SPEC.scan(tmp_path).table.set_index("clip_id")
    assert table.loc["01-03-01-01-01-01", "video_path"] == "Actor_01/01-01-03-01-01-01-01.mp4"
    assert table.loc["01-04-01-01-01-01", "video_path"] == "Actor_01/02-01-04-01-01-01-01.mp4"


def test_names_outside_the_scheme_are_reported_not_skipped(tmp_path):
    ravdess_tree(tmp_path, actors=range(1, 3))
    touch(tmp_path / "Actor_01/03-01-09-01-01-01-01.wav")  # emotion 09 does not exist
    touch(tmp_path / "Actor_02/notes.wav")
    manifest = SPEC.scan(tmp_path)
    assert len(manifest) == 2 * N_PER_ACTOR
    assert sorted(manifest.problems["path"]) == ["Actor_01/03-01-09-01-01-01-01.wav", "Actor_02/notes.wav"]
    assert manifest.problems["reason"].str.contains("does not match the card's pattern").all()


def test_absent_root_is_not_present(tmp_path):
    assert not SPEC.is_present(tmp_path / "nowhere")
    assert not SPEC.is_present(tmp_path)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("ravdess")
    ravdess_tree(root, wav=True, av=False)
    return SPEC.scan(root)


def test_default_protocol_is_six_folds_of_four_actors(full):
    assert SPEC.protocol == ProtocolSpec("speaker-kfold", {"k": 6})
    folds = make_folds(full, SPEC.protocol)  # asserts speaker independence
    assert len(folds) == 6
    tested = []
    for fold in folds:
        assert len(full.speakers_of(fold.test)) == 4 and len(full.speakers_of(fold.val)) == 4
        assert len(full.speakers_of(fold.train)) == 16
        tested += sorted(full.speakers_of(fold.test))
    assert sorted(tested) == [f"{a:02d}" for a in range(1, 25)]  # every actor tested exactly once


def test_ten_fold_variant_is_about_80_10_10_by_actor(full):
    folds = make_folds(full, SPEC.protocols["av-crossattention-10fold"])
    assert len(folds) == 10
    for fold in folds:
        n_test, n_val = len(full.speakers_of(fold.test)), len(full.speakers_of(fold.val))
        assert 2 <= n_test <= 3 and 2 <= n_val <= 3 and len(full.speakers_of(fold.train)) == 24 - n_test - n_val


def test_random_split_is_an_explicit_speaker_overlapping_option(full):
    spec = SPEC.protocols["random-5fold-speaker-overlapping"]
    assert not get_protocol(spec.name).speaker_independent
    assert "SPEAKER-OVERLAPPING" in get_protocol(spec.name).description
    fold = make_folds(full, spec)[0]
    assert full.speakers_of(fold.train) & full.speakers_of(fold.test)
