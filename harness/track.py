"""MLflow tracking: one parent run per (method, dataset), one child run per Tune trial.

Parent runs carry the chosen configuration, the per-fold test metrics and their mean/std, the predictions of
every fold (`predictions.csv`), the pooled confusion matrix (`confusion.json` and a PNG) and the tags the report
and reruns need (dataset, method, protocol, feature keys, git commit, run fingerprint). Child runs carry each
trial's configuration and validation metrics, so the whole search is inspectable in the MLflow UI.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from harness.metrics import HEADLINE_METRICS
from harness.plots import confusion_figure
from harness.tune import MethodOutcome

ROLE_TAG = "harness.role"
FINGERPRINT_TAG = "harness.fingerprint"
FAILURES_ARTIFACT = "feature_failures.csv"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def use_experiment(tracking_uri: str, experiment: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    return found.experiment_id if found else mlflow.create_experiment(experiment)


def finished_run(experiment_id: str, fingerprint: str) -> Any | None:
    """The newest finished parent run with this fingerprint (same inputs, same config), if any."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[experiment_id], output_format="list", max_results=1, order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}' and attributes.status = 'FINISHED'",
    )
    return runs[0] if runs else None


def _flat_params(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    return {f"{prefix}{k}": (json.dumps(v, default=str) if isinstance(v, dict | list | tuple) else str(v))[:500]
            for k, v in values.items()}


def log_outcome(experiment_id: str, outcome: MethodOutcome, classes: list[str], tags: dict[str, str],
                settings_record: dict[str, Any], fingerprint: str, failures: pd.DataFrame | None = None) -> str:
    """Write the parent run (and its trial children); return the parent run id.

    `failures` (clips whose features could not be extracted) is stored with the run, so the report can list them.
    """
    import mlflow

    summary = outcome.summary()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{outcome.method}@{outcome.dataset}") as parent:
        mlflow.set_tags({**tags, ROLE_TAG: "parent", FINGERPRINT_TAG: fingerprint, "git_commit": git_commit(),
                         "selection_metric": outcome.selection_metric})
        mlflow.log_params(_flat_params("", outcome.best_config))
        mlflow.log_params(_flat_params("settings.", settings_record))
        mlflow.log_params({"n_trials": len(outcome.trials), "n_folds": len(outcome.fold_names)})
        metrics = {f"test_{k}": v for k, v in summary.items()}
        for fold, scores in zip(outcome.fold_names, outcome.fold_scores, strict=True):
            metrics.update({f"test_{m}_{fold}": v for m, v in scores.headline().items()})
        best_trial = max(outcome.trials, key=lambda t: t.val_mean[outcome.selection_metric])
        metrics.update({f"val_{m}_mean": v for m, v in best_trial.val_mean.items()})
        metrics.update({k.replace("/", "."): v for k, v in outcome.notes.items()})
        metrics["seconds"] = outcome.seconds
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            outcome.predictions.to_csv(folder / "predictions.csv", index=False)
            if failures is not None and len(failures):
                failures.to_csv(folder / FAILURES_ARTIFACT, index=False)
            pooled = outcome.pooled_scores(classes)
            pooled.per_class.to_csv(folder / "per_class.csv")
            (folder / "confusion.json").write_text(json.dumps(
                {"classes": classes, "matrix": outcome.pooled_confusion().tolist(),
                 "by_fold": {f: s.confusion.tolist() for f, s in zip(outcome.fold_names, outcome.fold_scores,
                                                                    strict=True)}}))
            (folder / "config.json").write_text(json.dumps(
                {"best_config": outcome.best_config, "settings": settings_record, "tags": tags}, indent=2,
                default=str))
            confusion_figure(outcome.pooled_confusion(), classes,
                             f"{outcome.method} on {outcome.dataset} (all test folds)", folder / "confusion.png")
            mlflow.log_artifacts(str(folder))
        for number, trial in enumerate(outcome.trials):
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{number}", nested=True):
                mlflow.set_tags({ROLE_TAG: "trial", "dataset": outcome.dataset, "method": outcome.method})
                mlflow.log_params(_flat_params("", trial.config))
                trial_metrics = {f"val_{m}_mean": v for m, v in trial.val_mean.items()}
                for fold, values in trial.val_by_fold.items():
                    trial_metrics.update({f"val_{m}_{fold}": values[m] for m in HEADLINE_METRICS})
                mlflow.log_metrics(trial_metrics)
        return parent.info.run_id
