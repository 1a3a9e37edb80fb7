"""MLflow writing details that the end-to-end tests do not isolate."""

from __future__ import annotations

from harness import track


def test_code_version_from_the_image_when_there_is_no_checkout(monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_GIT_COMMIT", "0123abcd")
    assert track.git_commit() == "0123abcd"
    monkeypatch.delenv("HARNESS_GIT_COMMIT")
    assert track.git_commit() != "0123abcd"  # the checkout's HEAD (or "unknown" outside git)


def test_stale_running_runs_are_marked_killed(tmp_path) -> None:
    import mlflow

    experiment_id = track.use_experiment(f"sqlite:///{tmp_path}/mlruns.db", "stale")
    client = mlflow.MlflowClient()
    left = client.create_run(experiment_id).info.run_id  # a parent a killed driver left RUNNING
    done = client.create_run(experiment_id).info.run_id
    client.set_terminated(done)
    assert track.close_stale_runs(experiment_id) == 1
    assert client.get_run(left).info.status == "KILLED" and client.get_run(done).info.status == "FINISHED"
    assert track.close_stale_runs(experiment_id) == 0


def _write_result(uri: str):
    """One result written as `harness run` writes it (start_result, finish_result); returns (experiment id, parent
    id, tags, outcome)."""
    import numpy as np
    import pandas as pd

    from harness.metrics import score
    from harness.results import MethodOutcome, ResultTags, TrialRecord

    experiment_id = track.use_experiment(uri, "roundtrip")
    tags = ResultTags(dataset="ravdess", method="audio-svm", family="classical", modalities="audio",
                      protocol="loso", speaker_independent="True", features="audio=egemaps:abc",
                      feature_failures="0", headline_metric="uar", selection_metric="uar", setting="s1",
                      setting_label="words", fingerprint="fp1", git_commit="c0ffee", inputs="",
                      contamination="yes: audio=toy (trained on ravdess)")
    rng = np.random.default_rng(0)
    folds = ["f1", "f2"]
    truths = [rng.integers(0, 3, 20) for _ in folds]
    guesses = [np.where(rng.random(20) < 0.6, t, rng.integers(0, 3, 20)) for t in truths]
    classes = ["a", "b", "c"]
    scores = [score(t, g, classes) for t, g in zip(truths, guesses, strict=True)]
    predictions = pd.concat([pd.DataFrame({"fold": f, "clip_id": [f"{f}-{i}" for i in range(20)], "group": "s",
                                           "y_true": t, "y_pred": g})
                             for f, t, g in zip(folds, truths, guesses, strict=True)], ignore_index=True)
    trial = TrialRecord(0, {"C": 1.0}, {f: s.headline() for f, s in zip(folds, scores, strict=True)})
    outcome = MethodOutcome("audio-svm", "ravdess", "uar", {"C": 1.0}, [trial], folds, scores, predictions)
    parent = track.start_result(experiment_id, tags, {"seed": 0}, {"digest": "d", "n_clips": 40, "source": "x"})
    track.finish_result(parent, outcome, classes, models={"f1": "model-1"})
    return experiment_id, parent, tags, outcome


def test_a_result_reads_back_as_it_was_written(tmp_path) -> None:
    """The results contract both ways: what `finish_result` writes, `finished_results` reads back into the same
    ResultTags and the same outcome summary (no tag or metric name spelled by the reader)."""
    experiment_id, parent, tags, outcome = _write_result(f"sqlite:///{tmp_path}/mlruns.db")
    (stored,) = track.finished_results(experiment_id)
    assert stored.run_id == parent and stored.tags == tags and stored.experiment_id == experiment_id
    assert stored.summary == outcome.summary()
    assert stored.params["C"] == "1.0" and stored.params["n_folds"] == "2"
    assert track.fold_models(parent) == {"f1": "model-1"}


def test_the_report_reads_a_result_as_it_was_written(tmp_path) -> None:
    """The report's reader (`leaderboard.collect`, `read_run`) goes through track: its row carries the written
    tags and scores, and the run's predictions come back clip for clip."""
    import pandas as pd

    from harness.report.leaderboard import collect, read_run

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    experiment_id, parent, tags, outcome = _write_result(uri)
    (row,) = collect(uri, "roundtrip").to_dict("records")
    assert (row["dataset"], row["method"], row["setting"], row["setting_label"], row["protocol"], row["features"],
            row["git_commit"], row["contamination"]) == (tags.dataset, tags.method, tags.setting, tags.setting_label,
                                                         tags.protocol, tags.features, tags.git_commit,
                                                         tags.contamination)
    assert {k: row[k] for k in outcome.summary()} == outcome.summary()
    assert row["run_id"] == parent and row["experiment_id"] == experiment_id and row["folds"] == 2
    assert row["config"] == '{"C": "1.0", "refit": "false"}'
    run = read_run(parent)
    assert run.classes == ["a", "b", "c"] and run.failures.empty
    pd.testing.assert_frame_equal(run.predictions, outcome.predictions.astype({"fold": str, "clip_id": str}),
                                  check_dtype=False)
    assert collect(uri, "no-such-experiment").empty
