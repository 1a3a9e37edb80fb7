"""End to end on a tiny synthetic corpus: features on Ray, Tune search, MLflow runs, leaderboard, reuse."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness.config import Settings
from harness.datasets import register_dataset
from harness.datasets.synthetic import SPEC, scan

METHODS = ["early-concat-svm", "late-average-svm", "audio-svm"]


CORRUPT_VIDEO = "spk01_sad_01"  # its MP4 is truncated: video fails to decode, audio and text still work


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, small_synthetic) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "corpus"
    shutil.copytree(small_synthetic, root)
    video = root / "spk01" / f"{CORRUPT_VIDEO}.mp4"
    video.write_bytes(video.read_bytes()[:300])
    return root


@pytest.fixture(scope="module")
def settings(tmp_path_factory, corpus) -> Settings:
    register_dataset(dataclasses.replace(SPEC, name="synthetic-tiny", prepare=None,
                                         is_present=lambda root: (root / "metadata.csv").exists(),
                                         scan=lambda root: dataclasses.replace(scan(root), dataset="synthetic-tiny")))
    work = tmp_path_factory.mktemp("work")
    return Settings(workspace=work / "ws", tracking_uri=f"sqlite:///{work}/mlruns.db", reports_dir=work / "reports",
                    trials=2, data_dirs={"synthetic-tiny": corpus})


def register_without(settings: Settings, corpus: Path, name: str, column: str) -> Settings:
    """Register the tiny corpus as dataset `name` with one manifest column emptied; settings that locate it."""

    def scan_without(root):
        manifest = scan(root)
        manifest.table[column] = None
        return dataclasses.replace(manifest, dataset=name)

    register_dataset(dataclasses.replace(SPEC, name=name, prepare=None, scan=scan_without,
                                         is_present=lambda root: (root / "metadata.csv").exists()))
    return dataclasses.replace(settings, data_dirs={**settings.data_dirs, name: corpus})


@pytest.fixture(scope="module")
def first_run(ray_session, settings):
    from harness import pipeline

    return pipeline.run(settings, pipeline.RunOptions(methods=METHODS, datasets=["synthetic-tiny"]))


def test_every_method_ran_and_was_logged(first_run, settings):
    import mlflow

    assert sorted(first_run.ran) == sorted(f"{m}@synthetic-tiny" for m in METHODS)
    assert not first_run.failed
    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.experiment], output_format="pandas")
    parents = runs[runs["tags.harness.role"] == "parent"]
    trials = runs[runs["tags.harness.role"] == "trial"]
    assert len(parents) == len(METHODS)
    assert len(trials) == 2 * len(METHODS)  # two sampled configurations per method, one child run each
    assert parents["tags.protocol"].eq("speaker-kfold(k=4)").all()
    assert parents["metrics.test_uar_mean"].between(0, 1).all()
    assert parents["tags.features"].str.contains("audio=egemaps:").all()
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=parents["run_id"].iloc[0])}
    assert {"predictions.csv", "confusion.json", "confusion.png", "config.json", "folds.json", "settings.json",
            "models.pkl"} <= artifacts
    # the runs table stays readable: a few headline metrics as columns, per-fold figures in folds.json
    metric_columns = [c for c in parents.columns if c.startswith("metrics.") and parents[c].notna().any()]
    assert sorted(metric_columns) == sorted(
        [f"metrics.test_{m}_{s}" for m in ("accuracy", "uar", "macro_f1", "weighted_f1") for s in ("mean", "std")]
        + [f"metrics.val_{m}_mean" for m in ("accuracy", "uar", "macro_f1", "weighted_f1")] + ["metrics.seconds"])
    folds = mlflow.artifacts.load_dict(f"runs:/{parents['run_id'].iloc[0]}/folds.json")
    assert len(folds) == 4 and set(folds["fold0"]["test"]) == {"accuracy", "uar", "macro_f1", "weighted_f1"}


def test_predictions_cover_each_test_clip_once(first_run, settings, corpus):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.experiment], output_format="pandas",
                              filter_string="tags.method = 'audio-svm' and tags.`harness.role` = 'parent'")
    path = mlflow.artifacts.download_artifacts(run_id=runs["run_id"].iloc[0], artifact_path="predictions.csv")
    predictions = pd.read_csv(path)
    manifest = scan(corpus)
    assert sorted(predictions["clip_id"]) == sorted(manifest.ids)  # every clip tested exactly once over folds
    truth = manifest.table.set_index("clip_id")["label"]
    assert (predictions["y_true"].to_numpy() == truth.loc[predictions["clip_id"]].to_numpy()).all()


def test_leaderboard_renders(first_run, settings):
    from harness.report.leaderboard import render

    board = render(settings.tracking_uri, settings.experiment, settings.reports_dir)
    markdown = board.paths["md"].read_text()
    for method in METHODS:
        assert f"`{method}`" in markdown
    assert (settings.reports_dir / "figures" / "synthetic-tiny" / "audio-svm.png").exists()
    assert "<table>" in board.paths["html"].read_text()
    # the clip whose video failed is listed with its stage, and still has a prediction (imputed video)
    assert f"| video | `{CORRUPT_VIDEO}` | decode |" in markdown
    assert board.table.groupby("dataset")["rank"].min().eq(1).all()


def test_second_run_reuses_features_and_results(first_run, settings, capsys):
    from harness import pipeline

    again = pipeline.run(settings, pipeline.RunOptions(methods=METHODS, datasets=["synthetic-tiny"]))
    out = capsys.readouterr().out
    assert sorted(again.reused) == sorted(first_run.ran) and not again.ran
    assert out.count("cache hit") == 3  # audio, video and text features all reused


def test_changed_settings_are_not_reused(first_run, settings):
    from harness import pipeline

    changed = dataclasses.replace(settings, trials=1)
    again = pipeline.run(changed, pipeline.RunOptions(methods=["audio-svm"], datasets=["synthetic-tiny"]))
    assert again.ran == ["audio-svm@synthetic-tiny"] and not again.reused


def test_absent_modality_runs_what_is_present(first_run, settings, corpus):
    """A corpus without video (like RAVDESS audio-only wavs) runs audio/text methods and says why it skips others."""
    import mlflow

    from harness import pipeline

    novideo = register_without(settings, corpus, "synthetic-novideo", "video_path")
    outcome = pipeline.run(novideo, pipeline.RunOptions(methods=["video-svm", "early-concat-svm"],
                                                        datasets=["synthetic-novideo"]))
    assert outcome.ran == ["early-concat-svm@synthetic-novideo"]
    assert outcome.skipped == ["video-svm@synthetic-novideo: needs video, which this dataset lacks"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.experiment], output_format="pandas",
                              filter_string="tags.dataset = 'synthetic-novideo'")
    assert runs.loc[runs["tags.harness.role"] == "parent", "tags.modalities"].tolist() == ["audio,text"]


def test_text_from_asr_for_a_corpus_without_transcripts(first_run, settings, corpus, tmp_path):
    """No transcripts: text methods are skipped, unless the text extractor is configured to transcribe (ASR)."""
    from harness import pipeline
    from harness.features.weights import random_init

    notext = register_without(settings, corpus, "synthetic-notext", "text")
    plain = pipeline.run(notext, pipeline.RunOptions(methods=["text-svm"], datasets=["synthetic-notext"]))
    assert plain.skipped == ["text-svm@synthetic-notext: needs text, which this dataset lacks"]
    whisper = str(random_init.whisper_asr_checkpoint(tmp_path / "whisper"))
    asr = dataclasses.replace(notext, extractor_config={"minilm": {"transcript": "asr", "asr_checkpoint": whisper}})
    outcome = pipeline.run(asr, pipeline.RunOptions(methods=["text-svm"], datasets=["synthetic-notext"]))
    assert outcome.ran == ["text-svm@synthetic-notext"] and not outcome.failed
    prepared = pipeline.prepare_dataset(asr, pipeline.get_dataset("synthetic-notext"), need_sequences=False)
    assert set(prepared.data.modalities) == {"audio", "video", "text"} and prepared.data.available["text"].all()


def test_imported_features_are_a_modality_of_their_own(first_run, settings, corpus, tmp_path):
    """Video features imported for a corpus without video media make the video and fusion methods run."""
    import numpy as np

    from harness import pipeline
    from harness.corpus import open_corpus
    from harness.features.imports import import_features
    from harness.features.store import FeatureStore

    novideo = register_without(settings, corpus, "synthetic-importedvideo", "video_path")
    novideo = dataclasses.replace(novideo, features={"video": "openface"})
    manifest = open_corpus(novideo, pipeline.get_dataset("synthetic-importedvideo"), with_folds=False).manifest
    assert "video" not in manifest.modalities()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "au.npz", clip_id=np.array(manifest.ids), pooled=rng.normal(size=(len(manifest), 5)))
    import_features(manifest, "openface", tmp_path / "au.npz", FeatureStore(novideo.feature_store_uri()),
                    modality="video")
    outcome = pipeline.run(novideo, pipeline.RunOptions(methods=["video-svm", "early-concat-svm"],
                                                        datasets=["synthetic-importedvideo"]))
    assert sorted(outcome.ran) == ["early-concat-svm@synthetic-importedvideo", "video-svm@synthetic-importedvideo"]
    assert not outcome.skipped and not outcome.failed


def test_speaker_norm_reaches_sequence_inputs(settings):
    """`--speaker-norm` z-scores the frames every sequence method reads, not only the pooled vectors."""
    import numpy as np

    from harness import pipeline

    spec = pipeline.get_dataset("synthetic-tiny")
    plain = pipeline.prepare_dataset(settings, spec, need_sequences=True, modalities={"audio"})
    normed = pipeline.prepare_dataset(dataclasses.replace(settings, speaker_norm=True), spec, need_sequences=True,
                                      modalities={"audio"})
    assert set(plain.data.modalities) == {"audio"}  # extraction limited to what the planned methods read
    speakers = normed.data.groups["speaker"]
    first = speakers[0]
    frames = np.concatenate([s for s, spk in zip(normed.data.sequences["audio"], speakers, strict=True)
                             if spk == first])
    assert np.allclose(frames.mean(axis=0), 0, atol=1e-4)
    assert not np.allclose(np.concatenate(plain.data.sequences["audio"]).mean(axis=0), 0, atol=1e-2)


def test_robustness_command_scores_finished_results_with_modalities_missing(first_run, settings, capsys):
    """`harness robustness --missing` on the run's finished results: child runs with condition tags."""
    import mlflow

    from harness.cli import main

    flags = ["--workspace", str(settings.workspace), "--tracking-uri", settings.tracking_uri,
             "--data-dir", f"synthetic-tiny={settings.data_dirs['synthetic-tiny']}"]
    assert main(["robustness", "--missing", "--method", "early-concat-svm", "--dataset", "synthetic-tiny",
                 *flags]) == 0
    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.experiment], output_format="pandas",
                              filter_string="tags.`harness.role` = 'robustness'")
    assert len(runs) >= 1 and (runs["tags.method"] == "early-concat-svm").all()
    assert runs["tags.robustness.condition"].str.startswith("missing").all()
