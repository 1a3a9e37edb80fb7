"""Decoding media into arrays: WAV/FLAC with soundfile, video (and its audio track) with decord, PyAV fallback.

torchaudio.load is deliberately not used: in the pinned stack it needs torchcodec plus a system FFmpeg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


class MediaError(RuntimeError):
    """A file that cannot be decoded; the message names the file and the reason."""


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited sinc resampling with torchaudio (its transforms work here; only torchaudio.load does not)."""
    if source_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional

    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return torchaudio.functional.resample(waveform, int(source_rate), int(target_rate)).numpy()


def load_audio(path: str | Path, sample_rate: int = 16_000) -> np.ndarray:
    """Mono float32 waveform at `sample_rate` from an audio file or the audio track of a video file."""
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
    if audio.size == 0:
        raise MediaError(f"{path}: audio is empty")
    return resample(audio, int(rate), sample_rate)


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


def load_frames(path: str | Path, fps: float | None = None, max_frames: int | None = None
                ) -> tuple[np.ndarray, float]:
    """RGB uint8 frames [T, H, W, 3] and the effective frame rate."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    try:
        import decord

        reader = decord.VideoReader(str(path))
        native = float(reader.get_avg_fps())
        index = frame_indices(len(reader), native, fps, max_frames)
        frames = reader.get_batch(index.tolist()).asnumpy() if len(index) else np.zeros((0, 1, 1, 3), np.uint8)
    except Exception:  # fall back to PyAV, whose error message is the one reported
        frames, native, index = _load_frames_pyav(path, fps, max_frames)
    if len(frames) == 0:
        raise MediaError(f"{path}: no video frames could be decoded")
    span = int(index[-1] - index[0]) if len(index) > 1 else 0
    effective = native * (len(index) - 1) / span if span else native  # the sampled frames' mean rate
    return frames, float(effective)


def _load_frames_pyav(path: Path, fps: float | None, max_frames: int | None
                      ) -> tuple[np.ndarray, float, np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: the file has no video track")
            stream = container.streams.video[0]
            native = float(stream.average_rate or 25.0)
            all_frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except av.error.FFmpegError as error:
        raise MediaError(f"{path}: cannot decode video ({error})") from error
    index = frame_indices(len(all_frames), native, fps, max_frames)
    frames = np.stack([all_frames[i] for i in index]) if len(index) else np.zeros((0, 1, 1, 3), np.uint8)
    return frames, native, index
