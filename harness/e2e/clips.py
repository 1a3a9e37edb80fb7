"""Decoding clips into the end-to-end inputs: N video snippets of k frames, N spectrogram segments.

Front ends (`ClipSettings`): video from whole frames (`crop="frame"`) or from aligned face crops of the
harness's face detector (`crop="face"`, MTCNN; Mocanu et al. feed aligned faces, at 224 x 224 with
`frame_size=224`); audio as log-mel (`front_end="logmel"`, `n_mels` bins) or as a log-magnitude STFT with a
Hamming window and `stft_bins` frequency bins (`front_end="stft"`, 256 bins by default: Mocanu §4.2, "the Fast
Fourier Transform with 256 frequency components", a 32 ms Hamming window and a 10 ms step; n_fft = 2 * (bins - 1)
= 510 samples is 32 ms at 16 kHz). `image_size` resizes each segment's image to a square (Mocanu §4.2: 224 x 224
images into the ResNet-18); without it the image keeps its bins x `spec_frames` shape.

Decoding is done once, in the driver, into a compressed .npz cache that every Ray worker reads (workers would
otherwise each decode the whole corpus). The cache name carries a hash of the clip list and the settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness import atomic
from harness.hashing import stable_hash
from harness.manifest import Manifest
from harness.media import load_audio, load_frames, segment_bound


@dataclass(frozen=True)
class ClipSettings:
    """n_snippets: N (Mocanu §4.2: 6). frames_per_snippet: k frames per 3-D CNN snippet (§4.2: 16).
    frame_size: square frame side after resizing (§4.2: 224 x 224 aligned faces; torchvision's r3d_18 Kinetics
    weights were trained at 112; 32 keeps the tiny backbones cheap). The audio is cut into N equal segments (the
    paper's 1-second segments assume ~6 s clips); each becomes an n_mels x spec_frames log-mel image (or an
    stft_bins x spec_frames STFT image with front_end="stft"), resized to image_size x image_size when
    image_size is set (§4.2: 224). crop: "frame" (whole frames) or "face" (aligned face crops from
    `face_detector`: "mtcnn", or "full-frame" for tests)."""

    n_snippets: int = 6
    frames_per_snippet: int = 4
    frame_size: int = 32
    sample_rate: int = 16_000
    n_mels: int = 32
    spec_frames: int = 16
    front_end: str = "logmel"
    stft_bins: int = 256
    crop: str = "frame"
    face_detector: str = "mtcnn"
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.front_end not in FRONT_ENDS:
            raise ValueError(f"front_end must be one of {FRONT_ENDS}, got {self.front_end!r}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.stft_bins < 2:
            raise ValueError(f"stft_bins must be at least 2, got {self.stft_bins}")
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 (the paper's is 224), got {self.image_size}")

    @property
    def spectrogram_bins(self) -> int:
        """The height of one segment's image."""
        if self.image_size:
            return self.image_size
        return self.stft_bins if self.front_end == "stft" else self.n_mels


FRONT_ENDS = ("logmel", "stft")
CROPS = ("frame", "face")


def _snippet_frames(frames: np.ndarray, s: ClipSettings) -> np.ndarray:
    """[T, H, W, 3] -> [N, k, size, size, 3] uint8: N*k evenly spaced frames, resized."""
    import torch

    index = np.linspace(0, len(frames) - 1, s.n_snippets * s.frames_per_snippet).round().astype(int)
    chosen = torch.from_numpy(frames[index]).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(chosen, size=(s.frame_size, s.frame_size), mode="bilinear",
                                              align_corners=False)
    out = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out.reshape(s.n_snippets, s.frames_per_snippet, s.frame_size, s.frame_size, 3)


def _face_frames(frames: np.ndarray, s: ClipSettings, clip_id: str) -> np.ndarray:
    """The aligned face crop (frame_size x frame_size) of every frame where the detector finds a face; a clip
    with none raises NoFaceError naming the clip."""
    from harness.features.base import ClipInput
    from harness.features.extractors.face import FACE_DEFAULTS, FaceCropper

    cropper = FaceCropper({**FACE_DEFAULTS, "detector": s.face_detector, "crop_size": s.frame_size})
    return cropper.track(ClipInput(clip_id, frames=frames)).crops


def _segment_spectrograms(audio: np.ndarray, s: ClipSettings) -> np.ndarray:
    """Waveform -> [N, bins, spec_frames], one image per equal-length segment: log-mel (n_mels bins) or the log
    magnitude of a Hamming-window STFT (stft_bins bins); [N, image_size, image_size] when image_size is set."""
    import torch
    import torchaudio

    if s.front_end == "stft":
        n_fft = 2 * (s.stft_bins - 1)
        window = torch.hamming_window(n_fft)

        def transform(wave: torch.Tensor) -> torch.Tensor:
            return torch.stft(wave, n_fft=n_fft, hop_length=160, window=window, return_complex=True).abs()
    else:
        n_fft = 400
        transform = torchaudio.transforms.MelSpectrogram(sample_rate=s.sample_rate, n_fft=n_fft, hop_length=160,
                                                         n_mels=s.n_mels)
    segments = np.array_split(audio.astype(np.float32), s.n_snippets)
    images = []
    for segment in segments:
        wave = torch.from_numpy(segment if len(segment) >= n_fft else np.pad(segment, (0, n_fft - len(segment))))
        spec = torch.log(transform(wave) + 1e-6)  # [bins, frames]
        if s.image_size:
            spec = torch.nn.functional.interpolate(spec[None, None], size=(s.image_size, s.image_size),
                                                   mode="bilinear", align_corners=False)[0]
        else:
            spec = torch.nn.functional.interpolate(spec[None], size=s.spec_frames, mode="linear",
                                                   align_corners=False)
        images.append(spec[0].numpy())
    return np.stack(images).astype(np.float32)


def build_clip_cache(manifest: Manifest, settings: ClipSettings, cache_dir: Path) -> Path:
    """Decode every clip of the manifest (once) into `cache_dir/clips-<hash>.npz`; return its path.

    Arrays: ids [M], labels [M], speakers [M], video uint8 [M, N, k, S, S, 3], audio float32 [M, N, bins, t].
    """
    key = stable_hash({"manifest": manifest.fingerprint(), "settings": asdict(settings)})[:16]
    path = Path(cache_dir) / f"clips-{key}.npz"
    if path.exists():
        return path
    videos, audios = [], []
    for _, row in manifest.table.iterrows():
        # Segment bounds (e.g. an IEMOCAP utterance inside its dialogue's video) cut the frames, and the audio
        # when it comes from that video's track.
        start, end = segment_bound(row.get("video_start")), segment_bound(row.get("video_end"))
        frames, _ = load_frames(manifest.resolve(row["video_path"]), start=start, end=end)
        if settings.crop == "face":
            frames = _face_frames(frames, settings, str(row["clip_id"]))
        videos.append(_snippet_frames(frames, settings))
        audio_path = manifest.resolve(row["audio_path"])
        audio = (load_audio(audio_path, settings.sample_rate) if audio_path else
                 load_audio(manifest.resolve(row["video_path"]), settings.sample_rate, start, end))
        audios.append(_segment_spectrograms(audio, settings))
    labels = np.array([manifest.classes.index(label) for label in manifest.table["label"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, ids=np.array(manifest.ids), labels=labels,
                            speakers=manifest.table["speaker"].astype(str).to_numpy(),
                            video=np.stack(videos), audio=np.stack(audios))
    return path
