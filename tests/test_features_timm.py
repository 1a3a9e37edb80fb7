"""face-embed with timm backbones from local weights: shapes, determinism, cache identity, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets.synthetic import SyntheticConfig, generate, scan
from harness.features.base import ExtractorConfigError, MissingWeightsError, build_extractor
from harness.features.decode import decode_clip
from harness.features.decode import media_rows as _media_rows

timm = pytest.importorskip("timm", reason="timm is not installed (pip install timm==1.0.31)")

FACE = {"detector": "full-frame", "image_size": 32, "backbone": "timm"}


@pytest.fixture(scope="module")
def row(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=1, clips_per_emotion=1))
    manifest = scan(root)
    return _media_rows(manifest, set(manifest.ids)).to_dict("records")[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Two randomly initialised resnet10t checkpoints (with their ImageNet-sized classifier) and a hub-style dir."""
    import torch
    from timm.models import save_for_hf

    root = tmp_path_factory.mktemp("timm")
    paths = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = timm.create_model("resnet10t", pretrained=False)
        paths[f"seed{seed}"] = root / f"resnet10t-seed{seed}.pth"
        torch.save(model.state_dict(), paths[f"seed{seed}"])
        if seed == 0:
            save_for_hf(model, str(root / "resnet10t-dir"))
            paths["dir"] = root / "resnet10t-dir"
    return paths


def run(config: dict, row: dict):
    extractor = build_extractor("face-embed", config)
    extractor.check_weights()
    extractor.setup()
    return extractor.extract(decode_clip(row, extractor))


def test_timm_state_dict_shapes_and_determinism(row, weights) -> None:
    config = {**FACE, "model": "resnet10t", "checkpoint": str(weights["seed0"])}
    first = run(config, row)
    assert first.sequence.shape == (9, 512) and first.pooled.shape == (512,)  # 1.5 s at 6 fps, one face each
    np.testing.assert_allclose(first.pooled, first.sequence.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(run(config, row).sequence, first.sequence)
    other = run({**config, "checkpoint": str(weights["seed1"])}, row)
    assert not np.allclose(other.sequence, first.sequence)  # the weights were loaded, not left random
    from_dir = run({**FACE, "checkpoint": str(weights["dir"])}, row)  # same weights, save_for_hf layout
    np.testing.assert_allclose(from_dir.sequence, first.sequence, rtol=1e-5, atol=1e-6)


def test_weights_are_part_of_the_cache_key(weights) -> None:
    keys = {name: build_extractor("face-embed", {**FACE, "model": "resnet10t", "checkpoint": str(path)}
                                  ).cache_key("manifest") for name, path in weights.items()}
    assert len(set(keys.values())) == 3
    identity = build_extractor("face-embed", {**FACE, "model": "resnet10t", "checkpoint": str(weights["seed0"])}
                               ).weights_identity()
    assert f"timm=={timm.__version__}" in identity and str(weights["seed0"].resolve()) in identity


def test_missing_and_invalid_checkpoints(row, weights, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "resnet10t.pth"
    extractor = build_extractor("face-embed", {**FACE, "model": "resnet10t", "checkpoint": str(missing)})
    assert extractor.weights_identity().endswith(":missing")
    with pytest.raises(MissingWeightsError, match=r"nowhere/resnet10t\.pth does not exist.*model=<timm"):
        extractor.check_weights()
    with pytest.raises(MissingWeightsError, match=r"config\.json does not exist"):
        build_extractor("face-embed", {**FACE, "checkpoint": str(tmp_path)}).check_weights()
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match=r"corrupt\.pth is not a loadable state_dict"):
        run({**FACE, "model": "resnet10t", "checkpoint": str(corrupt)}, row)
    with pytest.raises(ExtractorConfigError, match="does not fit timm model 'resnet18'"):
        run({**FACE, "model": "resnet18", "checkpoint": str(weights["seed0"])}, row)
    with pytest.raises(ExtractorConfigError, match="model=<name>"):
        build_extractor("face-embed", {**FACE, "checkpoint": str(weights["seed0"])}).check_weights()
    with pytest.raises(ExtractorConfigError, match="not a timm architecture"):
        build_extractor("face-embed", {**FACE, "model": "resnet-10t", "checkpoint": str(weights["seed0"])}
                        ).check_weights()
    with pytest.raises(ExtractorConfigError, match="set backbone=timm"):
        build_extractor("face-embed", {"checkpoint": str(weights["seed0"]), "model": "resnet10t"})
    with pytest.raises(ExtractorConfigError, match="backbone must be one of"):
        build_extractor("face-embed", {"checkpoint": str(weights["seed0"]), "backbone": "keras"})
