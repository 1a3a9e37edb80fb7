"""wav2vec 1.0 without fairseq: fairseq's checkpoint layout loads strictly, shapes and frame arithmetic, clear errors.

The checkpoints are written here with random weights in fairseq's layout (`{"args": Namespace, "model":
state_dict}`); the key names and shapes of the large model are spelled out below from fairseq's Wav2VecModel, not
taken from the module under test, so a naming slip in the module fails the strict load.
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.features.base import (
    ClipInput,
    ExtractorConfigError,
    MissingWeightsError,
    build_extractor,
    extractor_names,
    get_extractor,
)
from harness.features.extractors.wav2vec1 import (
    LARGE,
    URL,
    Wav2Vec1CheckpointError,
    Wav2Vec1Settings,
    checkpoint_settings,
    encode,
    load_network,
    output_frames,
    parse_layers,
    read_checkpoint,
    receptive_field,
)

FEATURE_LAYERS = "[(512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1)]"
AGGREGATOR_LAYERS = "[" + ", ".join(f"(512, {k}, 1)" for k in range(2, 14)) + "]"
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # a small CPU share: threads contend more than help
TINY = Wav2Vec1Settings(conv_feature_layers=((16, 10, 5), (16, 8, 4), (16, 4, 2), (16, 1, 1)),
                        conv_aggregator_layers=((16, 2, 1), (16, 3, 1), (16, 4, 1)), prediction_steps=3)


def large_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the names and shapes of fairseq's large Wav2VecModel (71 tensors)."""
    generator = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, ...]] = {}
    channels = 1
    for i, (kernel, _) in enumerate([(10, 5), (8, 4), (4, 2), (4, 2), (4, 2), (1, 1), (1, 1)]):
        shapes[f"feature_extractor.conv_layers.{i}.0.weight"] = (512, channels, kernel)  # Conv1d, no bias
        shapes[f"feature_extractor.conv_layers.{i}.2.weight"] = (512,)  # GroupNorm(1, 512)
        shapes[f"feature_extractor.conv_layers.{i}.2.bias"] = (512,)
        channels = 512
    for i, kernel in enumerate(range(2, 14)):  # index 0 of each block is the causal padding
        shapes[f"feature_aggregator.conv_layers.{i}.1.weight"] = (512, 512, kernel)
        shapes[f"feature_aggregator.conv_layers.{i}.1.bias"] = (512,)
        shapes[f"feature_aggregator.conv_layers.{i}.3.weight"] = (512,)
        shapes[f"feature_aggregator.conv_layers.{i}.3.bias"] = (512,)
    shapes["wav2vec_predictions.project_to_steps.weight"] = (512, 512, 1, 12)  # ConvTranspose2d
    shapes["wav2vec_predictions.project_to_steps.bias"] = (512,)
    return {key: torch.randn(shape, generator=generator) * (0.05 if len(shape) > 1 else 0.3) + (len(shape) == 1)
            for key, shape in shapes.items()}


def fairseq_args(settings: Wav2Vec1Settings = LARGE, **extra) -> argparse.Namespace:
    """An `args` namespace as fairseq's train.py records it (layer lists as strings, plus unrelated options)."""
    values = {key: (str(list(value)) if key.startswith("conv_") else value) for key, value in vars(settings).items()}
    return argparse.Namespace(arch="wav2vec", task="audio_pretraining", encoder="cnn", lr=[0.005], fp16=True,
                              **{**values, **extra})


def tiny_state_dict(settings: Wav2Vec1Settings = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    from harness.features.extractors.wav2vec1 import build_network

    torch.manual_seed(seed)
    return {k: v + 0.1 * torch.randn_like(v) for k, v in build_network(settings).state_dict().items()}


def save(path: Path, state: dict, legacy: bool = False) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture(scope="module")
def large_weights() -> dict[str, torch.Tensor]:
    return large_state_dict()


@pytest.fixture(scope="module")
def large_checkpoint(tmp_path_factory, large_weights) -> Path:
    root = tmp_path_factory.mktemp("wav2vec1")
    args = argparse.Namespace(arch="wav2vec", conv_feature_layers=FEATURE_LAYERS,
                              conv_aggregator_layers=AGGREGATOR_LAYERS, skip_connections_agg=True,
                              skip_connections_feat=False, residual_scale=0.5, log_compression=True)
    return save(root / "wav2vec_large.pt", {"args": args, "model": large_weights})


@pytest.fixture(scope="module")
def large_extractors(large_checkpoint: Path) -> dict:
    """The extractor set up once per layer (loading 130 MB per test would dominate the module's time)."""
    extractors = {}
    for layer in ("c", "z"):
        extractors[layer] = build_extractor("wav2vec1", {"checkpoint": str(large_checkpoint), "layer": layer,
                                                         "device": "cpu"})
        extractors[layer].setup()
    return extractors


def test_registered_with_declared_io() -> None:
    assert "wav2vec1" in extractor_names()
    cls = get_extractor("wav2vec1")
    assert cls.modality == "audio" and "wav2vec_large.pt" in cls.description and "[T, 512]" in cls.output
    extractor = build_extractor("wav2vec1", {"checkpoint": "/x.pt"})
    assert extractor.sample_rate == 16_000 and extractor.inputs() == ("audio",) and extractor.config["layer"] == "c"


def test_large_layout_loads_strictly(large_checkpoint: Path, large_weights) -> None:
    network, settings = load_network(large_checkpoint)
    assert settings == LARGE
    written = large_weights
    loaded = network.state_dict()
    assert set(loaded) == set(written) and len(loaded) == 71
    for key in ("feature_extractor.conv_layers.1.0.weight", "feature_aggregator.conv_layers.11.1.weight",
                "feature_aggregator.conv_layers.3.3.bias"):
        assert torch.equal(loaded[key], written[key])


@pytest.mark.parametrize(("seconds", "frames"), [(1.0, 98), (2.5, 248)])
def test_output_shapes_and_frame_rate(large_extractors: dict, seconds: float, frames: int) -> None:
    audio = (0.1 * np.random.default_rng(0).standard_normal(int(16_000 * seconds))).astype(np.float32)
    outputs = {}
    for layer, extractor in large_extractors.items():
        features = extractor.extract(ClipInput("clip", audio=audio))
        assert features.sequence.shape == (frames, 512) and features.pooled.shape == (512,)
        np.testing.assert_allclose(features.pooled, features.sequence.mean(axis=0), rtol=1e-5, atol=1e-6)
        outputs[layer] = features.sequence
    assert frames == (len(audio) - 465) // 160 + 1  # 160-sample hop: 100 frames per second
    assert (outputs["z"] >= 0).all()  # log(|x| + 1) of the feature extractor
    assert not np.allclose(outputs["c"], outputs["z"])


def test_frame_arithmetic_equals_fairseqs_receptive_field() -> None:
    # fairseq's Wav2VecModel: rin (receptive field) and jin (hop) from the feature layers, offset = ceil(rin/jin)
    rin, jin = 0, 0
    for _, k, stride in parse_layers(FEATURE_LAYERS):
        rin = k if rin == 0 else rin
        rin = rin + (k - 1) * jin
        jin = stride if jin == 0 else jin * stride
    assert (rin, jin) == receptive_field(LARGE.conv_feature_layers) == (465, 160) and math.ceil(rin / jin) == 3
    for n in (465, 466, 624, 625, 16_000, 40_000, 123_457):
        assert output_frames(n) == (n - rin) // jin + 1
    assert output_frames(464) == 0


def test_tiny_network_frames_and_reference_forward(tmp_path: Path) -> None:
    """The network's arithmetic, against a direct F.conv1d/F.group_norm computation from the state_dict."""
    weights = tiny_state_dict()
    path = save(tmp_path / "tiny.pt", {"args": fairseq_args(TINY), "model": weights})
    network, settings = load_network(path)
    rin, jin = receptive_field(settings.conv_feature_layers)
    wav = 0.1 * torch.randn(1, 3001, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z, c = encode(network, settings, wav)
    assert z.shape[-1] == c.shape[-1] == output_frames(3001, settings.conv_feature_layers) == (3001 - rin) // jin + 1

    x = wav[:, None]
    for i, (_, _, stride) in enumerate(settings.conv_feature_layers):
        x = F.conv1d(x, weights[f"feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        x = F.relu(F.group_norm(x, 1, weights[f"feature_extractor.conv_layers.{i}.2.weight"],
                                weights[f"feature_extractor.conv_layers.{i}.2.bias"]))
    x = torch.log1p(x.abs())
    torch.testing.assert_close(z, x)
    for i, (_, k, _) in enumerate(settings.conv_aggregator_layers):
        y = F.conv1d(F.pad(x, (k - 1, 0), mode="replicate"), weights[f"feature_aggregator.conv_layers.{i}.1.weight"],
                     weights[f"feature_aggregator.conv_layers.{i}.1.bias"])
        y = F.relu(F.group_norm(y, 1, weights[f"feature_aggregator.conv_layers.{i}.3.weight"],
                                weights[f"feature_aggregator.conv_layers.{i}.3.bias"]))
        x = (y + x) * math.sqrt(0.5)
    torch.testing.assert_close(c, x)


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_mismatched_weights_are_errors_naming_file_and_key(tmp_path: Path, change: str) -> None:
    weights = tiny_state_dict()
    key = "feature_aggregator.conv_layers.2.1.weight"
    if change == "missing":
        del weights[key]
    elif change == "unexpected":
        weights["feature_aggregator.residual_proj.0.weight"] = torch.zeros(16, 16, 1)
        key = "feature_aggregator.residual_proj.0.weight"
    else:
        weights[key] = torch.zeros(16, 16, 5)
    path = save(tmp_path / f"{change}.pt", {"args": fairseq_args(TINY), "model": weights})
    label = {"missing": "missing keys", "unexpected": "unexpected keys", "shape": "wrong shapes"}[change]
    with pytest.raises(Wav2Vec1CheckpointError, match=rf"{path}.*{label}: {key}"):
        load_network(path)
    # through the extractor, the same error
    with pytest.raises(Wav2Vec1CheckpointError, match=str(path)):
        build_extractor("wav2vec1", {"checkpoint": str(path), "device": "cpu"}).setup()


def test_args_that_disagree_with_the_weights_are_an_error(tmp_path: Path) -> None:
    """A large state_dict with args describing 9 aggregator layers: no partial load of the first nine."""
    settings = replace(TINY, conv_aggregator_layers=TINY.conv_aggregator_layers[:2])
    path = save(tmp_path / "short.pt", {"args": fairseq_args(settings), "model": tiny_state_dict()})
    with pytest.raises(Wav2Vec1CheckpointError, match=r"2 aggregator layers.*unexpected keys: feature_aggregator"):
        load_network(path)


def test_missing_checkpoint_names_the_download(tmp_path: Path) -> None:
    for checkpoint in ("", str(tmp_path / "wav2vec_large.pt")):
        extractor = build_extractor("wav2vec1", {"checkpoint": checkpoint})
        with pytest.raises(MissingWeightsError, match=rf"{URL}.*--extractor-config wav2vec1\.checkpoint=") as caught:
            extractor.check_weights()
        assert URL == "https://dl.fbaipublicfiles.com/fairseq/wav2vec/wav2vec_large.pt"
        assert (checkpoint or "no checkpoint") in str(caught.value)
        assert extractor.weights_identity().endswith(":missing")


def test_not_a_checkpoint_and_other_models_are_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(Wav2Vec1CheckpointError, match=rf"{junk}: cannot be read"):
        read_checkpoint(junk)
    wav2vec2 = save(tmp_path / "w2v2.pt", {"args": argparse.Namespace(arch="wav2vec2"), "model": {}})
    with pytest.raises(Wav2Vec1CheckpointError, match="'wav2vec2' model, not wav2vec 1.0.*wav2vec2 extractor"):
        load_network(wav2vec2)
    vq = save(tmp_path / "vq.pt", {"args": fairseq_args(TINY, vq_type="gumbel"), "model": tiny_state_dict()})
    with pytest.raises(Wav2Vec1CheckpointError, match="vq_type='gumbel' is not supported"):
        load_network(vq)
    with pytest.raises(Wav2Vec1CheckpointError, match="expected a dict with a 'model'"):
        read_checkpoint(save(tmp_path / "list.pt", [1, 2]))  # type: ignore[arg-type]


def test_fairseq_classes_legacy_format_and_cfg_checkpoints_load_without_fairseq(tmp_path: Path,
                                                                               monkeypatch) -> None:
    """A 2019 checkpoint: legacy (non-zip) torch format, fp16 weights, numpy scalars and fairseq objects in its
    training state. The fairseq class exists only while saving, as on the machine that trained the model."""
    package, meters = types.ModuleType("fairseq"), types.ModuleType("fairseq.meters")

    class AverageMeter:
        def __init__(self) -> None:
            self.avg = 1.25

    AverageMeter.__module__, AverageMeter.__qualname__ = "fairseq.meters", "AverageMeter"
    meters.AverageMeter = AverageMeter
    weights = tiny_state_dict()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "fairseq", package)
        patch.setitem(sys.modules, "fairseq.meters", meters)
        old = save(tmp_path / "old.pt", {"args": fairseq_args(TINY), "model": {k: v.half() for k, v in weights.items()},
                                         "extra_state": {"val_loss": np.float64(2.5), "meter": AverageMeter()},
                                         "optimizer_history": [{"num_updates": 3}]}, legacy=True)
    assert "fairseq" not in sys.modules or sys.modules["fairseq"] is not package
    state = read_checkpoint(old)
    assert type(state["extra_state"]["meter"]).__name__ == "AverageMeter"  # an inert stand-in
    network, settings = load_network(old)
    assert settings == TINY
    assert network.state_dict()["feature_extractor.conv_layers.0.0.weight"].dtype == torch.float32
    torch.testing.assert_close(network.state_dict()["feature_extractor.conv_layers.0.0.weight"],
                               weights["feature_extractor.conv_layers.0.0.weight"].half().float())
    # newer fairseq: `cfg` as a plain dict instead of `args`, layer lists given as lists
    cfg = {"model": {"_name": "wav2vec", **{k: (list(v) if k.startswith("conv_") else v)
                                             for k, v in vars(TINY).items()}}, "task": {"_name": "audio_pretraining"}}
    newer = save(tmp_path / "newer.pt", {"args": None, "cfg": cfg, "model": weights})
    assert load_network(newer)[1] == TINY
    # no settings at all: the large model's
    assert checkpoint_settings({"model": {}}) == LARGE


def test_layer_lists_are_parsed_without_eval() -> None:
    assert parse_layers("[(512, 10, 5)] + [(512, 8, 4)] + [(512, 4, 2)] * 3") == (
        (512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2))
    assert parse_layers(FEATURE_LAYERS) == LARGE.conv_feature_layers
    for bad in ("__import__('os').system('true')", "[(512, 10)]", "[]", "[(512, -1, 1)]"):
        with pytest.raises(ValueError, match="conv_feature_layers"):
            parse_layers(bad, "conv_feature_layers")


def test_options_and_cache_key(tmp_path: Path) -> None:
    with pytest.raises(ExtractorConfigError, match="layer must be one of"):
        build_extractor("wav2vec1", {"layer": "last"})
    with pytest.raises(ExtractorConfigError, match="device must be"):
        build_extractor("wav2vec1", {"device": "tpu"})
    with pytest.raises(ExtractorConfigError, match="unknown options"):
        build_extractor("wav2vec1", {"normalize": True})
    path = save(tmp_path / "tiny.pt", {"args": fairseq_args(TINY), "model": tiny_state_dict()})
    keys = {build_extractor("wav2vec1", {"checkpoint": str(path), "layer": layer}).cache_key("m")
            for layer in ("c", "z")}
    assert len(keys) == 2
    assert len({build_extractor("wav2vec1", {"checkpoint": str(path), "device": device}).cache_key("m")
                for device in ("auto", "cpu", "cuda")}) == 1  # where it ran is not part of what was computed
    before = build_extractor("wav2vec1", {"checkpoint": str(path)}).cache_key("m")
    save(path, {"args": fairseq_args(TINY), "model": tiny_state_dict(seed=1), "extra": torch.zeros(10)})
    assert build_extractor("wav2vec1", {"checkpoint": str(path)}).cache_key("m") != before  # file replaced


def test_short_clip_still_gives_a_frame(tmp_path: Path) -> None:
    path = save(tmp_path / "tiny.pt", {"args": fairseq_args(TINY), "model": tiny_state_dict()})
    extractor = build_extractor("wav2vec1", {"checkpoint": str(path), "device": "cpu"})
    extractor.setup()
    features = extractor.extract(ClipInput("short", audio=np.zeros(50, np.float32)))
    assert features.sequence.shape == (1, 16)


def test_extracts_synthetic_clips_through_the_harness(large_checkpoint: Path, tmp_path: Path) -> None:
    """Two clips of the built-in corpus through `extract` (local executor), decoded at 16 kHz, stored and reloaded."""
    from dataclasses import replace as replace_manifest

    from harness.datasets.synthetic import SyntheticConfig, generate, scan
    from harness.features.base import ExtractorRef
    from harness.features.runner import extract, load_features
    from harness.features.store import FeatureStore
    from harness.media import load_audio

    generate(tmp_path / "corpus", SyntheticConfig(n_speakers=1, clips_per_emotion=1))
    full = scan(tmp_path / "corpus")
    manifest = replace_manifest(full, table=full.table.head(2))
    ref = ExtractorRef("wav2vec1", {"checkpoint": str(large_checkpoint), "device": "cpu"})
    store = FeatureStore(str(tmp_path / "store"))
    result = extract(manifest, ref, store, executor="local", verbose=False)
    assert result.n_clips == 2 and result.n_failed == 0
    stored, _ = load_features(manifest, ref, store)
    assert stored.pooled.shape == (2, 512) and sorted(stored.ids) == sorted(manifest.ids)
    rows = manifest.table.set_index("clip_id")
    for clip_id, sequence in zip(stored.ids, stored.sequences, strict=True):
        audio = load_audio(manifest.resolve(rows.loc[clip_id, "audio_path"]), 16_000)
        assert sequence.shape == (output_frames(len(audio)), 512)
        np.testing.assert_allclose(stored.pooled[stored.index()[clip_id]], sequence.mean(axis=0), rtol=1e-5,
                                   atol=1e-6)
