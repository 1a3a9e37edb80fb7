"""The built-in corpus: deterministic, decodable through the real media path, speaker-distinct."""

from __future__ import annotations

import hashlib

import numpy as np

from harness.datasets.synthetic import EMOTIONS, SAMPLE_RATE, SyntheticConfig, generate, scan
from harness.media import load_audio, load_frames
from harness.protocols import ProtocolSpec, assert_speaker_independent, make_folds


def test_manifest_covers_every_speaker_and_emotion(small_synthetic):
    manifest = scan(small_synthetic)
    assert len(manifest) == 4 * len(EMOTIONS) * 2
    counts = manifest.table.groupby(["speaker", "label"]).size()
    assert (counts == 2).all() and len(counts) == 4 * len(EMOTIONS)
    assert manifest.modalities() == ["audio", "video", "text"]


def test_media_decode_through_the_real_path(small_synthetic):
    manifest = scan(small_synthetic)
    row = manifest.table.iloc[0]
    audio = load_audio(manifest.resolve(row["audio_path"]), SAMPLE_RATE)
    assert audio.dtype == np.float32 and 1.4 * SAMPLE_RATE < len(audio) < 1.6 * SAMPLE_RATE
    frames, fps = load_frames(manifest.resolve(row["video_path"]))
    assert frames.shape[1:] == (64, 64, 3) and len(frames) >= 15 and fps > 0
    # the MP4 carries the same audio as an AAC track (AAC adds up to ~0.1 s of encoder priming and padding)
    track = load_audio(manifest.resolve(row["video_path"]), SAMPLE_RATE)
    assert len(audio) <= len(track) <= len(audio) + 0.15 * SAMPLE_RATE


def test_generation_is_deterministic(tmp_path):
    config = SyntheticConfig(n_speakers=2, clips_per_emotion=1, seed=7)
    generate(tmp_path / "a", config)
    generate(tmp_path / "b", config)
    for name in ("spk00/spk00_happy_00.wav", "spk00/spk00_happy_00.mp4", "spk01/spk01_sad_00.mp4", "metadata.csv"):
        digests = {hashlib.sha256((tmp_path / d / name).read_bytes()).hexdigest() for d in ("a", "b")}
        assert len(digests) == 1, name


def test_pitch_depends_on_emotion_and_speaker(small_synthetic):
    """Arousal raises pitch/energy (the audio cue) and speakers differ (so speaker folds matter)."""
    manifest = scan(small_synthetic)
    energy = {}
    for _, row in manifest.table.iterrows():
        audio = load_audio(manifest.resolve(row["audio_path"]))
        energy.setdefault((row["speaker"], row["label"]), []).append(float(np.sqrt(np.mean(audio ** 2))))
    for speaker in manifest.table["speaker"].unique():
        high = np.mean(energy[(speaker, "angry")] + energy[(speaker, "happy")])
        low = np.mean(energy[(speaker, "sad")] + energy[(speaker, "neutral")])
        assert high > low


def test_speaker_folds_are_disjoint(small_synthetic):
    manifest = scan(small_synthetic)
    folds = make_folds(manifest, ProtocolSpec("speaker-kfold", {"k": 4}))
    assert_speaker_independent(manifest, folds)
    assert sorted(c for f in folds for c in f.test) == sorted(manifest.ids)
