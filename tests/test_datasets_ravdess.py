"""RAVDESS through its card, on fixture trees with the real names and layout."""

from __future__ import annotations

import pytest
from fixtures.corpora import ravdess_tree, touch

from harness.datasets import get_dataset
from harness.protocols import ProtocolSpec, get_protocol, make_folds

SPEC = get_dataset("ravdess")
N_PER_ACTOR = 8  # speech emotions per actor in the fixture (the default reads speech only)
N_SONG = 6  # song emotions per actor in the fixture (the `song` target; `all` reads both)


def test_full_tree_merges_wav_and_av_mp4_into_one_clip(tmp_path):
    ravdess_tree(tmp_path)
    assert SPEC.is_present(tmp_path)
    manifest = SPEC.scan(tmp_path)
    assert len(manifest) == 24 * N_PER_ACTOR
    # Song clips are left out of the default by design, and counted (one line per song label).
    assert manifest.problems["reason"].str.contains("excluded by design").all() and len(manifest.problems) == 6
    assert manifest.classes == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert manifest.modalities() == ["audio", "video", "text"]
    clip = manifest.table.set_index("clip_id").loc["01-05-01-01-01-07"]
    assert clip["audio_path"] == "Actor_07/03-01-05-01-01-01-07.wav"
    assert clip["video_path"] == "Actor_07/01-01-05-01-01-01-07.mp4"
    assert (clip["label"], clip["speaker"], clip["gender"], clip["vocal_channel"], clip["intensity"]) == (
        "angry", "07", "male", "speech", "normal")
    assert clip["text"] == "Kids are talking by the door"
    table = SPEC.with_target("all").scan(tmp_path).table
    assert table.groupby("vocal_channel").size().to_dict() == {"song": 24 * N_SONG, "speech": 24 * 8}
    assert set(table.loc[table.vocal_channel == "song", "label"]) == {
        "neutral", "calm", "happy", "sad", "angry", "fearful"}
    assert table.groupby("gender")["speaker"].nunique().to_dict() == {"female": 12, "male": 12}
    # Text is one of two fixed statements whatever the emotion: it cannot carry the label.
    assert table["text"].nunique() == 1


def test_default_is_the_speech_set_and_song_is_an_opt_in_target(tmp_path):
    ravdess_tree(tmp_path, actors=range(1, 4), av=False)
    speech = SPEC.scan(tmp_path)
    assert set(speech.table["vocal_channel"]) == {"speech"} and len(speech) == 3 * 8
    song_spec = SPEC.with_target("song")
    song = song_spec.scan(tmp_path)
    assert song.dataset == "ravdess@song" and song_spec.name == "ravdess"
    assert set(song.table["vocal_channel"]) == {"song"} and len(song) == 3 * N_SONG
    assert song.classes == list(song_spec.classes) == ["neutral", "calm", "happy", "sad", "angry", "fearful"]
    assert set(song_spec.polarity) == set(song_spec.classes)
    assert song.fingerprint() != speech.fingerprint()
    assert len(SPEC.with_target("all").scan(tmp_path)) == 3 * (8 + N_SONG)
    with pytest.raises(KeyError, match="defines: song, all"):
        SPEC.with_target("speech-and-dance")


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
    problems = manifest.problems[~manifest.problems["reason"].str.contains("excluded by design")]
    assert sorted(problems["path"]) == ["Actor_01/03-01-09-01-01-01-01.wav", "Actor_02/notes.wav"]
    assert problems["reason"].str.contains("does not match the card's pattern").all()


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


def test_protocol_alternative_by_name_yields_its_folds(full):
    ten = SPEC.with_protocol("av-crossattention-10fold")
    assert ten.protocol == ProtocolSpec("speaker-kfold", {"k": 10}, "av-crossattention-10fold")
    assert ten.name == "ravdess" and ten.protocol.label() == "av-crossattention-10fold: speaker-kfold(k=10)"
    folds = make_folds(full, ten.protocol)
    assert len(folds) == 10
    sizes = [(len(f.train), len(f.val), len(f.test)) for f in folds]
    for n_train, n_val, n_test in sizes:  # about 80/10/10 of the 1,440-clip-shaped fixture, by actor
        total = n_train + n_val + n_test
        assert total == len(full) and 0.7 <= n_train / total <= 0.85 and 0.08 <= n_test / total <= 0.13
    assert SPEC.with_protocol(None) is SPEC and SPEC.with_protocol("default") is SPEC
    with pytest.raises(KeyError, match="av-crossattention-10fold, random-5fold-speaker-overlapping"):
        SPEC.with_protocol("ten-fold")


def test_random_split_is_an_explicit_speaker_overlapping_option(full):
    spec = SPEC.protocols["random-5fold-speaker-overlapping"]
    assert not get_protocol(spec.name).speaker_independent
    assert "SPEAKER-OVERLAPPING" in get_protocol(spec.name).description
    fold = make_folds(full, spec)[0]
    assert full.speakers_of(fold.train) & full.speakers_of(fold.test)
