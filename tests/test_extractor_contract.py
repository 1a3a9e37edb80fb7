"""The extractor contract, over every registered name (as tests/test_method_contract.py does for methods).

Each extractor must: build from a tiny, download-free configuration; refuse an unknown option; give the same
cache key for the same options and another for another corpus; declare its output and the corpora its weights
saw (`trained_on`); and turn one tiny clip into `Features` ([T, D] and [D], finite) on the CPU. A new extractor
fails `test_every_registered_extractor_has_a_tiny_configuration` until it gets a line in `TINY` below.
Registration is by file: every module of `harness.features.extractors` is imported on the first lookup
(`test_a_module_dropped_into_the_package_is_registered`). Options are typed data (an `ExtractorOptions` model per
extractor): every ill-typed or out-of-range value is a one-line error derived from the declared type, and the
declared output (`output_dims()`) is what one clip's features measure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from harness.features.asr import AUDIO_IF_NO_TEXT
from harness.features.base import (
    ClipInput,
    ExtractorConfigError,
    ExtractorOptions,
    Features,
    build_extractor,
    extractor_names,
    get_extractor,
    option_type,
)

REPO = Path(__file__).resolve().parents[1]
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
    if inputs & {"audio", AUDIO_IF_NO_TEXT}:
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


def docs_example() -> str:
    """The example extractor of docs/features.md ("Write an extractor"), as a module's source."""
    import textwrap

    text = (REPO / "docs" / "features.md").read_text()
    section = text[text.index("## Write an extractor"):]
    block = section[section.index("```python\n") + len("```python\n"):]
    return textwrap.dedent(block[:block.index("```")])


def test_a_module_dropped_into_the_package_is_registered(tmp_path, monkeypatch) -> None:
    """A new file in the extractors package is found on the registry's first lookup, with no list edited: the
    package's search path gets a second folder holding one new module (and a "_" helper, which is skipped), and
    the registry is made to load again."""
    import sys

    from harness.features import base, extractors
    from harness.registry import package_modules

    module = "harness.features.extractors.dropped_in"
    (tmp_path / "dropped_in.py").write_text(docs_example())
    (tmp_path / "_helper.py").write_text("raise AssertionError('a module starting with _ is not imported')\n")
    shipped = package_modules("harness.features.extractors")
    assert "harness.features.extractors.audio" in shipped and module not in shipped
    monkeypatch.setattr(extractors, "__path__", [*extractors.__path__, str(tmp_path)])
    monkeypatch.setattr(base._EXTRACTORS, "items", dict(base._EXTRACTORS.items))
    monkeypatch.setattr(base._EXTRACTORS, "_loaded", False)
    monkeypatch.delitem(sys.modules, module, raising=False)
    try:
        assert "band-energy" in extractor_names()
        assert package_modules("harness.features.extractors") == sorted([*shipped, module])
        extractor = build_extractor("band-energy", {"n_bands": 5})
        features = extractor.extract(tiny_clip(extractor))
        assert (features.sequence.shape[1], features.pooled.shape[0]) == extractor.output_dims()[:2] == (5, 5)
        with pytest.raises(ExtractorConfigError, match="option scale must be one of 'log', 'linear', got 'db'"):
            build_extractor("band-energy", {"scale": "db"})
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
def test_options_are_typed_data(name) -> None:
    """Each option has a declared type (never Any) and a default; `defaults` is read off the model, not kept twice."""
    from typing import Any

    cls = get_extractor(name)
    assert issubclass(cls.Options, ExtractorOptions) and cls.Options.model_fields, f"{name}: declare Options"
    assert cls.defaults == cls.Options().model_dump()
    untyped = [key for key, info in cls.Options.model_fields.items() if info.annotation in (Any, object, None)]
    assert untyped == [], f"{name}: give these options a type: {untyped}"


@pytest.mark.parametrize("name", extractor_names())
def test_ill_typed_and_out_of_range_options_are_one_line_errors(name, weights) -> None:
    """For every option, a value of the wrong kind (an int for a string, a string for anything else: a number, a
    choice, a flag, a list) and, for a size or count, 0, is refused in one line that names the extractor, the
    option and what it takes, as the declared type says it (so the message cannot drift from the check)."""
    cls, tiny = get_extractor(name), TINY[name](weights)
    for key, info in cls.Options.model_fields.items():
        expected = option_type(cls.Options, key)
        bad_values = [3 if info.annotation is str else "no-such-value"]
        if expected.startswith("an integer >= 1"):
            bad_values.append(0)
        for bad in bad_values:
            with pytest.raises(ExtractorConfigError) as caught:
                build_extractor(name, {**tiny, key: bad})
            message = str(caught.value)
            assert "\n" not in message
            assert message.startswith(f"extractor {name!r}: option {key} must be {expected}, got {bad!r}"), message


@pytest.mark.parametrize("name", extractor_names())
def test_cache_key_is_stable_and_names_the_corpus(name, weights) -> None:
    first, again = (build_extractor(name, TINY[name](weights)) for _ in range(2))
    assert first.cache_key("corpus-a") == again.cache_key("corpus-a")
    assert first.cache_key("corpus-a") != first.cache_key("corpus-b")


@pytest.mark.parametrize("name", extractor_names())
def test_equivalent_spellings_are_one_cache_key(name, weights) -> None:
    """Options left out, the same values spelled out, and a whole number written as an int for a number option
    (`win_ms=25` for 25.0) are the same options, so the same stored features."""
    tiny = TINY[name](weights)
    spelled = {**get_extractor(name).defaults, **tiny}
    as_ints = {k: int(v) if type(v) is float and v.is_integer() else v for k, v in spelled.items()}
    keys = {build_extractor(name, options).cache_key("corpus") for options in (tiny, spelled, as_ints)}
    assert len(keys) == 1


# Keys computed by the code before options were typed (at commit 837a607), for extractors whose key depends on
# options only (no weight files): stored features stay valid across the change. Change a value only to invalidate
# stored features on purpose (then bump the extractor's `version` instead).
RECORDED_KEYS = [
    ("logmel", {}, "ff94fe685182700c"),
    ("logmel", {"n_mels": 16}, "9386210a17013575"),
    ("frame-grid", {}, "ed193637b9849800"),
    ("frame-grid", {"grid": 4}, "9af073ca6648d329"),
    ("mtcnn-landmarks", {"detector": "full-frame"}, "c26608969efb64eb"),
    ("spectrogram-snippets", {"encoder": "none"}, "8b6d3fd629636277"),
    ("video-snippets", {"detector": "full-frame", "weights": "random"}, "2186b74354adaff7"),
    ("corrupted", {"base": "logmel", "corruption": "white-noise", "level": 10.0}, "6d652683b344a32d"),
]


@pytest.mark.parametrize(("name", "options", "key"), RECORDED_KEYS, ids=lambda v: v if isinstance(v, str) else "")
def test_cache_keys_did_not_change_with_typed_options(name, options, key) -> None:
    assert build_extractor(name, options).cache_key("fp") == key


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
    declared = extractor.output_dims()  # after setup(), widths that come from the weights are known too
    assert (declared.sequence, declared.pooled) == (features.sequence.shape[1], features.pooled.shape[0]), name
    assert declared.rows in (None, len(features.sequence)), name
    assert len(features.sequence) >= 1 and features.pooled.size >= 1


def test_the_opensmile_choices_are_the_installed_packages() -> None:
    """`feature_set` is a Literal written out in the code (building an extractor must not import openSMILE); it
    must list exactly the feature sets the installed openSMILE has."""
    from typing import get_args

    import opensmile

    from harness.features.extractors.audio import FeatureSet

    assert list(get_args(FeatureSet)) == list(opensmile.FeatureSet.__members__)
