"""The one early-stopping rule (methods.neural.early_stopping) on hand-written score sequences (ties, the patience
boundary, each selection metric, resume), and the three loops that must use it: feature-mode training, the
end-to-end worker loop and stage-1 fine-tuning, each driven with a planted validation curve and checked to stop
at, and keep, the epoch the rule gives."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from methods.neural.early_stopping import EarlyStopping, EarlyStoppingStateError


def feed(rule: EarlyStopping, epochs: list[tuple[float, float]], start: int = 0) -> int | None:
    """Update `rule` with (uar, loss) per epoch (accuracy = uar); the epoch after which it says stop, or None."""
    for epoch, (uar, loss) in enumerate(epochs[start:], start):
        rule.update(epoch, uar=uar, accuracy=uar, loss=loss)
        if rule.should_stop:
            return epoch
    return None


# ---- the rule on its own --------------------------------------------------------------------------------------
def test_a_tied_score_goes_to_the_lower_loss_and_a_tie_on_both_keeps_the_earlier_epoch() -> None:
    rule = EarlyStopping(patience=10)
    kept = [rule.update(e, uar=u, accuracy=0.0, loss=loss)
            for e, (u, loss) in enumerate([(0.5, 1.0), (0.5, 0.9), (0.5, 0.9), (0.5, 1.2), (0.4, 0.1)])]
    assert kept == [True, True, False, False, False]
    assert (rule.best_epoch, rule.best_score, rule.best_loss, rule.since_best) == (1, 0.5, 0.9, 3)


@pytest.mark.parametrize("patience", [1, 2, 3, 4])
def test_training_stops_after_exactly_patience_epochs_without_gain(patience: int) -> None:
    curve = [(0.2, 1.0), (0.6, 0.8), (0.6, 0.8), (0.5, 0.7), (0.55, 0.6), (0.59, 0.5), (0.1, 0.1)]
    rule = EarlyStopping(patience)
    stopped = feed(rule, curve)
    assert rule.best_epoch == 1
    assert stopped == 1 + patience  # epochs 2.. bring no gain (a tie on both is none); stop after `patience`


def test_a_late_gain_resets_the_count() -> None:
    rule = EarlyStopping(patience=2)
    assert feed(rule, [(0.3, 1.0), (0.2, 1.0), (0.4, 1.0), (0.1, 1.0), (0.1, 1.0)]) == 4
    assert rule.best_epoch == 2


def test_the_selection_metric_decides_and_loss_is_lower_is_better() -> None:
    by_accuracy, by_loss, by_uar = EarlyStopping(9, "accuracy"), EarlyStopping(9, "loss"), EarlyStopping(9)
    for epoch, (uar, accuracy, loss) in enumerate([(0.6, 0.5, 0.9), (0.5, 0.7, 1.1), (0.4, 0.6, 0.3)]):
        for rule in (by_accuracy, by_loss, by_uar):
            rule.update(epoch, uar=uar, accuracy=accuracy, loss=loss)
    assert (by_uar.best_epoch, by_accuracy.best_epoch, by_loss.best_epoch) == (0, 1, 2)
    assert by_accuracy.best_uar == 0.5 and by_loss.best_score == -0.3  # the best epoch's UAR is kept either way


def test_an_undefined_score_is_never_the_best() -> None:
    rule = EarlyStopping(patience=2)
    assert feed(rule, [(math.nan, 1.0), (math.nan, 0.5)]) == 1
    assert rule.best_epoch == -1


@pytest.mark.parametrize("kwargs", [{"patience": 0}, {"patience": 2.0}, {"patience": True},
                                    {"patience": 2, "select_by": "f1"}])
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="patience|select_by"):
        EarlyStopping(**kwargs)


CURVE = [(0.3, 1.0), (0.5, 0.9), (0.5, 0.8), (0.45, 0.7), (0.6, 0.9), (0.6, 0.95), (0.2, 0.5), (0.59, 0.4),
         (0.1, 0.3)]


@pytest.mark.parametrize("cut", range(1, len(CURVE)))
def test_a_resumed_rule_decides_as_an_uninterrupted_one(cut: int) -> None:
    whole = EarlyStopping(patience=4)
    expected = feed(whole, CURVE)
    first = EarlyStopping(patience=4)
    assert feed(first, CURVE[:cut]) is None
    stored = json.loads(json.dumps(first.state_dict()))  # what a checkpoint keeps: plain values
    resumed = EarlyStopping.from_state(stored, patience=4, select_by="uar")
    assert feed(resumed, CURVE, start=cut) == expected == 8
    assert resumed == whole


def test_a_state_is_refused_under_another_selection_metric() -> None:
    rule = EarlyStopping(3, "uar")
    rule.update(0, uar=0.5, accuracy=0.6, loss=1.0)
    with pytest.raises(EarlyStoppingStateError, match="by validation uar, this run selects by accuracy"):
        EarlyStopping.from_state(rule.state_dict(), patience=3, select_by="accuracy")
    assert EarlyStopping.from_state(rule.state_dict(), patience=9, select_by="uar").patience == 9


def test_an_e2e_checkpoint_from_before_the_shared_rule_continues_under_uar_or_is_refused() -> None:
    from harness.e2e.train import E2EConfig, stopping_state

    old = {"best_uar": 0.7, "best_epoch": 1, "since_best": 2, "epoch": 3}
    rule = stopping_state(old, E2EConfig(patience=3))
    assert (rule.best_score, rule.best_epoch, rule.since_best, rule.select_by) == (0.7, 1, 2, "uar")
    assert feed(rule, [(0.0, 0.0)] * 5, start=4) == 4  # one more epoch without gain reaches patience 3
    with pytest.raises(EarlyStoppingStateError, match="predates the shared early-stopping rule"):
        stopping_state(old, E2EConfig(select_by="accuracy"))


# ---- feature-mode training ------------------------------------------------------------------------------------
def planted_tensors(n: int = 8):
    import torch

    from methods.neural.training import Tensors

    y = torch.tensor([0, 1] * (n // 2))
    return Tensors({"a": torch.zeros(n, 1, 1)}, {"a": torch.ones(n, 1, dtype=torch.bool)},
                   {"a": torch.ones(n, dtype=torch.bool)}, y)


def planted_network(curve: list[tuple[int, float]], y):
    """A network whose validation predictions follow `curve`: per evaluation, (how many of the clips it gets right,
    the logit margin, which sets the cross-entropy); training passes return learnable zeros."""
    import torch
    from torch import nn

    class Planted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.evaluations = 0

        def forward(self, batch):
            n = len(batch["y"])
            if self.training:
                return {"logits": self.w * torch.zeros(n, 2)}
            right, margin = curve[self.evaluations]
            self.evaluations += 1
            truth = batch["y"]
            predicted = torch.where(torch.arange(n) < right, truth, 1 - truth)
            return {"logits": nn.functional.one_hot(predicted, 2).float() * margin}

    return Planted()


def test_feature_mode_training_stops_and_keeps_the_epoch_the_rule_gives() -> None:
    from torch import nn

    from methods.neural.training import TrainSettings, train_network

    # (clips right out of 8, logit margin); 1-based: epoch 3 ties epoch 2's UAR 0.75 with a lower cross-entropy
    # (margin 1 fits 6 right / 2 wrong better than 3), so it is the best; epoch 4 ties it on both, 5 is worse, 6
    # ties the UAR with a higher loss: three epochs without gain, so patience 3 stops after epoch 6
    curve = [(4, 1.0), (6, 3.0), (6, 1.0), (6, 1.0), (5, 1.0), (6, 0.5), (2, 1.0), (8, 9.0), (8, 9.0)]
    data = planted_tensors()
    network = planted_network(curve, data.y)
    settings = TrainSettings(optimizer="sgd", lr=0.0, weight_decay=0.0, momentum=0.0, batch_size=8,
                             max_epochs=len(curve), patience=3, seed=0, device="cpu", amp=False, grad_clip=0.0,
                             checkpoint_dir=None)
    seen: list[dict[str, float]] = []
    result = train_network(network, data, data, lambda out, batch: nn.functional.cross_entropy(
        out["logits"], batch["y"]), settings, on_epoch=lambda epoch, m: seen.append(m))
    expected = EarlyStopping(3)
    for epoch, metrics in enumerate(seen):
        expected.update(epoch, uar=metrics["val_uar"], accuracy=metrics["val_uar"], loss=metrics["val_loss"])
    assert (result.epochs_run, result.best_epoch) == (6, 3)
    assert result.best_epoch == expected.best_epoch + 1 and expected.should_stop
    assert result.best_uar == 0.75 and result.best_loss == pytest.approx(seen[2]["val_loss"])


# ---- the end-to-end worker loop -------------------------------------------------------------------------------
@contextmanager
def fake_ray_train(monkeypatch, reported: list[dict[str, Any]], resume: Path | None = None):
    """`ray.train` as one worker sees it, without Ray: rank 0 of 1 on the CPU; each report keeps the metrics and the
    state file the loop wrote; `resume` is the folder `get_checkpoint` hands the loop."""
    import ray.train
    import ray.train.torch
    import torch

    class Context:
        def get_world_rank(self) -> int:
            return 0

        def get_world_size(self) -> int:
            return 1

    class Stored:
        def __init__(self, folder: str) -> None:
            self.state = torch.load(Path(folder) / "state.pt", weights_only=False)

    class Resume:
        @contextmanager
        def as_directory(self):
            yield str(resume)

    monkeypatch.setattr(ray.train, "get_context", lambda: Context())
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: Resume() if resume else None)
    monkeypatch.setattr(ray.train, "report", lambda metrics, checkpoint=None: reported.append(
        {**metrics, "state": checkpoint.state}))
    monkeypatch.setattr(ray.train.Checkpoint, "from_directory", staticmethod(lambda folder: Stored(folder)))
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(ray.train.torch, "prepare_model", lambda model: model)
    yield


@pytest.fixture
def clip_cache(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    cache = tmp_path / "clips.npz"
    np.savez(cache, ids=np.array([f"c{i}" for i in range(8)]),
             video=rng.integers(0, 256, (8, 6, 4, 32, 32, 3)).astype(np.uint8),
             audio=rng.standard_normal((8, 6, 32, 16)).astype(np.float32), labels=np.arange(8) % 4)
    return cache


UAR_CURVE = [0.3, 0.6, 0.5, 0.55, 0.4, 0.2, 0.9, 0.9]  # best 0.6 at epoch 1; patience 3 stops after epoch 4


def run_loop(monkeypatch, cache: Path, epochs: int, resume: Path | None = None, select_by: str = "uar",
             start: int = 0) -> list[dict[str, Any]]:
    from dataclasses import asdict

    import harness.e2e.train as train
    from harness.e2e.clips import ClipSettings

    planted = iter(UAR_CURVE[start:])
    monkeypatch.setattr(train, "unweighted_average_recall", lambda y, p: next(planted))
    reported: list[dict[str, Any]] = []
    config = train.E2EConfig(epochs=epochs, patience=3, batch_size=4, augment=False, select_by=select_by,
                             clips=ClipSettings())
    ids = [f"c{i}" for i in range(8)]
    with fake_ray_train(monkeypatch, reported, resume):
        train.train_loop_per_worker({"config": asdict(config), "cache": str(cache), "classes": list("abcd"),
                                     "train_ids": ids, "val_ids": ids, "polarity": None})
    return reported


@pytest.mark.usefixtures("one_torch_thread")
def test_the_e2e_loop_stops_by_the_shared_rule_and_resumes_it(monkeypatch, clip_cache: Path, tmp_path: Path
                                                              ) -> None:
    import torch

    whole = run_loop(monkeypatch, clip_cache, epochs=8)
    assert [r["epoch"] for r in whole] == [0, 1, 2, 3, 4]  # stopped after 3 epochs without gain
    last = whole[-1]
    assert (last["best_epoch"], last["best_val_uar"], last["select_by"]) == (1, 0.6, "uar")
    assert last["state"]["early_stopping"] == {**last["state"]["early_stopping"], "best_epoch": 1,
                                               "since_best": 3, "select_by": "uar", "patience": 3}
    # stopped after epoch 2, resumed from its checkpoint: the count goes on (2 more epochs, not a fresh 3)
    cut = tmp_path / "cut"
    cut.mkdir()
    torch.save(whole[2]["state"], cut / "state.pt")
    resumed = run_loop(monkeypatch, clip_cache, epochs=8, resume=cut, start=3)
    assert [r["epoch"] for r in resumed] == [3, 4] and resumed[-1]["best_epoch"] == 1
    assert resumed[-1]["state"]["early_stopping"] == last["state"]["early_stopping"]


@pytest.mark.usefixtures("one_torch_thread")
def test_the_e2e_loop_selects_by_its_configured_metric(monkeypatch, clip_cache: Path) -> None:
    import harness.e2e.train as train

    made: list[EarlyStopping] = []

    class Spy(EarlyStopping):
        def __post_init__(self) -> None:
            super().__post_init__()
            made.append(self)

    monkeypatch.setattr(train, "EarlyStopping", Spy)
    reported = run_loop(monkeypatch, clip_cache, epochs=2, select_by="accuracy")
    assert [rule.select_by for rule in made] == ["accuracy"]
    assert reported[-1]["select_by"] == "accuracy"
    assert reported[-1]["best_val_score"] == max(r["val_accuracy"] for r in reported)


def test_e2e_under_the_paper_preset_selects_as_the_methods_paper_preset() -> None:
    from types import SimpleNamespace

    from harness.e2e.commands import e2e_config
    from methods.neural.av_cross_attention import AVCrossAttention

    args = SimpleNamespace(preset="paper", video_weights=None, audio_weights=None, epochs=1, no_augment=False)
    paper = AVCrossAttention.presets["paper"].values
    config = e2e_config(args, 0)
    assert (config.select_by, config.patience) == (paper["select_by"], paper["patience"]) == ("accuracy", 20)
    assert e2e_config(SimpleNamespace(**{**vars(args), "preset": None}), 0).select_by == "uar"


def test_resuming_e2e_under_another_selection_is_refused_before_training(tmp_path: Path) -> None:
    import torch

    from harness.e2e.train import STATE_FILE, E2EConfig, run_e2e

    folder = tmp_path / "checkpoint_1"
    folder.mkdir()
    torch.save({"epoch": 1, "best_epoch": 0, "early_stopping": EarlyStopping(3).state_dict()}, folder / STATE_FILE)
    with pytest.raises(EarlyStoppingStateError, match="checkpoint_1: the checkpoint chose its best epoch by "
                                                      "validation uar"):
        run_e2e(tmp_path / "none.npz", ["a"], [], [], E2EConfig(select_by="accuracy"), tmp_path, "x",
                resume_from=str(folder))


# ---- stage-1 fine-tuning --------------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_torch_thread")
def test_finetuning_stops_and_keeps_the_epoch_the_rule_gives(monkeypatch, tmp_path: Path) -> None:
    import pandas as pd

    from harness import metrics
    from harness.config import FinetuneOptions
    from harness.features.base import ExtractorRef
    from harness.features.weights import random_init
    from harness.finetune.stage import finetune_fold
    from harness.manifest import Manifest
    from harness.protocols import Fold

    rows = [{"clip_id": f"s{s}_{c}_{k}", "label": c, "speaker": f"s{s}", "text": f"the {c} word {k}"}
            for s in range(3) for c in ("happy", "sad") for k in range(2)]
    (tmp_path / "words").mkdir()
    manifest = Manifest("words", tmp_path / "words", ["happy", "sad"], pd.DataFrame(rows))
    ids = {s: [r["clip_id"] for r in rows if r["speaker"] == f"s{s}"] for s in range(3)}
    fold = Fold("fold0", ids[0], ids[1], ids[2])
    planted = iter([0.5, 0.75, 0.5, 0.7, 0.6, 1.0, 1.0])  # best at epoch 2 (1-based); patience 3: stop after 5
    monkeypatch.setattr(metrics, "uar", lambda y, p: next(planted))
    ref = ExtractorRef("bert", {"checkpoint": str(random_init.text_checkpoint(tmp_path / "bert")), "max_tokens": 12})
    outcome = finetune_fold(manifest=manifest, fold=fold, extractor=ref, modality="text",
                            options=FinetuneOptions(epochs=7, patience=3, batch_size=4, lr=1e-3),
                            store_root=str(tmp_path / "store"), seed=0, history={}, base_key="k")
    assert outcome.val_uar == [0.5, 0.75, 0.5, 0.7, 0.6] and outcome.best_epoch == 2
    assert len(outcome.val_loss) == 5 and len(outcome.train_loss) == 5


def test_finetune_options_take_a_selection_metric_shared_or_per_modality() -> None:
    from harness.config import FinetuneOptions

    options = FinetuneOptions(per_modality={"text": {"select_by": "accuracy"}})
    assert (options.for_modality("text").select_by, options.for_modality("audio").select_by) == ("accuracy", "uar")
    with pytest.raises(ValueError, match="finetune_options.select_by must be one of"):  # pydantic wraps it
        FinetuneOptions(select_by="f1")
    with pytest.raises(ValueError, match="finetune_options.text.select_by"):
        FinetuneOptions(per_modality={"text": {"select_by": "f1"}})
