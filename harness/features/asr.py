"""Transcripts for the text extractors: the manifest's, or Whisper ASR from a local checkpoint.

Some corpora ship transcripts (IEMOCAP, MELD), others do not (RAVDESS, CREMA-D, EmoDB read fixed sentences but
the manifests may not carry them). The text extractors take `transcript`:

* "manifest" (default): the manifest's `text` column; a clip without one fails at decode.
* "asr": always Whisper's transcript of the clip's audio (a video's audio track works), even where the manifest
  has text, e.g. to measure text features under realistic ASR errors.
* "auto": the manifest's text where it is non-blank, ASR for the other clips. Which source a clip used is not
  stored with its features: it follows from the manifest (blank text = ASR), whose transcripts are part of the
  cache key.

The ASR checkpoint (`asr_checkpoint`: a local directory or a hub name already in the HF cache) is never
downloaded, and its files are part of the cache key. Decoding is greedy; audio is cut into 30 s windows
(Whisper's fixed input length), transcribed as one batch and joined, so a word straddling a window boundary
may be garbled: fine for emotion corpora, whose clips are mostly shorter than 30 s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.features.base import ExtractorConfigError, MissingWeightsError, option_hint
from harness.features.weights.hf import checkpoint_identity, resolve_checkpoint

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 30
# A decode request (in `Extractor.inputs()`): the clip's audio, but only where the manifest has no transcript.
AUDIO_IF_NO_TEXT = "audio-if-no-text"


def validate_options(name: str, config: dict[str, Any]) -> None:
    """What the option types (`extractors.text.TranscriptOptions`) cannot say: ASR needs a checkpoint."""
    if config["transcript"] != "manifest" and not config["asr_checkpoint"]:
        raise ExtractorConfigError(f"{name}: transcript={config['transcript']!r} needs "
                                   "asr_checkpoint=<local Whisper directory or cached hub name>")


def decode_inputs(transcript: str) -> tuple[str, ...]:
    """What the decode stage must provide for a transcript source (see `harness.features.runner.decode_clip`)."""
    return {"manifest": ("text",), "asr": ("audio",), "auto": ("text", AUDIO_IF_NO_TEXT)}[transcript]


def asr_identity(config: dict[str, Any]) -> str:
    """The ASR checkpoint's part of the cache key ('' when transcripts come from the manifest only)."""
    return "" if config["transcript"] == "manifest" else checkpoint_identity(config["asr_checkpoint"])


def resolve_asr_checkpoint(checkpoint: str) -> str:
    """The checkpoint's local directory, or MissingWeightsError naming it and the option to set."""
    try:
        return resolve_checkpoint(checkpoint)
    except MissingWeightsError:
        raise MissingWeightsError(
            f"ASR checkpoint {checkpoint!r} is not available offline. Download it on a machine with internet: "
            f"`huggingface-cli download {checkpoint}` (then copy ~/.cache/huggingface), or "
            f"{option_hint('asr_checkpoint', '/path/to/' + checkpoint.rsplit('/', 1)[-1])}") from None


class WhisperTranscriber:
    """Greedy Whisper speech recognition of 16 kHz mono audio; the model is loaded once, at construction."""

    def __init__(self, checkpoint: str, language: str = "", device: str = "cpu") -> None:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        path = resolve_asr_checkpoint(checkpoint)
        try:
            self._processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, TypeError) as error:  # e.g. an encoder-only checkpoint without a tokenizer
            raise MissingWeightsError(
                f"ASR checkpoint {checkpoint!r} ({path}) has no usable Whisper processor ({error}): speech "
                "recognition needs the tokenizer and preprocessor files of a full Whisper checkpoint "
                "(tokenizer.json or vocab.json + merges.txt, preprocessor_config.json)") from None
        self._model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True).eval().to(device)
        self._device = device
        # language/task are only accepted by multilingual checkpoints; English-only ones (*.en) transcribe English
        self._options: dict[str, str] = {}
        if getattr(self._model.generation_config, "is_multilingual", False):
            self._options["task"] = "transcribe"  # never translate
            if language:
                self._options["language"] = language
        elif language:
            raise ExtractorConfigError(f"ASR checkpoint {checkpoint!r} is English-only: asr_language="
                                       f"{language!r} needs a multilingual Whisper checkpoint")

    def __call__(self, audio: np.ndarray) -> str:
        """The transcript of `audio` (16 kHz): 30 s windows transcribed as one batch, joined by spaces."""
        import torch

        window = WINDOW_SECONDS * SAMPLE_RATE
        windows = [audio[start:start + window] for start in range(0, len(audio), window)]
        features = self._processor.feature_extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.no_grad():
            tokens = self._model.generate(features.input_features.to(self._device), do_sample=False, num_beams=1,
                                          **self._options)
        texts = self._processor.batch_decode(tokens, skip_special_tokens=True)
        return " ".join(text.strip() for text in texts if text.strip())
