"""Whisper ASR transcripts for the text extractors, with a tiny random-init Whisper built offline.

The random weights transcribe every clip as gibberish bytes: the tests check the plumbing (loading, windowing,
determinism, decode requests, cache keys, errors), never what the transcripts say.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from harness.datasets.synthetic import SyntheticConfig, generate, scan
from harness.features.asr import SAMPLE_RATE, WhisperTranscriber
from harness.features.base import ExtractorConfigError, MissingWeightsError, build_extractor
from harness.features.runner import _media_rows, decode_clip, extract
from harness.features.store import FeatureStore
from harness.features.weights import random_init
from harness.manifest import Manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Manifest:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=2, clips_per_emotion=1))
    return scan(root)


@pytest.fixture(scope="module")
def rows(manifest: Manifest) -> list[dict]:
    return _media_rows(manifest, set(manifest.ids)).to_dict("records")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {"whisper": str(random_init.whisper_asr_checkpoint(root / "whisper-asr")),
            "bert": str(random_init.text_checkpoint(root / "bert"))}


@pytest.fixture(scope="module")
def transcriber(checkpoints) -> WhisperTranscriber:
    return WhisperTranscriber(checkpoints["whisper"])


def bert(checkpoints: dict[str, str], **options) -> dict:
    return {"checkpoint": checkpoints["bert"], "asr_checkpoint": checkpoints["whisper"], **options}


def run(name: str, config: dict, row: dict):
    extractor = build_extractor(name, config)
    extractor.setup()
    return extractor.extract(decode_clip(row, extractor))


def test_transcriber_is_deterministic_and_windows_long_audio(transcriber, checkpoints) -> None:
    audio = np.random.default_rng(0).normal(0, 0.1, 31 * SAMPLE_RATE).astype(np.float32)
    text = transcriber(audio[:SAMPLE_RATE * 2])
    assert isinstance(text, str) and text.strip()
    assert transcriber(audio[:SAMPLE_RATE * 2]) == text
    assert WhisperTranscriber(checkpoints["whisper"])(audio[:SAMPLE_RATE * 2]) == text  # fresh load, same text
    pieces = (audio[:30 * SAMPLE_RATE], audio[30 * SAMPLE_RATE:])
    assert transcriber(audio) == " ".join(transcriber(piece) for piece in pieces)  # 30 s windows, joined
    assert WhisperTranscriber(checkpoints["whisper"], language="de")(audio[:SAMPLE_RATE * 2]).strip()


def test_asr_sourced_text_features(rows, checkpoints) -> None:
    extractor = build_extractor("bert", bert(checkpoints, transcript="asr"))
    assert extractor.inputs() == ("audio",)
    clip = decode_clip(rows[0], extractor)
    assert clip.text is None and clip.audio is not None  # the manifest transcript is not even read
    extractor.setup()
    features = extractor.extract(clip)
    assert features.sequence.shape[1] == 32 and features.sequence.shape[0] >= 3 and features.pooled.shape == (32,)
    np.testing.assert_allclose(run("bert", bert(checkpoints, transcript="asr"), rows[0]).pooled, features.pooled)
    manifest_text = run("bert", bert(checkpoints), rows[0])
    assert not np.allclose(manifest_text.pooled, features.pooled)  # gibberish ASR text, not the manifest's
    assert extractor.transcript(dataclasses.replace(clip, text="ignored")) == extractor.transcript(clip)
    minilm = build_extractor("minilm", {"transcript": "asr", "asr_checkpoint": checkpoints["whisper"]})
    assert minilm.inputs() == ("audio",) and "|asr=" in minilm.weights_identity()  # same base class as bert


def test_auto_uses_the_manifest_text_where_present(rows, checkpoints) -> None:
    auto = build_extractor("bert", bert(checkpoints, transcript="auto"))
    with_text = decode_clip(rows[0], auto)
    assert with_text.text == rows[0]["text"] and with_text.audio is None  # no audio decoded needlessly
    without = decode_clip({**rows[0], "text": ""}, auto)
    assert without.audio is not None
    auto.setup()
    np.testing.assert_allclose(auto.extract(with_text).pooled, run("bert", bert(checkpoints), rows[0]).pooled)
    np.testing.assert_allclose(auto.extract(without).pooled,
                               run("bert", bert(checkpoints, transcript="asr"), rows[0]).pooled)


def test_auto_end_to_end_through_the_runner(manifest, checkpoints, tmp_path: Path) -> None:
    blanked = manifest.table.copy()
    blanked.loc[blanked.index[::2], "text"] = ""
    partial = dataclasses.replace(manifest, table=blanked)
    store = FeatureStore(str(tmp_path / "store"))
    result = extract(partial, "bert", store, bert(checkpoints, transcript="auto"), executor="local",
                     verbose=False)
    assert result.n_failed == 0 and result.n_clips == len(partial)
    plain = extract(partial, "bert", store, bert(checkpoints), executor="local", verbose=False)
    assert plain.key != result.key and plain.n_failed == len(partial) // 2 + len(partial) % 2  # no transcript


def test_missing_or_unusable_asr_checkpoint_is_a_clear_error(checkpoints, tmp_path: Path) -> None:
    missing = str(tmp_path / "whisper-small")
    with pytest.raises(MissingWeightsError, match=r"ASR checkpoint .*whisper-small.*asr_checkpoint="):
        build_extractor("bert", bert(checkpoints, transcript="asr", asr_checkpoint=missing)).check_weights()
    build_extractor("bert", bert(checkpoints, asr_checkpoint=missing)).check_weights()  # manifest: not needed
    encoder_only = str(random_init.whisper_checkpoint(tmp_path / "encoder-only"))
    with pytest.raises(MissingWeightsError, match="encoder-only.*tokenizer"):
        WhisperTranscriber(encoder_only)


def test_options_are_validated_and_keyed(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(ExtractorConfigError, match="transcript must be one of"):
        build_extractor("minilm", {"transcript": "whisper"})
    with pytest.raises(ExtractorConfigError, match="needs asr_checkpoint"):
        build_extractor("roberta", {"transcript": "auto", "asr_checkpoint": ""})
    with pytest.raises(ExtractorConfigError, match="asr_language"):
        build_extractor("bert", {"asr_language": 5})
    other = str(random_init.whisper_asr_checkpoint(tmp_path / "other", seed=1))
    keys = {build_extractor("bert", bert(checkpoints, **options)).cache_key("m") for options in (
        {}, {"transcript": "asr"}, {"transcript": "auto"}, {"transcript": "asr", "asr_checkpoint": other},
        {"transcript": "asr", "asr_language": "de"})}
    assert len(keys) == 5
    manifest_only = build_extractor("bert", bert(checkpoints))
    assert "asr" not in manifest_only.weights_identity()
    with_asr = build_extractor("bert", bert(checkpoints, transcript="asr"))
    assert str(Path(checkpoints["whisper"]).resolve()) in with_asr.weights_identity()
