"""Decoding media into arrays: WAV/FLAC with soundfile, video (and its audio track) with decord, PyAV fallback.

torchaudio.load is deliberately not used: in the pinned stack it needs torchcodec plus a system FFmpeg.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
TIME_TOLERANCE = 1e-6  # seconds: a frame time this close to a segment bound counts as on it


class MediaError(RuntimeError):
    """A file that cannot be decoded; the message names the file and the reason."""


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling with libsoxr (the `soxr` package, "HQ": 20-bit, passband to 91 % of Nyquist).

    soxr handles any rational ratio at a bounded cost per sample. torchaudio's polyphase resampler builds one
    filter phase per step of the reduced ratio, so 24,414 -> 16,000 Hz (gcd 2: 8000/12207) took 3.4 s for a
    1.7 s clip; soxr takes about a millisecond (benchmarks/resample.md). The quality is checked against the
    exact rational polyphase filter of scipy in tests/test_media.py.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if source_rate == target_rate:
        return audio
    import soxr

    return soxr.resample(audio, int(source_rate), int(target_rate), quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int = 16_000, start: float | None = None,
               end: float | None = None) -> np.ndarray:
    """Mono float32 waveform at `sample_rate` from an audio file or the audio track of a video file.

    start/end (seconds) keep only [start, end): an utterance's audio when the file is a whole recording (the
    track of an IEMOCAP dialogue video). The file is decoded whole and then cut: fine for a fallback source.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        import soundfile as sf

        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as error:  # soundfile raises its own LibsndfileError and RuntimeError
            raise MediaError(f"{path}: cannot decode audio ({error})") from error
        audio = audio.mean(axis=1)
    else:
        audio, rate = _load_audio_track(path, sample_rate)
    audio = resample(audio, int(rate), sample_rate)
    if start is not None or end is not None:
        first = round((start or 0.0) * sample_rate)
        audio = audio[first:None if end is None else round(end * sample_rate)]
    if audio.size == 0:
        raise MediaError(f"{path}: audio is empty{_segment_text(start, end)}")
    return audio


def _segment_text(start: float | None, end: float | None) -> str:
    """' in [start, end) s' for error messages about a segment; '' for a whole file."""
    if start is None and end is None:
        return ""
    return f" in [{0.0 if start is None else start:g}, {'end' if end is None else f'{end:g}'}) s"


def _load_audio_track(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    try:
        import decord

        reader = decord.AudioReader(str(path), sample_rate=sample_rate, mono=True)
        return reader[:].asnumpy().reshape(-1).astype(np.float32), sample_rate
    except Exception:  # decord fails on some containers; PyAV is the fallback, its error is the one reported
        pass
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: the file has no audio track")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as error:
        raise MediaError(f"{path}: cannot decode audio track ({error})") from error
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), sample_rate


def frame_indices(n_frames: int, native_fps: float, fps: float | None, max_frames: int | None) -> np.ndarray:
    """Which frames to decode: every frame, or resampled to `fps`, then at most `max_frames` evenly spaced."""
    if n_frames <= 0:
        return np.zeros(0, dtype=int)
    if fps and native_fps > 0 and fps < native_fps:
        step = native_fps / fps
        index = np.floor(np.arange(0, n_frames, step)).astype(int)
    else:
        index = np.arange(n_frames)
    if max_frames and len(index) > max_frames:
        index = index[np.linspace(0, len(index) - 1, max_frames).round().astype(int)]
    return index


def segment_bound(value: object) -> float | None:
    """A manifest's segment bound in seconds; None (the file's own start or end) when absent, empty or NaN."""
    if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value)


def segment_range(n_frames: int, native_fps: float, start: float | None, end: float | None) -> range:
    """Indices of the frames shown in [start, end) seconds, frame i being shown at i / native_fps.

    Times within TIME_TOLERANCE of a bound count as on it, so a bound written with 4 decimals (IEMOCAP) that
    falls on a frame keeps that frame however the float product rounds.
    """
    first = 0 if start is None else max(0, math.ceil((start - TIME_TOLERANCE) * native_fps))
    stop = n_frames if end is None else min(n_frames, math.ceil((end - TIME_TOLERANCE) * native_fps))
    return range(first, max(first, stop))


def load_frames(path: str | Path, fps: float | None = None, max_frames: int | None = None,
                start: float | None = None, end: float | None = None) -> tuple[np.ndarray, float]:
    """RGB uint8 frames [T, H, W, 3] and the effective frame rate.

    start/end (seconds, None = the file's start/end) keep only the frames shown in [start, end), before `fps`
    and `max_frames` sampling: one utterance of a video that holds a whole dialogue (IEMOCAP).
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    try:
        import decord

        reader = decord.VideoReader(str(path))
        native = float(reader.get_avg_fps())
        segment = segment_range(len(reader), native, start, end)
        index = segment.start + frame_indices(len(segment), native, fps, max_frames)
        frames = reader.get_batch(index.tolist()).asnumpy() if len(index) else np.zeros((0, 1, 1, 3), np.uint8)
    except Exception:  # fall back to PyAV, whose error message is the one reported
        frames, native, index = _load_frames_pyav(path, fps, max_frames, start, end)
    if len(frames) == 0:
        raise MediaError(f"{path}: no video frames could be decoded{_segment_text(start, end)}")
    span = int(index[-1] - index[0]) if len(index) > 1 else 0
    effective = native * (len(index) - 1) / span if span else native  # the sampled frames' mean rate
    return frames, float(effective)


def _load_frames_pyav(path: Path, fps: float | None, max_frames: int | None, start: float | None = None,
                      end: float | None = None) -> tuple[np.ndarray, float, np.ndarray]:
    """The PyAV decoder: a segment is found by seeking to the keyframe before `start`, then by frame pts."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: the file has no video track")
            stream = container.streams.video[0]
            native = float(stream.average_rate or 25.0)
            all_frames = [f.to_ndarray(format="rgb24") for f in _segment_frames(container, stream, start, end)]
    except av.error.FFmpegError as error:
        raise MediaError(f"{path}: cannot decode video ({error})") from error
    index = frame_indices(len(all_frames), native, fps, max_frames)
    frames = np.stack([all_frames[i] for i in index]) if len(index) else np.zeros((0, 1, 1, 3), np.uint8)
    return frames, native, index


def _segment_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    start: float | None, end: float | None) -> Iterator[av.VideoFrame]:
    """Decoded frames whose time (pts from the stream's start) lies in [start, end); every frame when unbounded.

    Seeking lands on the keyframe at or before `start`, so a long dialogue is not decoded from its beginning
    for an utterance near its end; frames before `start` are then decoded and skipped.
    """
    if start is None and end is None:
        yield from container.decode(stream)
        return
    origin = stream.start_time or 0
    if start:
        container.seek(origin + int(start / stream.time_base), stream=stream, backward=True)
    for frame in container.decode(stream):
        if frame.pts is None:
            raise MediaError(f"{container.name}: frames carry no timestamps, so a segment cannot be cut")
        seconds = float((frame.pts - origin) * stream.time_base)
        if end is not None and seconds >= end - TIME_TOLERANCE:
            break
        if start is None or seconds >= start - TIME_TOLERANCE:
            yield frame
