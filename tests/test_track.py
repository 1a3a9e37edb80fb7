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


def test_a_result_reads_back_as_it_was_written(tmp_path) -> None:
    """The results contract both ways: what `finish_result` writes, `finished_results` reads back into the same
    ResultTags and the same outcome summary (no tag or metric name spelled by the reader)."""
    import numpy as np
    import pandas as pd

    from harness.metrics import score
    from harness.results import MethodOutcome, ResultTags, TrialRecord

    experiment_id = track.use_experiment(f"sqlite:///{tmp_path}/mlruns.db", "roundtrip")
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
    track.finish_result(parent, outcome, classes, models={})
    (stored,) = track.finished_results(experiment_id)
    assert stored.run_id == parent and stored.tags == tags
    assert stored.summary == outcome.summary()
