"""Spectral audio extractors: log-mel frames, and the A-V cross-attention paper's spectrogram snippets."""

from __future__ import annotations

from typing import Literal

import numpy as np

from harness.features.base import (
    ClipInput,
    Count,
    Extractor,
    ExtractorOptions,
    Features,
    OutputDims,
    Positive,
    register_extractor,
)
from harness.features.weights.torchvision_weights import load_torchvision_model, torchvision_weights_identity


@register_extractor
class LogMelExtractor(Extractor):
    """torchaudio MelSpectrogram in dB per frame; pooled = mean and standard deviation over frames."""

    name = "logmel"
    trained_on = ()
    modality = "audio"
    description = "torchaudio log-mel spectrogram (dB); sequence = frames, pooled = mean+std"
    output = "sequence [T, n_mels] (10 ms frames); pooled [2*n_mels]"

    class Options(ExtractorOptions):
        sample_rate: Count = 16_000
        n_mels: Count = 64
        win_ms: Positive = 25.0
        hop_ms: Positive = 10.0
        n_fft: Count = 512

    def output_dims(self) -> OutputDims:
        return OutputDims(self.options.n_mels, 2 * self.options.n_mels)

    def setup(self) -> None:
        import torchaudio

        rate = self.sample_rate
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=rate, n_fft=int(self.config["n_fft"]), n_mels=int(self.config["n_mels"]),
            win_length=int(rate * self.config["win_ms"] / 1000), hop_length=int(rate * self.config["hop_ms"] / 1000))
        self._db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)

    def extract(self, clip: ClipInput) -> Features:
        import torch

        assert clip.audio is not None
        with torch.no_grad():
            mel = self._db(self._mel(torch.from_numpy(clip.audio))).T.numpy()  # [T, n_mels]
        return Features(sequence=mel, pooled=np.concatenate([mel.mean(axis=0), mel.std(axis=0)]))


def segment_starts(n_samples: int, segment: int, count: int) -> np.ndarray:
    """`count` segment starts spread evenly over the clip (overlapping when the clip is shorter than count s)."""
    return np.linspace(0, max(0, n_samples - segment), count).round().astype(int)


@register_extractor
class SpectrogramSnippetsExtractor(Extractor):
    """The A-V cross-attention paper's audio input: N one-second log-spectrogram images, optionally CNN-encoded.

    STFT with a 32 ms Hamming window and 10 ms hop, 256 frequency bins (n_fft 512 minus the Nyquist bin),
    split into `segments` one-second segments spread over the clip, each resized to `image_size` squared.
    encoder "resnet18": torchvision ResNet-18 without its classifier gives one 512-d vector per segment
    (weights "imagenet" from the torch hub cache, "random" seeded init, or a local state_dict path);
    encoder "none" stores the flattened image per segment.
    """

    name = "spectrogram-snippets"
    trained_on = ("ImageNet",)  # the ResNet-18 image encoder
    modality = "audio"
    description = "A-V cross-attention input: 6 x 1 s Hamming STFT images (256 bins), ResNet-18 -> 512-d each"
    output = "sequence [segments, 512] (resnet18) or [segments, image_size^2] (none); pooled = segment mean"

    class Options(ExtractorOptions):
        sample_rate: Count = 16_000
        segments: Count = 6
        segment_seconds: Positive = 1.0
        win_ms: Positive = 32.0
        hop_ms: Positive = 10.0
        freq_bins: Count = 256
        image_size: Count = 224
        encoder: Literal["resnet18", "none"] = "resnet18"
        weights: str = "imagenet"  # "imagenet" (torch hub cache), "random" (seeded) or a state_dict path
        seed: int = 0

    def output_dims(self) -> OutputDims:
        width = 512 if self.options.encoder == "resnet18" else self.options.image_size ** 2
        return OutputDims(width, width, rows=self.options.segments)

    def weights_identity(self) -> str:
        if self.config["encoder"] == "none":
            return ""
        return torchvision_weights_identity("resnet18", self.config["weights"])

    def check_weights(self) -> None:
        if self.config["encoder"] != "none":
            torchvision_weights_identity("resnet18", self.config["weights"], require=True)

    def setup(self) -> None:
        import torch

        self._device = self.device()
        self._window = torch.hamming_window(int(self.sample_rate * self.config["win_ms"] / 1000))
        self._encoder = None
        if self.config["encoder"] == "resnet18":
            model = load_torchvision_model("resnet18", self.config["weights"], int(self.config["seed"]))
            model.fc = torch.nn.Identity()
            self._encoder = model.eval().to(self._device)

    def images(self, audio: np.ndarray) -> np.ndarray:
        """[segments, image_size, image_size] standardised log-magnitude spectrogram images."""
        import torch
        import torch.nn.functional as F

        rate = self.sample_rate
        segment = int(rate * self.config["segment_seconds"])
        if len(audio) < segment:
            audio = np.pad(audio, (0, segment - len(audio)))
        starts = segment_starts(len(audio), segment, int(self.config["segments"]))
        chunks = torch.from_numpy(np.stack([audio[s:s + segment] for s in starts]))
        bins = int(self.config["freq_bins"])
        spec = torch.stft(chunks, n_fft=2 * bins, hop_length=int(rate * self.config["hop_ms"] / 1000),
                          win_length=len(self._window), window=self._window, return_complex=True).abs()
        spec = torch.log(spec[:, :bins] + 1e-6)  # [N, bins, frames]
        size = int(self.config["image_size"])
        images = F.interpolate(spec[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        mean = images.mean(dim=(1, 2), keepdim=True)
        std = images.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        return ((images - mean) / std).numpy()

    def extract(self, clip: ClipInput) -> Features:
        import torch

        assert clip.audio is not None
        images = self.images(clip.audio)
        if self._encoder is None:
            sequence = images.reshape(len(images), -1)
        else:
            batch = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1).to(self._device)
            with torch.no_grad():
                sequence = self._encoder(batch).cpu().numpy()
        return Features(sequence=sequence, pooled=sequence.mean(axis=0))
