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
