"""Training with modality dropout (`train_missing_rate`): applied to training batches only, through the same
availability mask as a missing modality at test time; it changes the fitted model; and `harness run
--train-missing-rate` reaches exactly the methods that accept it, as a fixed parameter in its own setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import Settings, SettingsError
from methods import get_method
from methods.data import MultimodalData
from methods.neural.training import modality_dropout

DIMS = {"audio": 6, "video": 8, "text": 5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy(n: int = 32, seed: int = 0, signal: float = 1.5) -> MultimodalData:
    """Every modality carries the class (plus noise), sequences of varying length and their pooled means."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    sequences, pooled = {}, {}
    for mod, dim in DIMS.items():
        centres = rng.normal(0, 1, (4, dim))
        sequences[mod] = [(signal * centres[y] + rng.normal(0, 1, (int(rng.integers(3, 9)), dim))).astype(np.float32)
                          for y in labels]
        pooled[mod] = np.stack([s.mean(axis=0) for s in sequences[mod]])
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=["a", "b", "c", "d"], pooled=pooled,
                          sequences=sequences, labels=labels)


def full_batch(n: int = 64) -> dict:
    return {"x": {m: torch.ones(n, 5, d) for m, d in DIMS.items()},
            "mask": {m: torch.ones(n, 5, dtype=torch.bool) for m in DIMS},
            "avail": {m: torch.ones(n, dtype=torch.bool) for m in DIMS}, "y": torch.zeros(n, dtype=torch.long)}


def test_dropout_masks_like_a_missing_modality_and_keeps_one_per_clip():
    batch = full_batch()
    out = modality_dropout(batch, 0.5, torch.Generator().manual_seed(0))
    avail = torch.stack([out["avail"][m] for m in DIMS], dim=1)
    lost = (~avail).sum(dim=1)
    assert 16 < int((lost == 1).sum()) < 48  # about half of 64 clips lose exactly one modality
    assert int(lost.max()) == 1
    for m in DIMS:
        gone = ~out["avail"][m]
        assert torch.all(out["x"][m][gone] == 0)  # zeroed, as at test time
        assert torch.all(out["mask"][m][gone][:, 0]) and not torch.any(out["mask"][m][gone][:, 1:])
        assert torch.all(out["x"][m][~gone] == 1)
    assert all(torch.all(batch["avail"][m]) for m in DIMS)  # the input batch is untouched
    assert modality_dropout(batch, 0.0, torch.Generator()) is batch
    one_left = {**batch, "avail": {**batch["avail"], "video": torch.zeros(64, dtype=torch.bool),
                                   "text": torch.zeros(64, dtype=torch.bool)}}
    kept = modality_dropout(one_left, 1.0, torch.Generator().manual_seed(1))
    assert torch.all(kept["avail"]["audio"])  # a clip never loses its last modality
    with pytest.raises(ValueError, match="train_missing_rate"):
        modality_dropout(batch, 1.5, torch.Generator())


def test_neural_dropout_acts_in_training_only_and_changes_the_model(monkeypatch):
    spec = get_method("ima-hadamard")
    original = spec.cls.build_network
    seen: list[tuple[bool, bool]] = []  # (training mode, every clip had every modality)

    def recording(self, dims, n_classes):
        network = original(self, dims, n_classes)
        network.register_forward_pre_hook(
            lambda module, args: seen.append((module.training, all(bool(a.all()) for a in args[0]["avail"].values()))))
        return network

    monkeypatch.setattr(spec.cls, "build_network", recording)
    data = toy()
    train, val = data.subset(range(24)), data.subset(range(24, 32))
    fast = {"max_epochs": 3, "patience": 3, "batch_size": 8, "seed": 3}
    dropped = spec.build(**fast, train_missing_rate=0.5).fit(train, val)
    assert any(training and not complete for training, complete in seen)  # training batches lost modalities
    assert all(complete for training, complete in seen if not training)  # validation scoring did not
    seen.clear()
    with_dropout = dropped.predict_proba(data)
    assert seen and all(complete and not training for training, complete in seen)  # prediction did not either
    plain = spec.build(**fast).fit(train, val).predict_proba(data)
    zero = spec.build(**fast, train_missing_rate=0.0).fit(train, val).predict_proba(data)
    assert np.array_equal(plain, zero)  # rate 0 is the method as before, bit for bit
    assert not np.allclose(with_dropout, plain)


def test_early_fusion_dropout_imputes_training_clips_and_changes_the_model():
    data = toy(n=48, signal=1.0)
    train, test = data.subset(range(32)), data.subset(range(32, 48))
    spec = get_method("early-concat-svm")
    dropped = spec.build(train_missing_rate=0.5).fit(train)
    plain = spec.build().fit(train)
    assert 8 <= dropped.notes_["train_clips_dropped"] <= 24
    assert "train_clips_dropped" not in plain.notes_
    assert not np.allclose(dropped.predict_proba(test), plain.predict_proba(test))
    # prediction drops nothing: the complete test clips give the same probabilities every time
    np.testing.assert_array_equal(dropped.predict_proba(test), dropped.predict_proba(test))
    assert spec.build(train_missing_rate=0.0).fit(train).predict_proba(test) == pytest.approx(
        plain.predict_proba(test))
    with pytest.raises(ValueError, match="train_missing_rate"):
        spec.build(train_missing_rate=-0.1).fit(train)


def test_run_setting_reaches_only_methods_that_accept_it(tmp_path):
    from harness.pipeline import method_fixed_params
    from harness.results import evaluation_setting

    class Prepared:  # what method_fixed_params reads of a prepared dataset
        class spec:  # noqa: N801
            polarity: dict = {}

    settings = Settings(workspace=tmp_path, train_missing_rate=0.3)
    assert method_fixed_params(get_method("early-concat-svm"), Prepared, settings)["train_missing_rate"] == 0.3
    assert method_fixed_params(get_method("ima-hadamard"), Prepared, settings)["train_missing_rate"] == 0.3
    for name in ("audio-svm", "late-average-svm"):
        assert "train_missing_rate" not in method_fixed_params(get_method(name), Prepared, settings)
    assert "train_missing_rate" not in method_fixed_params(get_method("early-concat-svm"), Prepared,
                                                           Settings(workspace=tmp_path))
    common = {"evaluation_digest": "d", "protocol": "p", "features": {}, "trials": 4, "preset": "default",
              "speaker_norm": False, "refit": "auto"}
    assert evaluation_setting(**common) == evaluation_setting(**common, train_missing_rate=0.0)
    record, words = evaluation_setting(**common, train_missing_rate=0.3)
    assert record != evaluation_setting(**common)[0] and "modality dropout 0.3" in words
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_missing_rate: 1.0\n")
    with pytest.raises(SettingsError, match=r"train_missing_rate must be in \[0, 1\), got 1.0"):
        Settings.from_env(file=bad)


def test_cli_flag_sets_the_rate(tmp_path):
    import argparse

    from harness.cli.common import settings_from_args
    from harness.cli.run import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["run", "--all", "--train-missing-rate", "0.25", "--workspace", str(tmp_path)])
    assert settings_from_args(args, train_missing_rate=args.train_missing_rate).train_missing_rate == 0.25
