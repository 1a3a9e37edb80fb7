"""Self-supervised speech encoders through `transformers`: wav2vec 2.0, HuBERT, WavLM, data2vec-audio, Whisper.

Any checkpoint works, by hub name (must be in the local HF cache) or local path. Audio is decoded at 16 kHz,
split into chunks of at most `chunk_seconds` (long clips would otherwise exhaust memory: attention is
quadratic), encoded chunk by chunk, and the frame sequences concatenated. `layer` picks a hidden state, their
mean, or a weighted combination; `pooling` turns frames into the clip vector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from harness.features.base import (
    ClipInput,
    Extractor,
    ExtractorOptions,
    Features,
    Layer,
    OutputDims,
    Positive,
    TrainableInPlace,
    register_extractor,
)
from harness.features.weights.hf import checkpoint_identity, pool, resolve_checkpoint, select_layer

SAMPLE_RATE = 16_000


def chunk_bounds(n_samples: int, chunk: int, min_tail: int) -> list[tuple[int, int]]:
    """[start, end) chunks of at most `chunk` samples; a tail shorter than `min_tail` joins the previous one."""
    bounds = [(s, min(s + chunk, n_samples)) for s in range(0, n_samples, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_tail:
        bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
    return bounds


class SpeechEncoderExtractor(Extractor, TrainableInPlace):
    """wav2vec2-style encoders (raw waveform in, one frame per 20 ms out)."""

    modality = "audio"
    output = "sequence [T, hidden] (20 ms frames); pooled [hidden] ([2*hidden] for mean+std)"

    class Options(ExtractorOptions):
        checkpoint: str = ""  # a hub name already in the local cache, or a local directory
        layer: Layer = "last"  # "last", "mean" (of all hidden states), an index (0 = embeddings) or weights
        pooling: Literal["mean", "max", "mean+std", "first"] = "mean"
        chunk_seconds: Positive = 20.0
        normalize: Literal["auto"] | bool = "auto"  # auto: as the checkpoint's preprocessor config says

    def output_dims(self) -> OutputDims:
        """The checkpoint's hidden size, known once `setup()` has loaded it."""
        if getattr(self, "_model", None) is None:
            return OutputDims(None, None)
        config = self._model.config
        width = int(getattr(config, "hidden_size", None) or config.d_model)
        return OutputDims(width, 2 * width if self.config["pooling"] == "mean+std" else width)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def weights_identity(self) -> str:
        return checkpoint_identity(self.config["checkpoint"])

    def check_weights(self) -> None:
        resolve_checkpoint(self.config["checkpoint"])

    def setup(self) -> None:
        from transformers import AutoModel

        path = resolve_checkpoint(self.config["checkpoint"])
        self._device = self.device()
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(self._device)
        self._normalize = self.config["normalize"]
        if self._normalize == "auto":
            preprocessor = Path(path) / "preprocessor_config.json"
            self._normalize = (json.loads(preprocessor.read_text()).get("do_normalize", True)
                               if preprocessor.exists() else True)

    def network_on(self, device: str):
        if getattr(self, "_model", None) is None:
            self.setup()
        self._device = device
        return self._model.to(device)

    def normalised(self, audio: np.ndarray) -> np.ndarray:
        """The waveform as the network sees it (zero mean, unit variance when the checkpoint normalises)."""
        return (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7) if self._normalize else audio

    def encode_chunk(self, audio: np.ndarray):
        """Hidden states for one chunk: a tuple of [1, T, D] tensors (index 0 = embeddings)."""
        import torch

        if self._normalize:
            audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        inputs = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(self._device)
        return self._model(inputs, output_hidden_states=True).hidden_states

    def extract(self, clip: ClipInput) -> Features:
        import torch

        assert clip.audio is not None
        audio = clip.audio
        if len(audio) < SAMPLE_RATE // 10:  # the convolutional front end needs at least a few frames
            audio = np.pad(audio, (0, SAMPLE_RATE // 10 - len(audio)))
        parts = []
        with torch.no_grad():
            for start, end in chunk_bounds(len(audio), int(SAMPLE_RATE * float(self.config["chunk_seconds"])),
                                           SAMPLE_RATE):
                hidden = select_layer(self.encode_chunk(audio[start:end]), self.config["layer"])
                parts.append(hidden[0].float().cpu().numpy())
        sequence = np.concatenate(parts)
        return Features(sequence=sequence, pooled=pool(sequence, self.config["pooling"]))


@register_extractor
class Wav2Vec2Extractor(SpeechEncoderExtractor):
    name = "wav2vec2"
    trained_on = ("LibriSpeech",)  # facebook/wav2vec2-base: LibriSpeech 960 h, self-supervised
    description = "wav2vec 2.0 (any checkpoint by name or local path), selectable layer and pooling"

    class Options(SpeechEncoderExtractor.Options):
        checkpoint: str = "facebook/wav2vec2-base"


@register_extractor
class HubertExtractor(SpeechEncoderExtractor):
    name = "hubert"
    trained_on = ("LibriSpeech",)  # facebook/hubert-base-ls960
    description = "HuBERT (any checkpoint by name or local path), selectable layer and pooling"

    class Options(SpeechEncoderExtractor.Options):
        checkpoint: str = "facebook/hubert-base-ls960"


@register_extractor
class WavLMExtractor(SpeechEncoderExtractor):
    name = "wavlm"
    trained_on = ("Libri-Light", "GigaSpeech", "VoxPopuli")  # microsoft/wavlm-base-plus, self-supervised
    description = "WavLM (any checkpoint by name or local path), selectable layer and pooling"

    class Options(SpeechEncoderExtractor.Options):
        checkpoint: str = "microsoft/wavlm-base-plus"


@register_extractor
class Data2VecAudioExtractor(SpeechEncoderExtractor):
    name = "data2vec-audio"
    trained_on = ("LibriSpeech",)  # facebook/data2vec-audio-base
    description = "data2vec-audio (any checkpoint by name or local path), selectable layer and pooling"

    class Options(SpeechEncoderExtractor.Options):
        checkpoint: str = "facebook/data2vec-audio-base"


@register_extractor
class WhisperEncoderExtractor(SpeechEncoderExtractor):
    """Whisper's encoder on log-mel input. Whisper always sees 30 s windows; the padded frames are cut off."""

    name = "whisper-encoder"
    trained_on = None  # 680k hours of web audio that OpenAI has not listed: unknown
    description = "Whisper encoder (any checkpoint by name or local path), selectable layer and pooling"

    class Options(ExtractorOptions):  # no `normalize`: Whisper's own log-mel front end is used
        checkpoint: str = "openai/whisper-base"
        layer: Layer = "last"
        pooling: Literal["mean", "max", "mean+std", "first"] = "mean"
        chunk_seconds: Annotated[float, Field(gt=0, le=30)] = 30.0  # Whisper sees 30 s windows

    def setup(self) -> None:
        from transformers import AutoConfig, WhisperFeatureExtractor, WhisperModel

        path = resolve_checkpoint(self.config["checkpoint"])
        self._device = self.device()
        self._model = WhisperModel.from_pretrained(path, local_files_only=True).get_encoder().eval()
        self._model.to(self._device)
        if (Path(path) / "preprocessor_config.json").exists():
            self._features = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
        else:
            self._features = WhisperFeatureExtractor(feature_size=AutoConfig.from_pretrained(path).num_mel_bins)

    def encode_chunk(self, audio: np.ndarray):
        import torch

        mel = self._features(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        frames = int(np.ceil(len(audio) / self._features.hop_length / 2))  # encoder output frames of real audio
        hidden = self._model(mel.to(self._device), output_hidden_states=True).hidden_states
        return tuple(torch.as_tensor(h)[:, :max(1, frames)] for h in hidden)
