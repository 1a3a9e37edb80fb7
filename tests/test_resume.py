"""Resume that really resumes (issue 20): only a complete result is reused, and an interrupted run's next run
computes exactly what is missing."""

from __future__ import annotations

from harness import track
from harness.metrics import HEADLINE_METRICS
from harness.results import FINGERPRINT_TAG, PARENT, ROLE_TAG, TRIAL
from harness.results import test_metric as metric_name


def _run(client, experiment_id: str, role: str, fingerprint: str, status: str | None,
         metrics: dict[str, float] | None = None) -> str:
    run_id = client.create_run(experiment_id, tags={ROLE_TAG: role, FINGERPRINT_TAG: fingerprint}).info.run_id
    for name, value in (metrics or {}).items():
        client.log_metric(run_id, name, value)
    if status is not None:
        client.set_terminated(run_id, status=status)
    return run_id


def test_only_a_finished_parent_with_every_test_score_is_reused(tmp_path) -> None:
    """The regression: a trial child run carries its result's fingerprint and is FINISHED as soon as its folds
    are done, so an interrupted search passed for a finished result and its method was silently dropped."""
    import mlflow

    experiment_id = track.use_experiment(f"sqlite:///{tmp_path}/mlruns.db", "resume")
    client = mlflow.MlflowClient()
    scores = {metric_name(m, stat=s): 0.5 for m in HEADLINE_METRICS for s in ("mean", "std")}
    _run(client, experiment_id, PARENT, "fp", None)  # the interrupted parent, left RUNNING
    _run(client, experiment_id, TRIAL, "fp", "FINISHED", {"val_uar_mean": 0.9})  # its first finished trial
    assert track.finished_run(experiment_id, "fp") is None
    _run(client, experiment_id, PARENT, "fp", "KILLED", scores)  # closed as stale by the next start
    _run(client, experiment_id, PARENT, "fp", "FAILED", scores)
    partial = dict(scores)
    partial.pop(metric_name("macro_f1", stat="std"))
    _run(client, experiment_id, PARENT, "fp", "FINISHED", partial)  # finished without every score: not complete
    assert track.finished_run(experiment_id, "fp") is None
    complete = _run(client, experiment_id, PARENT, "fp", "FINISHED", scores)
    assert track.finished_run(experiment_id, "fp").info.run_id == complete
    assert track.finished_run(experiment_id, "other") is None
