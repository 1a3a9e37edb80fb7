"""Behaviour of the neural fusion methods and their shared training loop, on small toy data."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from methods import get_method, method_names
from methods.data import MultimodalData
from methods.neural.av_cross_attention import AVCrossAttention, CrossAttentionFusion
from methods.neural.embracenet import CrossModalEmbrace, EmbraceNet
from methods.neural.ima_hadamard import IMAHadamard
from methods.neural.training import Standardizer, tensorize
from methods.neural.unimodal import UnimodalTransformer

DIMS = {"audio": 6, "video": 8, "text": 5}
CLASSES = ["neutral", "happy", "angry", "sad"]
POLARITY = {"neutral": "neutral", "happy": "positive", "angry": "negative", "sad": "negative"}
FAST = {"max_epochs": 2, "patience": 2}
NEURAL = ["ima-hadamard", "ima-hadamard-eq2", "ima-hadamard-av", "xmt-embracenet", "xmt-embracenet-gru",
          "xmt-embracenet-sampled", "av-xattn", "av-xattn-no-vs", "av-xattn-no-vc", "av-xattn-no-vt",
          "av-xattn-no-at", "av-xattn-concat", "av-xattn-ce", "av-xattn-triplet", "neural-audio",
          "neural-video", "neural-text"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_data(n: int = 24, seed: int = 0, signal: float = 2.0, random_labels: bool = False,
             modalities: tuple[str, ...] = ("audio", "video", "text")) -> MultimodalData:
    """Variable-length sequences whose frames carry the class (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n) if random_labels else np.arange(n) % len(CLASSES)
    sequences = {}
    for mod in modalities:
        centres = rng.normal(0, 1, (len(CLASSES), DIMS[mod]))
        sequences[mod] = [(signal * centres[y] + rng.normal(0, 1, (int(rng.integers(3, 12)), DIMS[mod])))
                          .astype(np.float32) for y in labels]
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=CLASSES, sequences=sequences, labels=labels)


def build(name: str, **params) -> object:
    spec = get_method(name)
    extra = {"polarity": POLARITY} if "polarity" in inspect.signature(spec.cls.__init__).parameters else {}
    return spec.build(**extra, **params)


def batch_of(method, data: MultimodalData) -> dict:
    tensors = tensorize(data, method.modalities_, method.standardizer_, method.params["max_len"],
                        method.fixed_lengths())
    return tensors.batch(torch.arange(len(data)), torch.device("cpu"))


def test_all_variants_are_registered_with_small_search_spaces() -> None:
    names = method_names()
    for name in NEURAL:
        assert name in names
        spec = get_method(name)
        space = spec.search_space()
        assert 1 <= len(space) <= 3
        assert set(space) <= set(spec.build().params)


def test_default_suite_has_the_three_methods_and_the_paper_ablations() -> None:
    default = set(method_names(default_suite_only=True))
    assert {"ima-hadamard", "ima-hadamard-eq2", "xmt-embracenet", "av-xattn", "av-xattn-no-vs", "av-xattn-no-vc",
            "av-xattn-no-vt", "av-xattn-no-at", "av-xattn-concat", "neural-audio", "neural-video",
            "neural-text"} <= default
    assert get_method("av-xattn-no-vc").build().params["use_vc"] is False
    assert get_method("av-xattn-concat").build().params["fusion"] == "concat"


@pytest.mark.parametrize("name", ["ima-hadamard", "xmt-embracenet", "av-xattn"])
def test_output_shapes_two_and_three_modalities(name: str) -> None:
    mod_sets = [("audio", "video")] if name == "av-xattn" else [("audio", "video", "text"), ("audio", "text"),
                                                                   ("video", "text")]
    for modalities in mod_sets:
        data = toy_data(modalities=modalities)
        method = build(name, **FAST).fit(data.subset(range(16)), data.subset(range(16, 24)))
        assert method.modalities_ == list(modalities)
        proba = method.predict_proba(data)
        assert proba.shape == (24, 4)
        assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        out = method.network_(batch_of(method, data))
        assert out["logits"].shape == (24, 4)


@pytest.mark.parametrize("name", ["ima-hadamard", "ima-hadamard-eq2", "xmt-embracenet", "xmt-embracenet-gru",
                                  "av-xattn", "av-xattn-concat", "neural-audio"])
def test_appending_padding_leaves_predictions_unchanged(name: str) -> None:
    data = toy_data()
    method = build(name, **FAST).fit(data)
    method.network_.eval()
    batch = batch_of(method, data)
    with torch.no_grad():
        reference = method.network_(batch)["logits"]
        padded = {**batch, "x": {}, "mask": {}}
        for mod, x in batch["x"].items():
            extra = 7
            garbage = torch.randn(x.shape[0], extra, x.shape[2]) * 100.0
            padded["x"][mod] = torch.cat([x, garbage], dim=1)
            padded["mask"][mod] = torch.cat([batch["mask"][mod], torch.zeros(x.shape[0], extra, dtype=torch.bool)],
                                            dim=1)
        assert torch.allclose(method.network_(padded)["logits"], reference, atol=1e-5)
    # Through the public API: a longer clip in the same call widens everyone's padding.
    longer = toy_data(n=1, seed=5)
    longer.sequences = {m: [np.concatenate([s[0]] * 6)] for m, s in longer.sequences.items()}
    both = MultimodalData(ids=data.ids + ["long"], classes=CLASSES,
                          sequences={m: data.sequences[m] + longer.sequences[m] for m in data.sequences},
                          labels=np.concatenate([data.labels, longer.labels]))
    assert np.allclose(method.predict_proba(both)[:24], method.predict_proba(data), atol=1e-5)


def test_embracenet_ignores_an_unavailable_modality() -> None:
    data = toy_data()
    method = build("xmt-embracenet", **FAST).fit(data)
    network = method.network_.eval()
    batch = batch_of(method, data)
    batch["avail"]["text"] = torch.arange(24) % 2 == 0  # odd clips have no text
    with torch.no_grad():
        reference = network(batch)["logits"]
        for garbage in (torch.full_like(batch["x"]["text"], float("nan")), torch.randn_like(batch["x"]["text"]) * 1e3):
            changed = {**batch, "x": {**batch["x"], "text": torch.where(
                batch["avail"]["text"][:, None, None], batch["x"]["text"], garbage)}}
            out = network(changed)["logits"]
            assert torch.isfinite(out).all()
            assert torch.allclose(out, reference, atol=1e-5)
        # ... and it does change the clips where text is available
        changed = {**batch, "x": {**batch["x"], "text": torch.randn_like(batch["x"]["text"])}}
        assert not torch.allclose(network(changed)["logits"][::2], reference[::2], atol=1e-3)


def test_embracenet_draws_only_available_modalities_and_renormalises() -> None:
    embrace = EmbraceNet(["audio", "video", "text"], in_dim=4, c=500, eval_mode="expectation", eval_samples=1)
    avail = torch.tensor([[True, True, True], [True, False, True], [False, False, True]])
    p = EmbraceNet.probabilities(avail)
    assert torch.allclose(p, torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]))
    r = embrace.draw(p, 500, torch.Generator().manual_seed(0))
    assert torch.equal(r.sum(dim=1), torch.ones(3, 500))  # exactly one modality per position
    assert r[1, 1].sum() == 0 and r[2, :2].sum() == 0
    assert 200 < r[1, 0].sum() < 300  # roughly half of the positions each


def test_cross_attention_softmax_columns_sum_to_one() -> None:
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(16)
    audio, video = torch.randn(3, 6, 16), torch.randn(3, 6, 16)
    w_audio, w_video = fusion.weights(audio, video)
    assert w_audio.shape == w_video.shape == (3, 6, 6)
    assert torch.allclose(w_audio.sum(dim=1), torch.ones(3, 6), atol=1e-6)
    assert torch.allclose(w_video.sum(dim=1), torch.ones(3, 6), atol=1e-6)
    corr = audio @ fusion.weight @ video.transpose(1, 2)
    assert torch.allclose(w_video, torch.softmax(corr.transpose(1, 2), dim=1))
    fused = fusion(audio, video)
    assert torch.allclose(fused[..., :16], torch.tanh(audio + w_audio @ audio), atol=1e-6)


@pytest.mark.parametrize("name", ["ima-hadamard", "ima-hadamard-eq2", "xmt-embracenet", "av-xattn",
                                  "av-xattn-triplet", "neural-video"])
def test_overfits_a_tiny_batch(name: str) -> None:
    data = toy_data(n=12, seed=3, signal=0.0, random_labels=True)  # labels are noise: must be memorised
    params = {"max_epochs": 150, "patience": 150, "dropout": 0.0, "batch_size": 12}
    if name.startswith("xmt"):
        params["lr"] = 0.1
    elif name == "av-xattn-triplet":
        params["lr"] = 3e-3
    else:
        params["lr"] = 3e-3
    method = build(name, **params).fit(data)
    assert (method.predict(data) == data.labels).mean() == 1.0


@pytest.mark.parametrize("name", ["ima-hadamard", "xmt-embracenet", "av-xattn"])
def test_seeded_runs_repeat_exactly(name: str) -> None:
    data = toy_data()
    train, val = data.subset(range(16)), data.subset(range(16, 24))
    first = build(name, max_epochs=3, seed=7).fit(train, val).predict_proba(data)
    second = build(name, max_epochs=3, seed=7).fit(train, val).predict_proba(data)
    other = build(name, max_epochs=3, seed=8).fit(train, val).predict_proba(data)
    assert np.array_equal(first, second)
    assert not np.allclose(first, other)


def test_missing_modalities_are_explicit_and_counted() -> None:
    data = toy_data()
    data.sequences["text"] = [s if i % 3 else np.zeros((0, DIMS["text"]), np.float32)
                              for i, s in enumerate(data.sequences["text"])]
    data.available["video"] = np.arange(24) % 4 != 1
    method = build("ima-hadamard", **FAST).fit(data)
    assert method.notes_["train_missing_text"] == 8
    assert method.notes_["train_missing_video"] == 6
    tensors = tensorize(data, method.modalities_, method.standardizer_, 24)
    assert not tensors.avail["text"][0] and tensors.avail["text"][1]
    assert np.isfinite(method.predict_proba(data)).all()


def test_length_bounding_keeps_the_text_cls_token() -> None:
    data = toy_data(modalities=("audio", "text"))
    data.sequences["text"] = [np.concatenate([np.full((1, DIMS["text"]), 9.0, np.float32),
                                              np.zeros((40, DIMS["text"]), np.float32)])] * 24
    method = IMAHadamard(**FAST)
    method.modalities_ = ["audio", "text"]
    method.standardizer_ = Standardizer({"audio": np.zeros(6, np.float32), "text": np.zeros(5, np.float32)},
                                        {"audio": np.ones(6, np.float32), "text": np.ones(5, np.float32)})
    tensors = method._tensors(data)
    assert tensors.x["text"].shape[1] == 24
    assert torch.all(tensors.x["text"][:, 0] == 9.0) and torch.all(tensors.x["text"][:, 1:] == 0.0)


def test_sampled_evaluation_is_deterministic_and_recorded_in_params() -> None:
    data = toy_data()
    method = build("xmt-embracenet-sampled", **FAST).fit(data)
    assert method.get_params()["embrace_eval"] == "sampled"
    assert np.array_equal(method.predict_proba(data), method.predict_proba(data))
    assert build("xmt-embracenet").get_params()["embrace_eval"] == "expectation"


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_optimizers_class_weights_and_best_epoch_checkpoint(optimizer: str, tmp_path) -> None:
    data = toy_data()
    method = build("ima-hadamard", optimizer=optimizer, class_weights=True, max_epochs=3,
                   checkpoint_dir=str(tmp_path)).fit(data.subset(range(16)), data.subset(range(16, 24)))
    saved = torch.load(tmp_path / "best.pt")
    assert saved["epoch"] + 1 == method.notes_["best_epoch"]
    for key, value in method.network_.state_dict().items():  # the restored weights are the best epoch's
        assert torch.equal(value, saved["state_dict"][key])


def test_polarity_is_a_declared_hyperparameter_and_its_absence_is_noted() -> None:
    assert "polarity" in inspect.signature(AVCrossAttention.__init__).parameters
    data = toy_data(modalities=("audio", "video"))
    assert AVCrossAttention(**FAST).fit(data).notes_["polarity_missing"] == 1
    assert AVCrossAttention(polarity=POLARITY, **FAST).fit(data).notes_["polarity_missing"] == 0


@pytest.mark.parametrize("cls", [IMAHadamard, CrossModalEmbrace, AVCrossAttention])
def test_paper_presets_build_and_run(cls) -> None:
    data = toy_data(n=8, modalities=cls.modalities)
    method = cls(**{**cls.paper, "max_epochs": 1})
    method.fit(data)
    assert method.predict_proba(data).shape == (8, 4)


def test_snippet_features_pass_through_unchanged() -> None:
    """[N*s, m] snippet-major features with positions_per_snippet=s reach the head as [N, s, m] unchanged."""
    from methods.neural.layers import segment_pool

    x = torch.randn(2, 30, 5)
    mask = torch.ones(2, 30, dtype=torch.bool)
    assert torch.equal(segment_pool(x, mask, 30), x)
    pooled = segment_pool(x, mask, 6)
    assert torch.allclose(pooled[:, 0], x[:, :5].mean(dim=1), atol=1e-6)


def test_unknown_hyperparameter_is_an_error() -> None:
    with pytest.raises(TypeError, match="unknown hyperparameters"):
        UnimodalTransformer(d_modle=3)
    with pytest.raises(TypeError, match="polarity"):  # the harness passes it only to methods that declare it
        IMAHadamard(polarity=POLARITY)
    assert AVCrossAttention(polarity=POLARITY).get_params()["polarity"] == POLARITY
    with pytest.raises(ValueError, match="needs at least 2"):
        IMAHadamard(**FAST).fit(toy_data(modalities=("audio",)))
    standardizer = Standardizer.fit(toy_data(), ["audio"])
    assert standardizer.std["audio"].shape == (DIMS["audio"],)


def test_context_params_reach_only_the_methods_that_declare_them() -> None:
    def accepts_param(spec, name: str) -> bool:
        return name in spec.cls.context_params

    polarity = {"happy": "positive", "sad": "negative"}
    assert accepts_param(get_method("av-xattn"), "polarity")
    for name in ("ima-hadamard", "xmt-embracenet", "early-concat-svm", "audio-svm"):
        assert accepts_param(get_method(name), "seed") and not accepts_param(get_method(name), "polarity")
    context = {"seed": 3, "polarity": polarity}
    for name in method_names():  # every declared context parameter is one the constructor accepts
        spec = get_method(name)
        method = spec.cls(**{**spec.fixed, **{p: context[p] for p in spec.cls.context_params}})
        assert method.get_params()["seed"] == 3
