"""The extractor contract, over every registered name (as tests/test_method_contract.py does for methods).

Each extractor must: build from a tiny, download-free configuration; refuse an unknown option; give the same
cache key for the same options and another for another corpus; declare its output and the corpora its weights
saw (`trained_on`); and turn one tiny clip into `Features` ([T, D] and [D], finite) on the CPU. A new extractor
fails `test_every_registered_extractor_has_a_tiny_configuration` until it gets a line in `TINY` below.
Registration is by file: every module of `harness.features.extractors` is imported on the first lookup
(`test_a_module_dropped_into_the_package_is_registered`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from harness.features.base import ClipInput, ExtractorConfigError, Features, build_extractor, extractor_names

PORTRAIT = "sample_data/grace_hopper.jpg"  # a real face that ships with matplotlib (MediaPipe needs one)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, str]:
    """Seeded random-init checkpoints in the real formats, written locally (nothing is downloaded)."""
    import torch
    from transformers import ViTConfig, ViTModel

    from harness.features.extractors.wav2vec1 import Wav2Vec1Settings, build_network
    from harness.features.weights import random_init

    root = tmp_path_factory.mktemp("weights")
    paths = {m: str(random_init.speech_checkpoint(m, root / m)) for m in random_init.SPEECH_MODELS}
    paths["whisper-encoder"] = str(random_init.whisper_checkpoint(root / "whisper"))
    paths["text"] = str(random_init.text_checkpoint(root / "text"))
    ViTModel(ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64)).save_pretrained(root / "vit")
    paths["vit"] = str(root / "vit")
    tiny = Wav2Vec1Settings(conv_feature_layers=((16, 10, 5), (16, 8, 4), (16, 4, 2), (16, 1, 1)),
                            conv_aggregator_layers=((16, 2, 1), (16, 3, 1), (16, 4, 1)), prediction_steps=3)
    args = {key: (str(list(value)) if key.startswith("conv_") else value) for key, value in vars(tiny).items()}
    torch.save({"args": argparse.Namespace(arch="wav2vec", **args), "model": build_network(tiny).state_dict()},
               root / "wav2vec1.pt")
    paths["wav2vec1"] = str(root / "wav2vec1.pt")
    return paths


FACE = {"detector": "full-frame"}
TINY = {  # name -> its tiny, download-free options (from the module fixture's checkpoints)
    "egemaps": lambda w: {},
    "compare": lambda w: {},
    "logmel": lambda w: {"n_mels": 16},
    "spectrogram-snippets": lambda w: {"weights": "random", "image_size": 32},
    "wav2vec2": lambda w: {"checkpoint": w["wav2vec2"]},
    "hubert": lambda w: {"checkpoint": w["hubert"]},
    "wavlm": lambda w: {"checkpoint": w["wavlm"]},
    "data2vec-audio": lambda w: {"checkpoint": w["data2vec-audio"]},
    "whisper-encoder": lambda w: {"checkpoint": w["whisper-encoder"]},
    "wav2vec1": lambda w: {"checkpoint": w["wav2vec1"]},
    "frame-grid": lambda w: {"grid": 4},
    "mtcnn-landmarks": lambda w: FACE,
    "face-expression": lambda w: FACE,
    "face-embed": lambda w: {**FACE, "checkpoint": w["vit"], "image_size": 32},
    "face-landmarks": lambda w: {},
    "video-snippets": lambda w: {**FACE, "weights": "random", "image_size": 32, "snippet_frames": 4},
    "minilm": lambda w: {},
    "roberta": lambda w: {"checkpoint": w["text"]},
    "bert": lambda w: {"checkpoint": w["text"]},
    "text-transformer": lambda w: {"checkpoint": w["text"]},
    "corrupted": lambda w: {"base": "logmel", "base_config": {"n_mels": 16}, "corruption": "white-noise",
                            "level": 10.0},
}


def tiny_clip(extractor) -> ClipInput:
    """One short clip with what the extractor reads: 1 s of a tone, 8 frames of a real portrait, a sentence."""
    import matplotlib
    from PIL import Image

    inputs = set(extractor.inputs()) | {extractor.modality}
    clip = ClipInput("tiny")
    if inputs & {"audio", "audio_if_no_text"}:
        t = np.arange(extractor.sample_rate) / extractor.sample_rate
        clip.audio = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    if "video" in inputs:
        face = Image.open(Path(matplotlib.get_data_path()) / PORTRAIT).convert("RGB").resize((160, 192))
        clip.frames, clip.fps = np.stack([np.asarray(face)] * 8), 8.0
    if "text" in inputs:
        clip.text = "i am glad the train is on time today"
    return clip


def test_every_registered_extractor_has_a_tiny_configuration() -> None:
    assert sorted(TINY) == extractor_names()


DROPPED = '''
from harness.features.base import ClipInput, Extractor, Features, register_extractor


@register_extractor
class Dropped(Extractor):
    name = "dropped-in"
    modality = "audio"
    description = "a test extractor that no list names"
    output = "sequence [T, 1], pooled [1]"
    trained_on = ()

    def extract(self, clip: ClipInput) -> Features:
        return Features(sequence=clip.audio[:, None], pooled=clip.audio[:1])
'''


def test_a_module_dropped_into_the_package_is_registered(tmp_path, monkeypatch) -> None:
    """A new file in the extractors package is found on the registry's first lookup, with no list edited: the
    package's search path gets a second folder holding one new module (and a "_" helper, which is skipped), and
    the registry is made to load again."""
    import sys

    from harness.features import base, extractors
    from harness.registry import package_modules

    module = "harness.features.extractors.dropped_in"
    (tmp_path / "dropped_in.py").write_text(DROPPED)
    (tmp_path / "_helper.py").write_text("raise AssertionError('a module starting with _ is not imported')\n")
    shipped = package_modules("harness.features.extractors")
    assert "harness.features.extractors.audio" in shipped and module not in shipped
    monkeypatch.setattr(extractors, "__path__", [*extractors.__path__, str(tmp_path)])
    monkeypatch.setattr(base._EXTRACTORS, "items", dict(base._EXTRACTORS.items))
    monkeypatch.setattr(base._EXTRACTORS, "_loaded", False)
    monkeypatch.delitem(sys.modules, module, raising=False)
    try:
        assert "dropped-in" in extractor_names()
        assert package_modules("harness.features.extractors") == sorted([*shipped, module])
        features = build_extractor("dropped-in").extract(ClipInput("c", audio=np.ones(4, np.float32)))
        assert features.sequence.shape == (4, 1)
    finally:
        sys.modules.pop(module, None)


@pytest.mark.parametrize("name", extractor_names())
def test_builds_declares_and_refuses_unknown_options(name, weights) -> None:
    extractor = build_extractor(name, TINY[name](weights))
    assert extractor.modality in ("audio", "video", "text")
    assert extractor.description and extractor.output, f"{name}: declare description and output"
    declared = extractor.training_corpora()
    assert declared is None or isinstance(declared, tuple)
    with pytest.raises(ExtractorConfigError, match="unknown options"):
        build_extractor(name, {**TINY[name](weights), "no_such_option": 1})


@pytest.mark.parametrize("name", extractor_names())
def test_cache_key_is_stable_and_names_the_corpus(name, weights) -> None:
    first, again = (build_extractor(name, TINY[name](weights)) for _ in range(2))
    assert first.cache_key("corpus-a") == again.cache_key("corpus-a")
    assert first.cache_key("corpus-a") != first.cache_key("corpus-b")


@pytest.mark.parametrize("name", extractor_names())
def test_one_tiny_clip_on_the_cpu(name, weights, tmp_path, monkeypatch) -> None:
    """The CPU fallback: with no GPU visible the extractor still runs (device() says "cpu")."""
    import torch

    from harness.features.store import FeatureStore

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    extractor = build_extractor(name, TINY[name](weights))
    assert extractor.device() == "cpu"
    extractor.cache = FeatureStore(str(tmp_path / "store"))
    if name == "face-landmarks":
        pytest.importorskip("mediapipe", reason="face-landmarks needs mediapipe==0.10.14 (installed with --no-deps)")
    extractor.setup()
    features = extractor.extract(tiny_clip(extractor))
    assert isinstance(features, Features)  # validated there: [T, D] and [D], finite
    assert len(features.sequence) >= 1 and features.pooled.size >= 1
