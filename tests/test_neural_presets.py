"""Paper presets as registered data, and the paper-faithful options of the Mocanu and Xie methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods import get_method, method_names
from methods.data import MultimodalData
from methods.neural.av_cross_attention import AVCrossAttention
from methods.neural.embracenet import CrossModalEmbrace
from methods.neural.training import Standardizer

CLASSES = ["neutral", "happy", "angry", "sad"]
POLARITY = {"neutral": "neutral", "happy": "positive", "angry": "negative", "sad": "negative"}
PAPER_METHODS = ["ima-hadamard", "xmt-embracenet", "av-xattn"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy(n: int = 16, dims: dict[str, int] | None = None, lengths: tuple[int, int] = (3, 12),
        seed: int = 0) -> MultimodalData:
    dims = dims or {"audio": 6, "video": 8}
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    sequences = {m: [rng.normal(0, 1, (int(rng.integers(*lengths)), d)).astype(np.float32) + y
                     for y in labels] for m, d in dims.items()}
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=CLASSES, sequences=sequences, labels=labels)


def test_paper_preset_values_match_the_papers_and_every_value_has_a_source() -> None:
    ima, xie, mocanu = (get_method(n).preset("paper") for n in PAPER_METHODS)
    assert ima["lr"] == 1e-4
    assert (xie["optimizer"], xie["lr"], xie["momentum"], xie["face_encoder"], xie["face_pad"],
            xie["face_frames"]) == ("sgd", 1e-3, 0.0, "gru", "zero", 50)
    assert (mocanu["optimizer"], mocanu["lr"], mocanu["batch_size"], mocanu["loss"], mocanu["metric_loss"]) == (
        "adam", 1e-4, 16, "metric", "emotion")
    for values in (ima, xie, mocanu):
        assert set(values.sources) == set(values) and all(values.sources.values())
        assert values.note


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_search_spaces_contain_the_paper_learning_rate(name: str) -> None:
    spec = get_method(name)
    lr, space = spec.preset("paper")["lr"], spec.search_space()["lr"]
    if name == "xmt-embracenet":
        # The paper's plain SGD at 1e-3 is fixed by its preset, not searched: in the benchmark's 30 epochs it
        # stays at chance (docs/methods.md, xmt-embracenet diagnosis), so the default space starts at 1e-2.
        assert lr < space.low and "lr" not in get_method("xmt-embracenet@paper").search_space()
        return
    assert space.low <= lr <= space.high


def test_a_preset_is_fixed_and_only_what_it_leaves_open_is_searched() -> None:
    spec = get_method("av-xattn@paper")
    assert spec.name == "av-xattn@paper"
    assert set(spec.search_space()) == {"dropout"}
    built = spec.build(polarity=POLARITY)
    assert built.params["lr"] == 1e-4 and built.params["loss"] == "metric"
    # The variant's own switch wins over the preset: cross-entropy only, at the paper's other settings.
    ce = get_method("av-xattn-ce@paper")
    assert ce.fixed["loss"] == "ce" and ce.fixed["lr"] == 1e-4
    assert "loss" not in get_method("av-xattn-ce").preset("paper")
    assert get_method("av-xattn").preset("default") == {}
    assert get_method("av-xattn").with_preset("default") is get_method("av-xattn")


def test_unknown_preset_lists_the_methods_presets() -> None:
    with pytest.raises(KeyError, match="presets are: default, paper, sse-ft"):
        get_method("ima-hadamard").preset("no-such-preset")
    assert get_method("early-concat-svm").preset_names() == ["default"]
    with pytest.raises(KeyError, match="has no preset 'paper'"):
        get_method("early-concat-svm@paper")


def test_paper_tables_are_registered_by_name_only() -> None:
    default = set(method_names(default_suite_only=True))
    rows = ["av-xattn-t1-at", "av-xattn-t1-vs", "av-xattn-t1-vs-vc", "av-xattn-t1-vs-vc-vt", "av-xattn-t1-full",
            "av-xattn-triplet", "av-xattn-emotion"]
    for name in rows:
        assert name in method_names() and name not in default
    vs = get_method("av-xattn-t1-vs").build().params
    assert (vs["streams"], vs["use_vs"], vs["use_vc"], vs["use_vt"], vs["metric_loss"]) == (
        "video", True, False, False, "triplet")
    assert get_method("av-xattn-t1-vs-vc").build().params["use_vc"] is True
    assert get_method("av-xattn-t1-at").required_modalities() == ("audio",)
    assert get_method("av-xattn-t1-vs-vc-vt").required_modalities() == ("video",)


def test_plain_triplet_ignores_the_polarity_map_and_emotion_loss_uses_it() -> None:
    data = toy()
    triplet = get_method("av-xattn-triplet").build(polarity=POLARITY, max_epochs=1).fit(data)
    emotion = get_method("av-xattn-emotion").build(polarity=POLARITY, max_epochs=1).fit(data)
    assert torch.equal(triplet._class_polarity, torch.zeros(4, dtype=torch.long))
    assert emotion._class_polarity.tolist() == [0, 1, -1, -1]
    assert "polarity_missing" not in triplet.notes_ and emotion.notes_["polarity_missing"] == 0


def test_metric_loss_alone_trains_the_encoder_by_the_metric_and_the_classifier_by_ce() -> None:
    data = toy()
    method = AVCrossAttention(polarity=POLARITY, loss="metric", max_epochs=1).fit(data)
    batch = method._tensors(data).batch(torch.arange(len(data)), torch.device("cpu"))
    net = method.network_.train()
    net.zero_grad(set_to_none=True)  # drop the last training step's gradients
    head = net.head
    out = net(batch)
    ce = torch.nn.functional.cross_entropy(out["logits"], batch["y"])
    ce.backward()
    assert head.classifier[1].weight.grad.abs().sum() > 0  # CE trains the classifier ...
    assert head.fusion.weight.grad is None  # ... and never reaches the encoder
    net.zero_grad(set_to_none=True)
    method.loss(net(batch), batch).backward()
    assert head.fusion.weight.grad is not None and head.fusion.weight.grad.abs().sum() > 0  # the metric does


@pytest.mark.parametrize("name,modality", [("av-xattn-t1-at", "audio"), ("av-xattn-t1-vs-vc-vt", "video")])
def test_one_stream_rows_train_on_that_modality_alone(name: str, modality: str) -> None:
    data = toy(dims={modality: 6 if modality == "audio" else 8})
    method = get_method(name).build(polarity=POLARITY, max_epochs=2).fit(data)
    assert method.modalities_ == [modality]
    assert method.network_.head.fusion is None
    probabilities = method.predict_proba(data)
    assert probabilities.shape == (16, 4) and np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="needs"):
        get_method(name).build(max_epochs=1).fit(toy(dims={"text": 5}))


def _face_tensors(face_pad: str, lengths: list[int]) -> torch.Tensor:
    rng = np.random.default_rng(0)
    data = MultimodalData(ids=[f"c{i}" for i in range(len(lengths))], classes=CLASSES,
                          sequences={"video": [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths],
                                     "audio": [rng.normal(size=(4, 2)).astype(np.float32) for _ in lengths]},
                          labels=np.zeros(len(lengths), dtype=int))
    method = CrossModalEmbrace(face_pad=face_pad, face_frames=10, max_len=None)
    method.modalities_ = ["audio", "video"]
    method.standardizer_ = Standardizer({"audio": np.zeros(2, np.float32), "video": np.zeros(3, np.float32)},
                                        {"audio": np.ones(2, np.float32), "video": np.ones(3, np.float32)})
    return method._tensors(data)


def test_short_face_sequences_are_zero_padded_and_masked_in_the_paper_setting() -> None:
    zero = _face_tensors("zero", [4, 25])
    assert zero.mask["video"].sum(1).tolist() == [4, 10]  # 4 real frames + masked padding; 25 capped to 10
    assert torch.all(zero.x["video"][0, 4:] == 0.0)
    repeat = _face_tensors("repeat", [4, 25])
    assert repeat.mask["video"].sum(1).tolist() == [10, 10]  # the benchmark default repeats frames
    with pytest.raises(ValueError, match="face_pad"):
        _face_tensors("mirror", [4])


def test_xie_paper_preset_runs_with_the_gru_face_encoder() -> None:
    data = toy(n=8, dims={"audio": 6, "video": 8, "text": 5})
    method = get_method("xmt-embracenet@paper").build(max_epochs=1)
    method.fit(data)
    assert method.network_.face_gru is not None
    assert method.predict_proba(data).shape == (8, 4)


# --- provenance: no value cites a source that does not state it ----------------------------------------------

def _declared_presets() -> list[tuple[str, str, object]]:
    """(method class name, preset name, Preset) for every preset a registered method class declares."""
    from methods.presets import class_presets

    seen, out = set(), []
    for name in method_names():
        cls = get_method(name).cls
        if cls in seen:
            continue
        seen.add(cls)
        out += [(cls.__name__, preset_name, preset) for preset_name, preset in class_presets(cls).items()
                if preset_name != "default"]
    from methods.babaali import PAPER_PRESET

    return [*out, ("babaali", "paper", PAPER_PRESET)]  # the classical paper's inputs and fine-tuning


def _cited_keys(preset) -> list[tuple[str, str]]:
    """(key, source) of every value and input of a preset; inputs are keyed `inputs.<modality>`."""
    return [*preset.sources.items(), *((f"inputs.{m}", i.source) for m, i in (preset.inputs or {}).items())]


def test_every_preset_value_says_paper_section_command_or_not_in_the_paper() -> None:
    from methods.presets import SOURCE_PREFIXES

    presets = _declared_presets()
    assert {(c, p) for c, p, _ in presets} >= {("IMAHadamard", "paper"), ("IMAHadamard", "sse-ft"),
                                                ("AVCrossAttention", "paper"), ("CrossModalEmbrace", "paper")}
    for cls, name, preset in presets:
        for key, source in _cited_keys(preset):
            assert source.startswith(SOURCE_PREFIXES), f"{cls}@{name}.{key}: {source!r}"


def test_no_value_cites_a_source_for_a_key_that_source_does_not_state() -> None:
    """A "paper §x" source is allowed only for a key the paper's text states (methods.presets.STATED), at that
    section; an "SSE-FT command" source only in the sse-ft preset, for a key of its command."""
    from methods.presets import COMMAND_SOURCE, PAPER_SOURCE, STATED

    for cls, name, preset in _declared_presets():
        assert preset.paper in STATED, f"{cls}@{name}: preset.paper {preset.paper!r} is not a known source"
        stated = STATED[preset.paper]
        for key, source in _cited_keys(preset):
            where = f"{cls}@{name}.{key}: {source!r}"
            if source.startswith(PAPER_SOURCE):
                assert preset.paper != "sse-ft" and key in stated, f"{where} cites a paper that does not state it"
                assert source.startswith(f"paper {stated[key]}"), f"{where}: the text states it in {stated[key]}"
            if source.startswith(COMMAND_SOURCE):
                assert preset.paper == "sse-ft" and key in stated, f"{where} is not a key of SSE-FT's command"


def test_paper_presets_state_every_shared_training_option() -> None:
    """The shared defaults (clip 1.0, weight decay 1e-4, batch 32, stop on UAR...) never leak into a paper
    preset silently: each is a value of the preset, with its source (possibly "inherited")."""
    from methods.presets import TRAINING_KEYS

    for cls, name, preset in _declared_presets():
        if cls == "babaali":  # no neural training loop: its fusion is an SVM
            continue
        missing = [k for k in TRAINING_KEYS if k not in preset.values]
        assert not missing, f"{cls}@{name} leaves {missing} to the harness defaults without saying so"


def test_the_attributions_the_review_found_wrong_are_fixed() -> None:
    from methods.neural.ima_hadamard import IMAHadamard
    from methods.presets import HARNESS_CHOICE

    ima, sse = IMAHadamard.presets["paper"], IMAHadamard.presets["sse-ft"]
    assert ima.sources["lr"].startswith(HARNESS_CHOICE)  # Chaudhari states no training values
    assert (ima.values["max_len_audio"], ima.values["max_len_video"], ima.values["max_len_text"]) == (935, 300, 512)
    assert all(ima.sources[f"max_len_{m}"].startswith("paper §4.1") for m in ("audio", "video", "text"))
    mocanu = AVCrossAttention.presets["paper"]
    assert (mocanu.values["m"], mocanu.values["m_prime"]) == (512, 512)
    # m' = 512 is the paper's (§3.3); m = 1024 is the paper's backbone's width (§3.1), not claimed for 512
    assert mocanu.sources["m"].startswith(HARNESS_CHOICE) and "1024 (§3.1)" in mocanu.sources["m"]
    assert mocanu.sources["m_prime"].startswith("paper §3.3")
    assert (mocanu.values["select_by"], mocanu.values["grad_clip"]) == ("accuracy", 0.0)
    assert (sse.values["grad_clip"], sse.values["select_by"]) == (0.0, "loss")
    assert CrossModalEmbrace.presets["paper"].values["d_model"] != CrossModalEmbrace.defaults["d_model"]


PAPERS = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "papers"
PAPER_TEXTS = {"mocanu2023": "mocanu2023-av-cross-attention.txt", "xie2021": "xie2021-xmt-embracenet.txt",
               "chaudhari2023": "chaudhari2023-ima-hadamard.txt", "babaali2024": "babaali-pretrained-transformers.txt"}


@pytest.mark.skipif(not PAPERS.is_dir(), reason=f"{PAPERS} (the papers' full texts) is absent")
def test_a_value_attributed_to_a_paper_is_printed_in_its_text() -> None:
    """Every number a preset attributes to "paper §x" occurs in that paper's text (1e-4, 0.001, 935, 50...)."""
    for cls, name, preset in _declared_presets():
        if preset.paper not in PAPER_TEXTS:
            continue
        text = (PAPERS / PAPER_TEXTS[preset.paper]).read_text().lower()
        for key, value in preset.values.items():
            if not preset.sources[key].startswith("paper §") or isinstance(value, bool):
                continue
            printed = {str(value).lower(), f"{value:g}" if isinstance(value, int | float) else str(value).lower()}
            if isinstance(value, float) and value < 0.01:
                printed |= {f"{value:.0e}".replace("e-0", "e-"), f"{value:.3f}"}
            assert any(p in text for p in printed), f"{cls}@{name}.{key} = {value!r} is not in the paper's text"


def test_the_ima_table_1_lengths_bound_each_modality() -> None:
    """max_len_<modality> bounds that modality's sequence (CLS kept), the others keep max_len."""
    data = toy(8, dims={"audio": 4, "video": 4, "text": 4}, lengths=(20, 30))
    method = get_method("ima-hadamard").build(max_len=None, max_len_audio=5, max_len_text=7, max_epochs=1)
    method.fit(data, data)
    tensors = method._tensors(data)
    assert tensors.x["audio"].shape[1] == 5 and tensors.x["text"].shape[1] == 7
    assert tensors.x["video"].shape[1] >= 20
