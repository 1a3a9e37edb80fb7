"""The end-to-end mode's result joins the leaderboard: `harness e2e` writes one MLflow parent run
(`av-xattn-e2e-<backbone>`, tagged like a `harness run` result, finished from per-fold test scores), `harness
report` ranks it beside a `harness run` result on the same clips and folds, and the test part is scored from the
best validation epoch's weights, whose epoch is the one reported."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.e2e.clips import ClipSettings
from harness.e2e.models import EndToEndAV, build_backbones
from harness.e2e.train import STATE_FILE, E2EConfig, score_checkpoint, score_test_fold

CLASSES = ["neutral", "happy", "angry", "sad"]
METHOD = "av-xattn-e2e-tiny"


# ------------------------------------------ best epoch (the rule itself: tests/test_early_stopping.py)


def test_a_checkpoint_scores_and_reports_its_best_epoch_not_its_last(tmp_path: Path) -> None:
    """The checkpoint a run ends with is its last epoch's (3); the test part must be scored with the weights of
    the best validation epoch (1), and epoch 1 reported. Before the fix the last epoch's number was reported."""
    cfg = E2EConfig(clips=ClipSettings())
    torch.manual_seed(0)
    video_net, audio_net = build_backbones("tiny")
    model = EndToEndAV(video_net, audio_net, len(CLASSES), 6, 4, 32, cfg.head_params()).eval()
    best = {k: v.clone() for k, v in model.state_dict().items()}
    last = {k: v + 0.5 if v.is_floating_point() else v for k, v in best.items()}
    generator = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (4, 6, 4, 32, 32, 3), generator=generator).to(torch.uint8)
    audio = torch.randn(4, 6, 32, 16, generator=generator)
    cache = tmp_path / "clips.npz"
    np.savez(cache, ids=np.array(["a", "b", "c", "d"]), video=video.numpy(), audio=audio.numpy(),
             labels=np.arange(4))
    folder = tmp_path / "checkpoint_3"
    folder.mkdir()
    torch.save({"model": last, "best_model": best, "epoch": 3, "best_epoch": 1, "best_uar": 0.7, "since_best": 2,
                "config": asdict(cfg), "classes": CLASSES}, folder / STATE_FILE)

    scored = score_checkpoint(folder, cache, ["a", "b", "c", "d"])
    with torch.no_grad():
        expected = torch.softmax(model(video.float(), audio)["logits"], dim=1).numpy()
    assert np.allclose(scored["probabilities"], expected, atol=1e-5)  # the best epoch's weights
    assert (scored["epoch"], scored["last_epoch"]) == (1, 3)
    scores, epoch = score_test_fold(folder, cache, ["a", "b", "c", "d"], CLASSES)
    assert epoch == 1
    assert scores.accuracy == float(np.mean(expected.argmax(axis=1) == np.arange(4)))
    latest = score_checkpoint(folder, cache, ["a", "b"], use_best=False)
    assert latest["epoch"] == 3 and not np.allclose(latest["probabilities"], scored["probabilities"][:2])


# ---------------------------------------------------------------- MLflow and the report, without training


def test_an_e2e_result_is_written_and_ranked_like_a_run_result(small_synthetic: Path, tmp_path: Path) -> None:
    """`leaderboard.start_run` / `E2ERun` on the built-in corpus's real folds, with seeded probabilities in place of
    trained models (fast: no Ray); the slow tests below drive the same through `harness e2e`."""
    import mlflow

    from harness.config import Settings
    from harness.corpus import open_corpus
    from harness.datasets import get_dataset
    from harness.e2e.leaderboard import start_run
    from harness.metrics import score
    from harness.report.leaderboard import render

    settings = Settings(workspace=tmp_path / "ws", tracking_uri=f"sqlite:///{tmp_path}/mlruns.db",
                        data_dirs={"synthetic": small_synthetic})
    spec = get_dataset("synthetic")
    corpus = open_corpus(settings, spec)
    manifest, folds = corpus.manifest, corpus.folds
    labels = dict(zip(manifest.ids, (manifest.classes.index(x) for x in manifest.table["label"]), strict=True))
    config = E2EConfig(epochs=2)
    run = start_run(settings, spec, manifest, folds, folds, config, tmp_path / "clips-0123abcd.npz", 1, False)
    assert mlflow.get_run(run.parent_id).info.status == "RUNNING"
    rng = np.random.default_rng(0)
    for fold in folds:
        scored = {}
        for part, ids in (("test", fold.test), ("val", fold.val)):
            truth = np.array([labels[i] for i in ids])
            probabilities = rng.dirichlet(np.ones(len(manifest.classes)), size=len(ids))
            probabilities[np.arange(len(ids)), truth] += 0.5  # better than chance
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            scored[part] = ({"ids": list(ids), "labels": truth, "probabilities": probabilities},
                            score(truth, probabilities.argmax(axis=1), manifest.classes))
        run.add_fold(fold.name, scored["test"][1], scored["test"][0], scored["val"][1],
                     {"best_epoch": 1, "epochs_trained": 2})
    outcome = run.finish(12.5, {"folds": [{"fold": f.name, "checkpoint": f"/ckpt/{f.name}"} for f in folds]})

    parent = mlflow.get_run(run.parent_id)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["method"] == METHOD and tags["harness.role"] == "parent" and tags["dataset"] == "synthetic"
    assert tags["features"] == "audio=e2e-logmel:clips-0123abcd,video=e2e-frame:clips-0123abcd"
    assert "2 epochs" in tags["harness.setting_label"] and "weights video random init" in tags["harness.setting_label"]
    assert parent.data.metrics["test_uar_mean"] == pytest.approx(outcome.summary()["uar_mean"])
    assert parent.data.params["clips.frame_size"] == "32" and parent.data.params["n_trials"] == "1"
    folds_json = mlflow.artifacts.load_dict(f"runs:/{run.parent_id}/folds.json")
    assert folds_json["fold2"]["notes"] == {"best_epoch": 1.0, "epochs_trained": 2.0}
    assert folds_json["fold2"]["test"] == pytest.approx(outcome.fold_scores[2].headline())
    trials = mlflow.search_runs(experiment_ids=[run.experiment_id], output_format="list",
                                filter_string="tags.`harness.role` = 'trial'")
    assert len(trials) == 1 and trials[0].data.metrics["val_uar_mean"] == pytest.approx(
        outcome.trials[0].val_mean["uar"])

    board = render(settings.tracking_uri, settings.experiment, tmp_path / "reports", figures=False)
    (row,) = board.table.to_dict("records")
    assert row["method"] == METHOD and row["folds"] == 4 and row["ci_low"] <= row["uar_mean"] <= row["ci_high"]

    # another e2e configuration (here: another front end) is another setting, so it never replaces this one
    other = start_run(settings, spec, manifest, folds, folds, E2EConfig(epochs=2, clips=ClipSettings(front_end="stft")),
                      tmp_path / "clips-4567.npz", 1, False)
    assert other.tags.setting != run.tags.setting and "stft audio" in other.tags.setting_label
    one_fold = start_run(settings, spec, manifest, folds, folds[:1], config, tmp_path / "clips-0123abcd.npz", 1, False)
    assert one_fold.tags.setting != run.tags.setting and one_fold.tags.setting_label.endswith("folds fold0 only")
    other.fail("test: not trained")
    one_fold.fail("test: not trained")
    assert mlflow.get_run(other.parent_id).info.status == "FAILED"


# ---------------------------------------------------------------- MLflow and the report, through `harness e2e`
# `harness run` (audio-svm, one trial) and `harness e2e` (tiny, 1 epoch, 1 worker, all 4 folds) once per module.


def _cli(argv: list[str]) -> int:
    from harness.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def work(tmp_path_factory, small_synthetic) -> dict[str, Path | str]:
    root = tmp_path_factory.mktemp("e2e-leaderboard")
    return {"corpus": small_synthetic, "workspace": root / "ws", "uri": f"sqlite:///{root}/mlruns.db",
            "reports": root / "reports"}


def _flags(work: dict) -> list[str]:
    return ["--data-dir", f"synthetic={work['corpus']}", "--workspace", str(work["workspace"]),
            "--tracking-uri", str(work["uri"])]


@pytest.fixture(scope="module")
def both_results(ray_session, work) -> dict:
    """`harness run` (audio-svm, one trial) and `harness e2e` (tiny, 1 epoch, 1 worker) on the same corpus."""
    assert _cli(["run", "--method", "audio-svm", "--dataset", "synthetic", "--trials", "1", "--no-report",
                 *_flags(work)]) == 0
    assert _cli(["e2e", "--dataset", "synthetic", "--epochs", "1", "--workers", "1", "--cpu", "--batch-size", "8",
                 *_flags(work)]) == 0
    report = json.loads((work["workspace"] / "e2e" / "e2e-synthetic-tiny-test.json").read_text())
    return {"report": report}


def _parents(work: dict, method: str):
    import mlflow

    mlflow.set_tracking_uri(str(work["uri"]))
    runs = mlflow.search_runs(experiment_names=["mer-benchmark"], output_format="pandas",
                              filter_string=f"tags.method = '{method}' and tags.`harness.role` = 'parent'")
    return runs


@pytest.mark.slow  # about 3 min on 2 CPUs: Ray Train starts once per fold
def test_the_e2e_result_is_a_finished_parent_run_tagged_like_a_run_result(both_results, work) -> None:
    import mlflow

    e2e, run = _parents(work, METHOD), _parents(work, "audio-svm")
    assert len(e2e) == 1 and len(run) == 1
    parent = e2e.iloc[0]
    assert parent["status"] == "FINISHED"
    # every tag a `harness run` result carries, with the values the e2e result has
    assert {c for c in run.columns if c.startswith("tags.") and not c.startswith("tags.mlflow")} <= set(e2e.columns)
    assert parent["tags.dataset"] == "synthetic" and parent["tags.family"] == "neural"
    assert parent["tags.modalities"] == "audio,video"
    assert parent["tags.protocol"] == run.iloc[0]["tags.protocol"] == "speaker-kfold(k=4)"
    assert parent["tags.speaker_independent"] == "True" and parent["tags.headline_metric"] == "uar"
    assert parent["tags.harness.fingerprint"] and parent["tags.git_commit"] not in ("", "unknown")
    label = parent["tags.harness.setting_label"]
    for words in ("end to end from clips", "backbone tiny", "logmel audio", "frame crops 32px", "1 epochs"):
        assert words in label
    assert parent["tags.harness.setting"] != run.iloc[0]["tags.harness.setting"]
    # the same clips, labels and folds as `harness run`: the e2e setting names the pipeline's evaluation digest
    from harness.config import Settings
    from harness.datasets import get_dataset
    from harness.prepare import prepare_dataset

    settings = Settings(workspace=work["workspace"], tracking_uri=str(work["uri"]),
                        data_dirs={"synthetic": work["corpus"]})
    prepared = prepare_dataset(settings, get_dataset("synthetic"), False, {"audio"})
    record = mlflow.artifacts.load_dict(f"runs:/{parent['run_id']}/settings.json")
    assert record["e2e_setting"]["evaluation"] == prepared.evaluation_digest
    assert record["e2e"]["backbone"] == "tiny" and record["e2e"]["workers"] == 1


@pytest.mark.slow  # about 3 min on 2 CPUs: Ray Train starts once per fold
def test_per_fold_scores_predictions_and_best_epochs_reach_mlflow(both_results, work) -> None:
    import mlflow
    import pandas as pd

    parent = _parents(work, METHOD).iloc[0]
    report = both_results["report"]
    assert report["mlflow_run_id"] == parent["run_id"] and report["method"] == METHOD
    folds = mlflow.artifacts.load_dict(f"runs:/{parent['run_id']}/folds.json")
    assert sorted(folds) == ["fold0", "fold1", "fold2", "fold3"]
    by_fold = {f["fold"]: f for f in report["folds"]}
    for name, fold in folds.items():
        assert fold["test"] == pytest.approx(by_fold[name]["test"])  # the fold's one test scoring
        assert set(fold["validation"]) == {"accuracy", "uar", "macro_f1", "weighted_f1"}
        assert fold["notes"] == {"best_epoch": 0.0, "epochs_trained": 1.0}  # one epoch: epoch 0 is the best
    uars = [folds[f]["test"]["uar"] for f in sorted(folds)]
    assert parent["metrics.test_uar_mean"] == pytest.approx(np.mean(uars))
    assert parent["metrics.test_uar_std"] == pytest.approx(report["test_summary"]["uar_std"])
    assert parent["params.n_folds"] == "4" and parent["params.backbone"] == "tiny"
    predictions = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=parent["run_id"],
                                                                   artifact_path="predictions.csv"))
    from harness.datasets.synthetic import scan

    manifest = scan(work["corpus"])
    assert sorted(predictions["clip_id"]) == sorted(manifest.ids)  # every clip tested once over the folds
    truth = manifest.table.set_index("clip_id")
    assert (predictions["y_true"].to_numpy() == truth.loc[predictions["clip_id"], "label"].to_numpy()).all()
    assert (predictions["group"].to_numpy() == truth.loc[predictions["clip_id"], "speaker"].astype(str)).all()
    assert np.allclose(predictions[[f"p_{c}" for c in manifest.classes]].sum(axis=1), 1.0, atol=1e-5)
    confusion = mlflow.artifacts.load_dict(f"runs:/{parent['run_id']}/confusion.json")
    assert np.asarray(confusion["matrix"]).sum() == len(manifest.ids) and len(confusion["by_fold"]) == 4
    e2e_json = mlflow.artifacts.load_dict(f"runs:/{parent['run_id']}/e2e.json")
    assert [f["checkpoint"] for f in e2e_json["folds"]] == [f["checkpoint"] for f in report["folds"]]


@pytest.mark.slow  # about 3 min on 2 CPUs: Ray Train starts once per fold
def test_the_report_lists_the_e2e_result_beside_the_run_result(both_results, work) -> None:
    from harness.report.leaderboard import render

    board = render(str(work["uri"]), "mer-benchmark", work["reports"], figures=False)
    rows = board.table[board.table["dataset"] == "synthetic"].set_index("method")
    assert {METHOD, "audio-svm"} <= set(rows.index)
    e2e = rows.loc[METHOD]
    assert e2e["folds"] == 4 and 0.0 <= e2e["uar_mean"] <= 1.0 and not np.isnan(e2e["ci_low"])
    assert "end to end from clips" in e2e["setting_label"]
    markdown = board.paths["md"].read_text()
    assert f"`{METHOD}`" in markdown and "`audio-svm`" in markdown


@pytest.mark.slow  # about 3 min on 2 CPUs: Ray Train starts once per fold
def test_a_failed_e2e_run_is_marked_failed(both_results, work, monkeypatch) -> None:
    """An error after the parent run is created (here: training a fold raises; a resume path that is no
    checkpoint is refused before the run exists) marks it FAILED, and the report, which reads FINISHED runs only,
    keeps showing the finished one."""
    from harness.e2e import train

    def broken(*args, **kwargs):
        raise RuntimeError("the worker group died")

    monkeypatch.setattr(train, "run_e2e", broken)
    with pytest.raises(RuntimeError, match="the worker group died"):
        _cli(["e2e", "--dataset", "synthetic", "--epochs", "1", "--workers", "1", "--cpu", "--run-name", "broken",
              *_flags(work)])
    runs = _parents(work, METHOD)
    failed = runs[runs["status"] == "FAILED"]
    assert len(failed) == 1 and "the worker group died" in failed.iloc[0]["tags.error"]
    assert (runs["status"] == "FINISHED").sum() == 1
    report = json.loads((work["workspace"] / "e2e" / "broken-test.json").read_text())
    assert report["error"].startswith("RuntimeError") and report["mlflow_run_id"] == failed.iloc[0]["run_id"]
