"""robustness.run end to end on the built-in corpus: a finished parent run (the results contract: tags and a
models.pkl of validated fold models) gets missing-modality and corrupted-audio children, reused on a rerun."""

from __future__ import annotations

import pickle

import pytest
from fixtures.robustness_data import fit_models

from harness.robustness.run import feature_mismatch


def test_feature_mismatch_names_the_changed_modality():
    keys = {"audio": "egemaps:aaa", "video": "frame-grid:bbb"}
    assert feature_mismatch("audio=egemaps:aaa,video=frame-grid:bbb", keys) == ""
    assert "video" in feature_mismatch("audio=egemaps:aaa,video=frame-grid:old", keys)


def test_a_result_on_a_card_subset_is_reopened_with_that_subset():
    from harness.config import Settings
    from harness.datasets import get_dataset
    from harness.robustness.run import _spec

    song = _spec(Settings(protocols={"ravdess": "av-crossattention-10fold"}), "ravdess@song")
    assert song.classes == ("neutral", "calm", "happy", "sad", "angry", "fearful")
    assert song.protocol.label().startswith("av-crossattention-10fold: ")
    assert _spec(Settings(), "ravdess").classes == get_dataset("ravdess").classes


@pytest.mark.slow
def test_run_robustness_logs_children_and_reuses_them(small_synthetic, tmp_path, ray_session):
    import mlflow

    from harness.config import Settings
    from harness.datasets import get_dataset
    from harness.prepare import prepare_dataset
    from harness.results import CONDITION_TAG, MODELS_ARTIFACT, ROLE_TAG
    from harness.robustness.run import RobustnessOptions, robustness_results, run

    settings = Settings(workspace=tmp_path / "ws", data_dirs={"synthetic": small_synthetic},
                        tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}", num_cpus=2)
    prepared = prepare_dataset(settings, get_dataset("synthetic"), False)
    models = fit_models("late-average-svm", prepared.data, prepared.folds, C=1.0)
    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment_id = mlflow.create_experiment(settings.experiment)
    features = ",".join(f"{m}={k}" for m, k in sorted(prepared.feature_keys.items()))
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        mlflow.set_tags({ROLE_TAG: "parent", "dataset": "synthetic", "method": "late-average-svm",
                         "harness.fingerprint": "fp-test", "features": features})
        (tmp_path / MODELS_ARTIFACT).write_bytes(pickle.dumps(models))
        mlflow.log_artifact(str(tmp_path / MODELS_ARTIFACT))
    with mlflow.start_run(experiment_id=experiment_id):  # an end-to-end result: no registered method to re-score
        mlflow.set_tags({ROLE_TAG: "parent", "dataset": "synthetic", "method": "av-xattn-e2e-tiny",
                         "harness.fingerprint": "fp-e2e", "features": features})

    options = RobustnessOptions(missing=True, corrupt=("white-noise",), rates=(0.0, 0.5), seeds=(0,),
                                levels={"white-noise": [10.0, 0.0]})
    report = run(settings, options)
    assert not report.failed and len(report.ran) == 2, report
    assert any(s.startswith("av-xattn-e2e-tiny@synthetic: not a registered method") for s in report.skipped)
    missing = report.frame("missing")
    assert set(missing["condition"]) == {"clean", "absent", "random"} and set(missing["method"]) == {"late-average-svm"}
    corrupt = report.frame("corrupt")
    assert sorted(corrupt["level"].dropna().unique()) == [0.0, 10.0]
    children = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list",
                                  filter_string=f"tags.`{ROLE_TAG}` = 'robustness'")
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags[CONDITION_TAG] for c in children} == {"missing", "corrupt:white-noise"}

    again = run(settings, options)
    assert again.ran == [] and len(again.reused) == 2
    assert len(robustness_results(experiment_id, "corrupt:")) == len(corrupt)
