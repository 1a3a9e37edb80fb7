"""Decoding: WAV via soundfile, video frames and the video's audio track via decord/PyAV, resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures.corpora import frame_counts, write_counter_video

from harness.datasets.synthetic import SyntheticConfig, generate
from harness.media import MediaError, _load_frames_pyav, frame_indices, load_audio, load_frames, resample


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


@pytest.fixture(scope="module")
def counter_avi(tmp_path_factory) -> Path:
    """48 frames at 12 fps (4 s), keyframes at 0 and 2 s; frame k shows k."""
    return write_counter_video(tmp_path_factory.mktemp("counter") / "dialog.avi", 48)


def test_segment_decodes_exactly_the_frames_in_the_interval(counter_avi: Path, monkeypatch) -> None:
    def no_fallback(*args: object) -> None:
        raise AssertionError("decord failed and PyAV was used")

    monkeypatch.setattr("harness.media._load_frames_pyav", no_fallback)  # this test is about decord's path
    frames, fps = load_frames(counter_avi, start=1.25, end=2.5)  # frame 15 is at 1.25 s, frame 30 at 2.5 s
    assert frame_counts(frames) == list(range(15, 30)) and fps == pytest.approx(12.0)
    assert frame_counts(load_frames(counter_avi)[0]) == list(range(48))
    assert frame_counts(load_frames(counter_avi, start=3.0)[0]) == list(range(36, 48))
    assert frame_counts(load_frames(counter_avi, end=0.5)[0]) == list(range(6))
    half, half_fps = load_frames(counter_avi, fps=6.0, start=1.25, end=2.5)  # sampling happens inside the segment
    assert frame_counts(half) == list(range(15, 30, 2)) and half_fps == pytest.approx(6.0)
    assert frame_counts(load_frames(counter_avi, max_frames=3, start=1.25, end=2.5)[0]) == [15, 22, 29]
    with pytest.raises(MediaError, match=r"dialog.avi: no video frames .* in \[5, 6\) s"):
        load_frames(counter_avi, start=5.0, end=6.0)


def test_pyav_fallback_cuts_the_same_segment(counter_avi: Path) -> None:
    frames, native, index = _load_frames_pyav(counter_avi, None, None, 1.25, 2.5)  # seeks to the keyframe at 0
    assert frame_counts(frames) == list(range(15, 30)) and native == pytest.approx(12.0)
    assert index.tolist() == list(range(15))  # positions inside the segment, as decord's path counts them
    assert frame_counts(_load_frames_pyav(counter_avi, None, None, 2.5, 3.0)[0]) == list(range(30, 36))
    assert frame_counts(_load_frames_pyav(counter_avi, None, None, None, 0.5)[0]) == list(range(6))
    assert frame_counts(_load_frames_pyav(counter_avi, None, None)[0]) == list(range(48))
    assert frame_counts(_load_frames_pyav(counter_avi, 6.0, None, 1.25, 2.5)[0]) == list(range(15, 30, 2))


def test_audio_segment(corpus: Path) -> None:
    audio = load_audio(corpus / "spk00" / "spk00_happy_00.wav", 16_000, start=0.5, end=1.0)
    assert len(audio) == 8_000
    assert len(load_audio(corpus / "spk00" / "spk00_happy_00.wav", 16_000, start=1.0)) == 8_000
    with pytest.raises(MediaError, match="audio is empty in"):
        load_audio(corpus / "spk00" / "spk00_happy_00.wav", 16_000, start=2.0, end=3.0)


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


@pytest.mark.parametrize("rate", [8_000, 22_050, 24_414, 44_100, 48_000])
def test_resample_matches_the_exact_rational_reference(rate: int) -> None:
    """Against scipy's resample_poly with the exact reduced ratio (24,414 -> 16,000 Hz is 8000/12207, a filter
    of ~240k taps: slow, but the textbook answer): broadband noise agrees to better than 50 dB SNR away from
    the edges, a 1 kHz tone to 1e-3, and the length is the ideal one."""
    from math import gcd

    from scipy.signal import resample_poly

    rng = np.random.default_rng(0)
    # 1 s of noise, band-limited to 80 % of the lower Nyquist: where both filters are flat (their transition
    # bands differ by design)
    spectrum = np.fft.rfft(rng.standard_normal(rate))
    spectrum[np.fft.rfftfreq(rate, 1 / rate) > 0.4 * min(rate, 16_000)] = 0
    noise = (np.fft.irfft(spectrum, rate) * 0.1).astype(np.float32)
    out = resample(noise, rate, 16_000)
    g = gcd(rate, 16_000)
    reference = resample_poly(noise.astype(np.float64), 16_000 // g, rate // g)
    assert abs(len(out) - 16_000) <= 1 and out.dtype == np.float32
    inner = slice(800, 15_200)
    error = out[inner] - reference[inner]
    snr = 10 * np.log10(np.sum(reference[inner] ** 2) / np.sum(error ** 2))
    assert snr > 50, f"{rate} Hz: {snr:.1f} dB"
    t = np.arange(rate) / rate
    tone = resample(np.sin(2 * np.pi * 1_000 * t).astype(np.float32), rate, 16_000)
    expected = np.sin(2 * np.pi * 1_000 * np.arange(len(tone)) / 16_000)
    assert np.max(np.abs(tone[inner] - expected[inner])) < 1e-3


def test_resample_removes_what_the_target_cannot_hold() -> None:
    """A 10 kHz tone recorded at 24,414 Hz lies above 16 kHz's Nyquist: it must vanish, not alias to 6 kHz."""
    t = np.arange(24_414) / 24_414
    out = resample(np.sin(2 * np.pi * 10_000 * t).astype(np.float32), 24_414, 16_000)
    assert np.sqrt(np.mean(out[800:-800] ** 2)) < 1e-3  # > 57 dB below the input's 0.707 RMS


def test_resample_is_fast_at_odd_rates() -> None:
    """The reason for soxr: a 2 s clip at 24,414 Hz took torchaudio seconds; here well under 50 ms."""
    import time

    audio = np.random.default_rng(1).standard_normal(2 * 24_414).astype(np.float32)
    resample(audio, 24_414, 16_000)
    started = time.perf_counter()
    resample(audio, 24_414, 16_000)
    assert time.perf_counter() - started < 0.05


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
