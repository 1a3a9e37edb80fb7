"""Trainable wrappers around the project's extractors: the extractor's own network (reached through
`TrainableInPlace.network_on`) plus a linear head, trained on clips of one fold, then re-encoding every clip.

text:   a `transformers` text encoder (bert, roberta, text-transformer, minilm). The dialogue history and the
        utterance are one sentence pair (history first, as segment A), the history truncated from the left so
        the most recent turns and the whole utterance stay; the utterance alone when there is no history.
        Stage-1 features are re-encoded the same way (with the history), from the extractor's chosen layer and
        pooling, so they have the frozen features' shapes.
speech: a wav2vec 2.0-family encoder (wav2vec2, hubert, wavlm, data2vec-audio): the convolutional front end
        frozen, LayerDrop and SpecAugment masking off, clips cropped to `max_seconds` in training (a random
        window; the first window for validation), mean-pooled over real frames. Stage-1 features are
        re-encoded by the extractor's own `extract` (whole clip, its chunking, layer and pooling).
video:  `face-embed` (a transformers or timm image backbone on aligned face crops): every frame's vector from
        the backbone, averaged over at most `TRAIN_FACE_FRAMES` evenly spaced face frames per clip, into the head.
        The crops are computed once per clip (cached in the feature store, so the frames need not stay in
        memory) and the stored features are re-encoded by the extractor's own `extract` (every face frame).
Heavy imports (torch, transformers) happen inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.config import FinetuneOptions
from harness.features.base import ClipInput, Extractor, Features, TrainableInPlace

SAMPLE_RATE = 16_000
ENCODE_BATCH = 32  # clips per re-encoding call (does not change the features)
TRAIN_FACE_FRAMES = 8  # face frames per clip in a training or validation step (memory; evenly spaced)


class NotTrainable(ValueError):
    """An extractor stage 1 cannot fine-tune; the message names it and what to use instead."""


@dataclass(frozen=True)
class TextItem:
    history: tuple[str, ...]
    utterance: str


def trainable_reason(extractor: Extractor) -> str:
    """Why `extractor` cannot be fine-tuned ("" when it can)."""
    from harness.features.extractors.face import FaceEmbedExtractor
    from harness.features.extractors.pretrained_audio import SpeechEncoderExtractor, WhisperEncoderExtractor

    if not isinstance(extractor, TrainableInPlace):
        return (f"extractor {extractor.name!r} ({extractor.modality}) has no trainable network; choose a "
                "transformer one, e.g. --features text=roberta or --features audio=wav2vec2")
    if isinstance(extractor, WhisperEncoderExtractor):
        return "whisper-encoder is not supported by stage 1 (log-mel front end); use wav2vec2, hubert or wavlm"
    if isinstance(extractor, SpeechEncoderExtractor | FaceEmbedExtractor) or extractor.modality == "text":
        if extractor.modality == "text" and extractor.config.get("transcript", "manifest") != "manifest":
            return (f"{extractor.name}: stage 1 reads the manifest's transcripts (and their dialogue history); "
                    "set transcript=manifest")
        return ""
    return f"extractor {extractor.name!r} ({extractor.modality}) is not supported by stage 1 yet"


class Encoder:
    """What stage 1 needs of a modality's encoder: inputs for a batch, logits, state copies, re-encoding."""

    def __init__(self, network: Any, hidden: int, n_classes: int, device: str) -> None:
        import torch

        self.network, self.device = network, device
        self.head = torch.nn.Linear(hidden, n_classes).to(device)

    def parameters(self) -> list:
        return [p for p in [*self.network.parameters(), *self.head.parameters()] if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        self.network.train(mode)
        self.head.train(mode)

    def state(self) -> dict[str, Any]:
        """A copy of every weight (network and head) on the CPU: the best epoch's, restored at the end."""
        return {"network": {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()},
                "head": {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.head.load_state_dict(state["head"])

    def logits(self, items: list, train: bool, rng: np.random.Generator):
        return self.head(self.embed(items, train, rng))

    def embed(self, items: list, train: bool, rng: np.random.Generator):
        raise NotImplementedError

    def item(self, clip: ClipInput, history: list[str]) -> Any:
        raise NotImplementedError

    def encode(self, clips: list[ClipInput], items: list) -> list[Features | Exception]:
        raise NotImplementedError

    def release(self, clip: ClipInput) -> None:
        """Drop what the clip no longer needs once its item is built (decoded frames: memory)."""


class TextEncoder(Encoder):
    def __init__(self, extractor: Extractor, n_classes: int, device: str, options: FinetuneOptions) -> None:
        network = extractor.network_on(device)  # type: ignore[attr-defined]
        super().__init__(network, int(network.config.hidden_size), n_classes, device)
        self.extractor = extractor
        self.tokenizer = extractor.text_tokenizer()  # type: ignore[attr-defined]
        self.max_tokens = int(extractor.config["max_tokens"])
        self.pooling = extractor.finetune_pooling  # type: ignore[attr-defined]
        self.layer = extractor.config.get("layer", "last")

    def item(self, clip: ClipInput, history: list[str]) -> TextItem:
        return TextItem(tuple(history), str(clip.text or ""))

    def tokens(self, items: list[TextItem]) -> dict[str, Any]:
        """One padded batch: [CLS] history [SEP] utterance [SEP], the history cut from the left to fit."""
        encoded = []
        for item in items:
            utterance = self.tokenizer(item.utterance, add_special_tokens=False)["input_ids"]
            room = self.max_tokens - self.tokenizer.num_special_tokens_to_add(pair=True) - len(utterance)
            if item.history and room > 0:
                self.tokenizer.truncation_side = "left"
                pair = self.tokenizer(" ".join(item.history), item.utterance, truncation="only_first",
                                      max_length=self.max_tokens)
            else:
                self.tokenizer.truncation_side = "right"
                pair = self.tokenizer(item.utterance, truncation=True, max_length=self.max_tokens)
            encoded.append(dict(pair))
        self.tokenizer.truncation_side = "right"
        return self.tokenizer.pad(encoded, return_tensors="pt").to(self.device)

    def _pool(self, hidden, mask):
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def embed(self, items: list[TextItem], train: bool, rng: np.random.Generator):
        inputs = self.tokens(items)
        return self._pool(self.network(**inputs).last_hidden_state, inputs["attention_mask"])

    def encode(self, clips: list[ClipInput], items: list[TextItem]) -> list[Features | Exception]:
        """Sequence = the extractor's chosen layer over the pair's real tokens; pooled = its pooling of it."""
        import torch

        from harness.features.weights.hf import select_layer

        out: list[Features | Exception] = []
        with torch.no_grad():
            for start in range(0, len(items), ENCODE_BATCH):
                inputs = self.tokens(items[start:start + ENCODE_BATCH])
                states = self.network(**inputs, output_hidden_states=True).hidden_states
                hidden = select_layer(states, self.layer).float()
                pooled = self._pool(hidden, inputs["attention_mask"])
                if self.extractor.name == "minilm":  # the sentence embedding minilm stores is L2-normalised
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                for row, mask in enumerate(inputs["attention_mask"].bool()):
                    out.append(Features(sequence=hidden[row][mask].cpu().numpy(), pooled=pooled[row].cpu().numpy()))
        return out


class SpeechEncoder(Encoder):
    def __init__(self, extractor: Extractor, n_classes: int, device: str, options: FinetuneOptions) -> None:
        network = extractor.network_on(device)  # type: ignore[attr-defined]
        network.config.layerdrop = 0.0  # every layer every step: LayerDrop off, as the brief of stage 1 says
        network.config.apply_spec_augment = False
        if hasattr(network, "freeze_feature_encoder"):
            network.freeze_feature_encoder()  # the convolutional front end stays as pretrained
        super().__init__(network, int(network.config.hidden_size), n_classes, device)
        self.extractor = extractor
        self.max_samples = int(options.max_seconds * SAMPLE_RATE)
        self.min_samples = SAMPLE_RATE // 10  # the front end needs a few frames, as the extractor pads

    def item(self, clip: ClipInput, history: list[str]) -> np.ndarray:
        assert clip.audio is not None
        return clip.audio

    def frames(self, samples: int) -> int:
        """Output frames of the convolutional front end for `samples` input samples."""
        for kernel, stride in zip(self.network.config.conv_kernel, self.network.config.conv_stride, strict=True):
            samples = (samples - kernel) // stride + 1
        return max(1, samples)

    def embed(self, items: list[np.ndarray], train: bool, rng: np.random.Generator):
        import torch

        crops = []
        for audio in items:
            if len(audio) > self.max_samples:
                start = int(rng.integers(0, len(audio) - self.max_samples + 1)) if train else 0
                audio = audio[start:start + self.max_samples]
            if len(audio) < self.min_samples:
                audio = np.pad(audio, (0, self.min_samples - len(audio)))
            crops.append(self.extractor.normalised(audio).astype(np.float32))  # type: ignore[attr-defined]
        longest = max(len(c) for c in crops)
        values = torch.zeros(len(crops), longest)
        mask = torch.zeros(len(crops), longest, dtype=torch.long)
        for row, crop in enumerate(crops):
            values[row, :len(crop)] = torch.from_numpy(crop)
            mask[row, :len(crop)] = 1
        uses_mask = getattr(self.network.config, "feat_extract_norm", "group") == "layer"
        hidden = self.network(values.to(self.device),
                              attention_mask=mask.to(self.device) if uses_mask else None).last_hidden_state
        lengths = torch.tensor([min(self.frames(len(c)), hidden.shape[1]) for c in crops], device=self.device)
        real = (torch.arange(hidden.shape[1], device=self.device)[None] < lengths[:, None]).to(hidden.dtype)
        return (hidden * real.unsqueeze(-1)).sum(dim=1) / lengths[:, None].to(hidden.dtype)

    def encode(self, clips: list[ClipInput], items: list[np.ndarray]) -> list[Features | Exception]:
        return self.extractor.extract_batch(clips)  # the extractor's own path, through the trained network


class FaceEncoder(Encoder):
    def __init__(self, extractor: Extractor, n_classes: int, device: str, options: FinetuneOptions) -> None:
        import torch

        network = extractor.network_on(device)  # type: ignore[attr-defined]
        self.extractor = extractor
        size = int(extractor.config["crop_size"])
        with torch.no_grad():
            width = extractor.frame_vectors(  # type: ignore[attr-defined]
                extractor.pixel_values(np.zeros((1, size, size, 3), np.uint8)).to(device)).shape[-1]
        super().__init__(network, int(width), n_classes, device)

    def item(self, clip: ClipInput, history: list[str]) -> np.ndarray:
        crops = self.extractor.face_crops(clip)  # type: ignore[attr-defined]
        keep = np.unique(np.linspace(0, len(crops) - 1, min(len(crops), TRAIN_FACE_FRAMES)).round().astype(int))
        return crops[keep]

    def release(self, clip: ClipInput) -> None:
        if clip.frames is not None:  # the crops are cached now; `extract` reads them back without the frames
            clip.frames = np.zeros((0, 1, 1, 3), np.uint8)

    def embed(self, items: list[np.ndarray], train: bool, rng: np.random.Generator):
        import torch

        vectors = [self.extractor.frame_vectors(  # type: ignore[attr-defined]
            self.extractor.pixel_values(crops).to(self.device)).mean(dim=0)  # type: ignore[attr-defined]
            for crops in items]
        return torch.stack(vectors)

    def encode(self, clips: list[ClipInput], items: list[np.ndarray]) -> list[Features | Exception]:
        return self.extractor.extract_batch(clips)


def build_encoder(modality: str, extractor: Extractor, n_classes: int, device: str,
                  options: FinetuneOptions) -> Encoder:
    reason = trainable_reason(extractor)
    if reason:
        raise NotTrainable(reason)
    kind = {"text": TextEncoder, "audio": SpeechEncoder, "video": FaceEncoder}[modality]
    return kind(extractor, n_classes, device, options)
