"""`harness run --finetune` end to end on the built-in synthetic corpus: stage 1 fine-tunes a tiny text and a tiny
speech encoder per fold (Ray tasks), stage 2 searches on the per-fold features, the result's tags name the
fine-tuned features, and a second run reuses every stored shard. Tiny randomly initialised encoders only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_finetune import tiny_bert

METHODS = ["text-svm", "audio-svm"]
pytestmark = pytest.mark.slow  # about 3 minutes on 2 CPUs: frozen extraction, 8 fine-tuned folds, 3 searches


@pytest.fixture(scope="module")
def paths(tmp_path_factory, small_synthetic) -> dict[str, Path]:
    from harness.features.weights import random_init

    root = tmp_path_factory.mktemp("finetune-run")
    shutil.copytree(small_synthetic, root / "synthetic")
    return {"corpus": root / "synthetic", "work": root / "work", "bert": tiny_bert(root / "bert"),
            "wav2vec2": random_init.speech_checkpoint("wav2vec2", root / "w2v")}


def argv(paths: dict[str, Path], *extra: str) -> list[str]:
    work = paths["work"]
    return ["run", *(a for m in METHODS for a in ("--method", m)), "--dataset", "synthetic",
            "--data-dir", f"synthetic={paths['corpus']}", "--workspace", str(work / "ws"),
            "--tracking-uri", f"sqlite:///{work}/mlruns.db", "--trials", "1", "--no-report",
            "--features", "text=bert", "--features", "audio=wav2vec2",
            "--extractor-config", f"bert.checkpoint={paths['bert']}",
            "--extractor-config", f"wav2vec2.checkpoint={paths['wav2vec2']}", *extra]


@pytest.fixture(scope="module")
def first_run(ray_session, paths):
    from harness.cli import main

    paths["work"].mkdir(exist_ok=True)
    return main(argv(paths, "--finetune", "--finetune-option", "epochs=1", "--finetune-option", "batch_size=4"))


def parents(paths: dict[str, Path]):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{paths['work']}/mlruns.db")
    runs = mlflow.search_runs(experiment_names=["mer-benchmark"], output_format="pandas")
    return runs[runs["tags.harness.role"] == "parent"]


def test_the_cli_runs_both_stages_and_tags_the_finetuned_features(first_run, paths):
    assert first_run == 0
    runs = parents(paths)
    assert sorted(runs["tags.method"]) == sorted(METHODS) and runs["status"].eq("FINISHED").all()
    features = dict(zip(runs["tags.method"], runs["tags.features"], strict=True))
    assert "text=bert+finetuned:" in features["text-svm"]
    assert "audio=wav2vec2+finetuned:" in features["audio-svm"]
    assert runs["metrics.test_uar_mean"].between(0, 1).all()
    assert runs["tags.harness.setting_label"].str.contains("+finetuned:", regex=False).all()  # never a frozen setting
    shards = list((paths["work"] / "ws" / "features" / "synthetic").glob("*+finetuned/fold*/shards/*.npz"))
    assert len(shards) == 2 * 4  # one shard per (modality, fold) of the 4-fold speaker protocol


def test_a_second_run_reuses_the_shards_and_other_options_are_another_result(first_run, paths, capsys):
    from harness.cli import main

    assert main(argv(paths, "--finetune", "--finetune-option", "epochs=1", "--finetune-option", "batch_size=4",
                     "--rerun")) == 0
    out = capsys.readouterr().out
    assert out.count("stored shard reused") == 8 and "train loss" not in out
    frozen_runs = len(parents(paths))
    assert main(argv(paths)) == 0  # the frozen-feature run is a result of its own, not the two-stage one reused
    runs = parents(paths)
    assert len(runs) == frozen_runs + 2
    frozen = runs[~runs["tags.features"].str.contains("+finetuned", regex=False)]
    assert len(frozen) == 2 and frozen["tags.harness.fingerprint"].nunique() == 2
    assert not set(frozen["tags.harness.fingerprint"]) & set(runs.loc[runs["tags.features"].str.contains(
        "+finetuned", regex=False), "tags.harness.fingerprint"])
