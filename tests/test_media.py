"""Decoding: WAV via soundfile, video frames and the video's audio track via decord/PyAV, resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.datasets.synthetic import SyntheticConfig, generate
from harness.media import MediaError, frame_indices, load_audio, load_frames, resample


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=1, clips_per_emotion=1))
    return root


def test_wav_decodes_and_resamples(corpus: Path) -> None:
    audio = load_audio(corpus / "spk00" / "spk00_happy_00.wav", 16_000)
    assert audio.dtype == np.float32 and len(audio) == 24_000  # 1.5 s at 16 kHz
    assert len(load_audio(corpus / "spk00" / "spk00_happy_00.wav", 8_000)) == 12_000


def test_video_audio_track_matches_the_wav(corpus: Path) -> None:
    wav = load_audio(corpus / "spk00" / "spk00_happy_00.wav", 16_000)
    track = load_audio(corpus / "spk00" / "spk00_happy_00.mp4", 16_000)
    assert abs(len(track) - len(wav)) < 2_048  # AAC priming/padding frames
    n = min(len(track), len(wav)) - 2_048
    assert np.corrcoef(np.abs(wav[:n]), np.abs(track[:n]))[0, 1] > 0.3 or np.std(track) > 0.01


def test_frames_sampled_by_fps_and_count(corpus: Path) -> None:
    frames, fps = load_frames(corpus / "spk00" / "spk00_happy_00.mp4")
    assert frames.shape == (18, 64, 64, 3) and frames.dtype == np.uint8 and fps == pytest.approx(12.0)
    half, half_fps = load_frames(corpus / "spk00" / "spk00_happy_00.mp4", fps=6.0)
    assert len(half) == 9 and half_fps == pytest.approx(6.0)
    few, _ = load_frames(corpus / "spk00" / "spk00_happy_00.mp4", max_frames=4)
    assert len(few) == 4


def test_frame_indices() -> None:
    assert frame_indices(10, 10.0, 5.0, None).tolist() == [0, 2, 4, 6, 8]
    assert frame_indices(10, 10.0, None, 3).tolist() == [0, 4, 9]
    assert frame_indices(0, 10.0, None, None).tolist() == []


def test_resample_preserves_a_tone() -> None:
    t = np.arange(44_100) / 44_100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, 44_100, 16_000)
    spectrum = np.abs(np.fft.rfft(out))
    assert len(out) == 16_000 and np.argmax(spectrum) == 440


def test_corrupt_and_empty_files_raise_naming_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(MediaError, match="broken.mp4"):
        load_frames(corrupt)
    with pytest.raises(MediaError, match="broken.mp4"):
        load_audio(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16_000)
    with pytest.raises(MediaError, match="empty.wav"):
        load_audio(empty)
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "missing.wav")
