"""MLflow tracking: the only module that writes or reads runs, through the names in `harness.results`.

A (method, dataset) result is a parent run, created when the search plans it (status RUNNING), with one child
run per sampled configuration written as soon as that configuration's last fold finishes (so the MLflow UI shows
the search while it runs), and finished with the test scores, predictions, confusion matrix and fold models.
A driver killed mid-search leaves RUNNING parents behind; `close_stale_runs` marks them KILLED on the next start,
and the report only ever reads FINISHED parents.

Every MLflow call of the harness is here, readers included: the report reads finished results as typed rows
(`finished_results` -> `StoredResult`, tags through `ResultTags.from_tags`) and their files (`result_files`), and
`harness robustness` writes and reads its evaluation children (`log_evaluation`, `stored_evaluation`,
`finished_evaluations`) and the fold models it re-scores (`fold_models`). So do the touches that make the MLflow
3.x UI useful: the experiment tagged as model training (`prepare_experiment`; without it the UI opens on its
GenAI overview), the corpus as each parent's dataset input (`log_dataset_input`), and a shared runs-table view
with the headline metrics as columns (`share_runs_view`, `runs_table_url`).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import (
    CONDITION_TAG,
    FAILURES_ARTIFACT,
    FINGERPRINT_TAG,
    MODELS_ARTIFACT,
    PARENT,
    PREDICTIONS_ARTIFACT,
    ROBUSTNESS,
    ROBUSTNESS_FINGERPRINT_TAG,
    ROBUSTNESS_RECORD_ARTIFACT,
    ROBUSTNESS_TABLE_ARTIFACT,
    ROLE_TAG,
    TRIAL,
    MethodOutcome,
    ResultTags,
    TrialRecord,
    test_metric,
    val_metric,
)

__all__ = ["FAILURES_ARTIFACT", "ROLE_TAG", "use_experiment", "finished_run", "close_stale_runs", "start_result",
           "log_trial", "finish_result", "fail_result", "git_commit", "acquire_lease", "release_lease", "LeaseHeld",
           "StoredResult", "finished_results", "find_experiment", "result_files", "fold_models", "StoredEvaluation",
           "log_evaluation", "stored_evaluation", "finished_evaluations", "prepare_experiment", "log_dataset_input",
           "share_runs_view", "runs_table_url", "load_mlflow"]


def git_commit() -> str:
    """The code version a result was produced by: `HARNESS_GIT_COMMIT` (set in the cluster image, which has no
    .git), else the checkout's HEAD, with "-dirty" when tracked files are modified."""
    import os

    if os.environ.get("HARNESS_GIT_COMMIT"):
        return os.environ["HARNESS_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=here).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _client():
    _import_sql_store()
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _import_sql_store() -> None:
    """Import MLflow's SQL tracking store with its one known warning silenced: importing it runs SQLAlchemy's
    `configure_mappers`, which warns that MLflow's mappings use the deprecated ``noload`` strategy (MLflow's
    business, not the researcher's; it reached the console or warnings.log on every command). Imported once per
    process, so the warning cannot come back later from the same place."""
    import sys
    import warnings

    if "mlflow.store.tracking.sqlalchemy_store" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*``noload`` loader strategy is deprecated",
                                category=DeprecationWarning)
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


RUNS_VIEW = "harness"  # the shared runs-table view the UI link opens (`share_runs_view`)
FILTER_SETTINGS = ("seed", "trials", "speaker_norm", "preset", "refit")  # settings logged as params
SETTINGS_ARTIFACT = "settings.json"  # every resolved setting
FOLDS_ARTIFACT = "folds.json"  # per-fold scores and fit notes (a few headline metrics stay as metrics)
ARTIFACT_BARS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # MLflow's own switch for its transfer bars


def load_mlflow() -> None:
    """Import MLflow now (seconds on a loaded machine), so a time bound started afterwards measures the tracking
    store and not the import (`harness.cli.preflight`)."""
    import mlflow  # noqa: F401

    _import_sql_store()


def find_experiment(tracking_uri: str, experiment: str) -> Any:
    """The experiment named so in the tracking store (deleted ones included, with their lifecycle stage), or None."""
    import mlflow

    _import_sql_store()
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.MlflowClient().get_experiment_by_name(experiment)


def use_experiment(tracking_uri: str, experiment: str, headline_metrics: tuple[str, ...] = ("uar",)) -> str:
    """The experiment's id (created on first use), prepared so the MLflow UI opens on its training runs with the
    headline test and validation scores as columns."""
    import mlflow

    found = find_experiment(tracking_uri, experiment)
    experiment_id = found.experiment_id if found else mlflow.create_experiment(experiment)
    prepare_experiment(experiment_id, description="Multimodal emotion recognition benchmark (harness run)")
    metrics = [name for m in headline_metrics for name in (test_metric(m), test_metric(m, stat="std"),
                                                           val_metric(m))]
    share_runs_view(experiment_id, metrics, ["n_trials", "n_folds"], key=RUNS_VIEW)
    return experiment_id


def finished_run(experiment_id: str, fingerprint: str) -> Any | None:
    """The newest complete result with this fingerprint (same inputs, same config), if any: a *parent* run that is
    FINISHED and holds every test score. Trial child runs carry the same fingerprint and are FINISHED as soon as
    their folds are done, so without the role filter an interrupted search would pass for a finished result (and
    its method would silently drop out of the leaderboard)."""
    runs = _finished_parents(experiment_id, f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}' and ")
    return next((run for run in runs if _has_test_scores(run)), None)


def _finished_parents(experiment_id: str, condition: str = "") -> list[Any]:
    """FINISHED parent runs, newest first (`condition`: a further MLflow filter clause ending in "and ")."""
    import mlflow

    return mlflow.search_runs(experiment_ids=[experiment_id], output_format="list",
                              filter_string=f"{condition}tags.`{ROLE_TAG}` = '{PARENT}' and "
                                            "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])


def _has_test_scores(run: Any) -> bool:
    """Whether a parent run holds the mean and spread of every headline test metric (what `finish_result` logs
    before it marks the run FINISHED)."""
    from harness.metrics import HEADLINE_METRICS

    logged = run.data.metrics
    return all(test_metric(m, stat=stat) in logged for m in HEADLINE_METRICS for stat in ("mean", "std"))


LEASE_TAG = "harness.driver"  # experiment tag: the driver that holds the experiment (one driver per experiment)
FOREIGN_LEASE_HOURS = 24.0  # a lease of another host cannot be checked; after this long it is taken as stale


class LeaseHeld(RuntimeError):
    """Another live harness driver (`harness run`, `e2e` or `robustness`) holds this experiment; the message names
    it and the way out."""


def _alive(lease: dict[str, Any]) -> bool:
    """Whether the driver a lease names may still run: on this host, its process exists; on another, the lease is
    younger than FOREIGN_LEASE_HOURS (a process there cannot be checked from here)."""
    import os
    import socket

    if lease.get("host") != socket.gethostname():
        return time.time() - float(lease.get("since", 0)) < FOREIGN_LEASE_HOURS * 3600
    try:
        os.kill(int(lease["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True  # a process we may not signal exists
    return True


def acquire_lease(experiment_id: str, experiment: str, command: str) -> dict[str, Any]:
    """Take the experiment for this process, or raise LeaseHeld naming the live driver that holds it.

    Why: a second driver's start marked the first one's live parents KILLED (`close_stale_runs`) and computed the
    same results twice. A lease whose process is gone (killed, crashed) does not block. Written, then read back:
    of two drivers starting at the same moment, the one whose lease is not read back stops."""
    import os
    import socket

    client = _client()
    held = client.get_experiment(experiment_id).tags.get(LEASE_TAG)
    if held:
        try:
            lease = json.loads(held)
        except json.JSONDecodeError:
            lease = {}
        if lease and lease.get("pid") != os.getpid() and _alive(lease):
            raise LeaseHeld(
                f"experiment {experiment!r} is in use by another harness command (pid {lease.get('pid')} on "
                f"{lease.get('host')}, since {time.strftime('%H:%M:%S', time.localtime(lease.get('since', 0)))}: "
                f"{lease.get('command', '?')}); wait for it, or give this command its own --experiment NAME")
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": command[:200],
            "token": os.urandom(8).hex()}
    client.set_experiment_tag(experiment_id, LEASE_TAG, json.dumps(mine))
    read = json.loads(client.get_experiment(experiment_id).tags.get(LEASE_TAG) or "{}")
    if read.get("token") != mine["token"]:
        raise LeaseHeld(f"experiment {experiment!r} was taken by another harness command starting at the same moment "
                        f"(pid {read.get('pid')} on {read.get('host')}); give this command its own --experiment "
                        "NAME")
    return mine


def release_lease(experiment_id: str, lease: dict[str, Any]) -> None:
    """Give the experiment back, if this process still holds it (best effort: a stale lease does not block)."""
    try:
        client = _client()
        held = json.loads(client.get_experiment(experiment_id).tags.get(LEASE_TAG) or "{}")
        if held.get("token") == lease.get("token"):
            client.set_experiment_tag(experiment_id, LEASE_TAG, "")
    except Exception:  # the store went away while we ran: the lease is stale once this process ends
        pass


def close_stale_runs(experiment_id: str) -> int:
    """Mark RUNNING runs left by a killed driver as KILLED; returns how many. Safe because one driver holds an
    experiment at a time (`acquire_lease`): a second `harness run` would otherwise close the first one's runs."""
    import mlflow

    client = _client()
    stale = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list",
                               filter_string="attributes.status = 'RUNNING'")
    for run in stale:
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(stale)


def _flat_params(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    return {f"{prefix}{k}": (json.dumps(v, default=str) if isinstance(v, dict | list | tuple) else str(v))[:500]
            for k, v in values.items()}


def _log_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow's batch limit
        client.log_batch(run_id, params=items[start:start + 100])


def _log_metrics(client, run_id: str, metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start:start + 1000])


def start_result(experiment_id: str, tags: ResultTags, settings_record: dict[str, Any], corpus: dict[str, Any]
                 ) -> str:
    """Create the RUNNING parent run of one (method, dataset) result; returns its id. `corpus` (digest, source,
    n_clips) becomes the run's MLflow dataset input, so the UI's dataset column names the corpus and protocol."""
    client = _client()
    run = client.create_run(experiment_id, run_name=f"{tags.method}@{tags.dataset}", tags=tags.to_tags())
    # The runs table shows every param as a column: only the settings a user filters on are params; all of
    # them are in settings.json.
    _log_params(client, run.info.run_id, _flat_params("settings.", {k: settings_record[k] for k in FILTER_SETTINGS
                                                                    if k in settings_record}))
    client.log_dict(run.info.run_id, json.loads(json.dumps(settings_record, default=str)), SETTINGS_ARTIFACT)
    log_dataset_input(run.info.run_id, tags.dataset, corpus["digest"], tags.protocol, corpus["source"],
                      corpus["n_clips"])
    return run.info.run_id


def log_trial(experiment_id: str, parent_id: str, tags: ResultTags, record: TrialRecord) -> None:
    """One child run per sampled configuration: its values and mean validation scores (per-fold scores, fit notes
    and ASHA's early stops in folds.json). Written in four store calls, since the driver writes one per
    configuration while it also runs the search."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = _client()
    stopped = {f: n["stopped_at_epoch"] for f, n in record.notes_by_fold.items() if "stopped_at_epoch" in n}
    run = client.create_run(experiment_id, run_name=f"trial-{record.number}",
                            tags={ROLE_TAG: TRIAL, MLFLOW_PARENT_RUN_ID: parent_id, "dataset": tags.dataset,
                                  "method": tags.method, FINGERPRINT_TAG: tags.fingerprint,
                                  "stopped_early": str(bool(stopped)).lower()})
    now = int(time.time() * 1000)
    metrics = ([Metric(val_metric(m), float(v), now, 0) for m, v in record.val_mean.items()]
               if record.val_by_fold and not stopped else [])  # a mean over some folds only would mislead
    params = [Param(k, v) for k, v in _flat_params("", record.config).items()]
    client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[RunTag("n_folds_scored",
                                                                                    str(len(record.val_by_fold)))])
    client.log_dict(run.info.run_id, {"validation": record.val_by_fold, "notes": record.notes_by_fold}, FOLDS_ARTIFACT)
    client.set_terminated(run.info.run_id)


def finish_result(parent_id: str, outcome: MethodOutcome, classes: list[str], models: dict[str, Any],
                  failures: pd.DataFrame | None = None, artifacts: dict[str, Any] | None = None,
                  test_metrics: dict[str, float] | None = None) -> None:
    """Add the test scores and artifacts to the parent run and mark it FINISHED. `artifacts`: further JSON
    artifacts (file name -> object), e.g. the end-to-end mode's report naming its fold checkpoints.
    `test_metrics`: further test scores logged as `test_<name>` (the soft-label scores of `harness.ratings`)."""
    from harness.plots import confusion_figure

    client = _client()
    summary = outcome.summary()
    best = outcome.best_trial()
    _log_params(client, parent_id, {**_flat_params("", outcome.best_config),
                                    "n_trials": str(len(outcome.trials)), "n_folds": str(len(outcome.fold_names)),
                                    "refit": str(outcome.refit).lower()})
    metrics = {f"test_{k}": v for k, v in summary.items()}
    metrics.update({val_metric(m): v for m, v in best.val_mean.items()})
    metrics["seconds"] = outcome.seconds
    metrics.update({f"test_{k}": v for k, v in (test_metrics or {}).items()})
    _log_metrics(client, parent_id, metrics)
    by_fold = {fold: {"test": scores.headline(), "validation": best.val_by_fold.get(fold, {}),
                      "notes": {k.split("/", 1)[1]: v for k, v in outcome.notes.items() if k.startswith(f"{fold}/")}}
               for fold, scores in zip(outcome.fold_names, outcome.fold_scores, strict=True)}
    client.log_dict(parent_id, by_fold, FOLDS_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        outcome.predictions.to_csv(folder / PREDICTIONS_ARTIFACT, index=False)
        if failures is not None and len(failures):
            failures.to_csv(folder / FAILURES_ARTIFACT, index=False)
        outcome.pooled_scores(classes).per_class.to_csv(folder / "per_class.csv")
        (folder / "confusion.json").write_text(json.dumps(
            {"classes": classes, "matrix": outcome.pooled_confusion().tolist(),
             "by_fold": {f: s.confusion.tolist() for f, s in zip(outcome.fold_names, outcome.fold_scores,
                                                                strict=True)}}))
        (folder / "config.json").write_text(json.dumps({"best_config": outcome.best_config}, indent=2, default=str))
        for name, value in (artifacts or {}).items():
            (folder / name).write_text(json.dumps(value, indent=2, default=str))
        (folder / MODELS_ARTIFACT).write_bytes(pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL))
        confusion_figure(outcome.pooled_confusion(), classes,
                         f"{outcome.method} on {outcome.dataset} (all test folds)", folder / "confusion.png")
        _no_transfer_bars()
        client.log_artifacts(parent_id, str(folder))
    client.set_terminated(parent_id, status="FINISHED")


def fail_result(parent_id: str, error: str) -> None:
    client = _client()
    client.set_tag(parent_id, "error", error[:5000])
    client.set_terminated(parent_id, status="FAILED")


@dataclass(frozen=True)
class StoredResult:
    """One finished result as read back, in the terms it was written in: `tags` through `ResultTags.from_tags`,
    `summary` in the keys of `MethodOutcome.summary()` (uar_mean, uar_std, ...), so a reader never spells a tag
    or metric name itself."""

    run_id: str
    tags: ResultTags
    summary: dict[str, float]
    params: dict[str, str]  # the chosen configuration, n_trials, n_folds, refit, settings.<name>
    metrics: dict[str, float]  # every logged metric by its MLflow name (test_soft_*, val_*, seconds...)
    experiment_id: str = ""


def finished_results(experiment_id: str) -> list[StoredResult]:
    """Every FINISHED parent run, newest first, as typed rows."""
    from harness.metrics import HEADLINE_METRICS

    runs = _finished_parents(experiment_id)
    keys = [f"{m}_{stat}" for m in HEADLINE_METRICS for stat in ("mean", "std")]
    return [StoredResult(run.info.run_id, ResultTags.from_tags(run.data.tags),
                         {k: run.data.metrics[f"test_{k}"] for k in keys if f"test_{k}" in run.data.metrics},
                         dict(run.data.params), dict(run.data.metrics), experiment_id) for run in runs]


def _no_transfer_bars() -> None:
    """MLflow draws a tqdm bar on stderr for each artifact download ("Downloading artifacts: 100%|...", one per
    file the report or `harness robustness` reads) and for large uploads: its own setting turns them off, so the
    console keeps the harness's lines and `Progress`. A user who sets MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR keeps
    their choice. MLflow reads the setting at each transfer, so setting it here, before one, is enough."""
    import os

    os.environ.setdefault(ARTIFACT_BARS_ENV, "false")


def result_files(run_id: str, names: Sequence[str], folder: Path) -> dict[str, Path]:
    """The named artifacts of a run, downloaded into `folder`; a name the run lacks (an older run, a cleaned
    artifact store) is left out, for the caller to report."""
    import mlflow

    _no_transfer_bars()
    found = {}
    for name in names:
        try:
            found[name] = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                                   dst_path=str(folder)))
        except Exception:  # MLflow raises several types for a missing artifact; absent is what it means here
            continue
    return found


def fold_models(run_id: str) -> dict[str, Any]:
    """A result's validated fold models (fold -> fitted method), as `finish_result` stored them. Raises when the
    run has none (a result written before models were stored)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = result_files(run_id, [MODELS_ARTIFACT], Path(tmp)).get(MODELS_ARTIFACT)
        if path is None:
            raise FileNotFoundError(f"run {run_id} has no {MODELS_ARTIFACT}")
        return pickle.loads(path.read_bytes())  # the harness wrote it into its own tracking store


@dataclass(frozen=True)
class StoredEvaluation:
    """One finished evaluation run of `harness robustness`, as read back: its keys, the tidy scores and the
    record (empty when the run logged none, or when the reader did not ask for it)."""

    run_id: str
    dataset: str
    method: str
    condition: str  # "missing", "corrupt:<name>", "cross-corpus:<train>-><test>"
    table: pd.DataFrame
    record: dict[str, Any]


def log_evaluation(experiment_id: str, parent_id: str | None, dataset: str, method: str, condition: str,
                   fingerprint: str, metrics: dict[str, float], table: pd.DataFrame, record: dict[str, Any]) -> str:
    """One finished evaluation run: a child of `parent_id` (top-level when None), its condition's mean metrics,
    the tidy table and the record as artifacts; returns its id. `fingerprint` is what `stored_evaluation` finds
    it by on the next call."""
    from mlflow.entities import Metric
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = _client()
    tags = {ROLE_TAG: ROBUSTNESS, CONDITION_TAG: condition, "dataset": dataset, "method": method,
            ROBUSTNESS_FINGERPRINT_TAG: fingerprint}
    if parent_id:
        tags[MLFLOW_PARENT_RUN_ID] = parent_id
    run = client.create_run(experiment_id, run_name=f"{condition}:{method}@{dataset}", tags=tags)
    items = [Metric(name, float(value), 0, 0) for name, value in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run.info.run_id, metrics=items[start:start + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / ROBUSTNESS_TABLE_ARTIFACT, index=False)
        (Path(tmp) / ROBUSTNESS_RECORD_ARTIFACT).write_text(json.dumps(record, indent=2, default=str))
        _no_transfer_bars()
        client.log_artifacts(run.info.run_id, tmp)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _read_table(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    if "modality" in table.columns:  # the clean condition's "" comes back from CSV as NaN
        table["modality"] = table["modality"].fillna("").astype(str)
    return table


def stored_evaluation(experiment_id: str, fingerprint: str) -> pd.DataFrame | None:
    """The tidy table of a finished evaluation run with this fingerprint, if one exists (reused, not recomputed)."""
    import mlflow

    runs = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list", max_results=1,
                              filter_string=f"tags.`{ROBUSTNESS_FINGERPRINT_TAG}` = '{fingerprint}' and "
                                            "attributes.status = 'FINISHED'")
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = result_files(runs[0].info.run_id, [ROBUSTNESS_TABLE_ARTIFACT], Path(tmp))[ROBUSTNESS_TABLE_ARTIFACT]
        return pd.read_csv(path)


def finished_evaluations(experiment_id: str, condition_prefix: str = "", table: bool = True,
                         record: bool = False) -> list[StoredEvaluation]:
    """The newest finished evaluation run per (dataset, method, condition) whose condition starts with the
    prefix, newest first, with its table and/or record read (a run without a record is left out when asked for
    records only)."""
    import mlflow

    runs = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list",
                              filter_string=f"tags.`{ROLE_TAG}` = '{ROBUSTNESS}' and attributes.status = "
                                            "'FINISHED'", order_by=["attributes.start_time DESC"])
    out, seen = [], set()
    for run in runs:
        tags = run.data.tags
        key = (str(tags.get("dataset")), str(tags.get("method")), str(tags.get(CONDITION_TAG)))
        if key in seen or not key[2].startswith(condition_prefix):
            continue
        seen.add(key)
        wanted = [name for name, on in ((ROBUSTNESS_TABLE_ARTIFACT, table), (ROBUSTNESS_RECORD_ARTIFACT, record))
                  if on]
        with tempfile.TemporaryDirectory() as tmp:
            files = result_files(run.info.run_id, wanted, Path(tmp))
            if record and not table and ROBUSTNESS_RECORD_ARTIFACT not in files:
                continue  # an empty record is not logged by every store; nothing to report for it
            frame = _read_table(files[ROBUSTNESS_TABLE_ARTIFACT]) if table else pd.DataFrame()
            read = (json.loads(files[ROBUSTNESS_RECORD_ARTIFACT].read_text())
                    if ROBUSTNESS_RECORD_ARTIFACT in files else {})
        out.append(StoredEvaluation(run.info.run_id, *key, frame, read))
    return out


# ---------------------------------------------------------------- the MLflow UI
#
# MLflow 3.x opens an experiment without a kind on its GenAI overview (traces, "No data available"), and a run
# that logged no dataset input leaves the runs table's dataset column empty; MLflow 3.17's runs table shows only
# Source, Models and Dataset until the user picks columns.

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"  # the value the 3.17 UI reads as model training
VIEW_STATE_TAG_PREFIX = "mlflow.sharedViewState."
DEFAULT_COLUMNS = ("attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`")


def prepare_experiment(experiment_id: str, description: str | None = None) -> None:
    """Mark the experiment as model training (not GenAI), and give it a description when one is passed."""
    client = _client()
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    if description:
        client.set_experiment_tag(experiment_id, "mlflow.note.content", description)


def log_dataset_input(run_id: str, name: str, digest: str, protocol: str, source: str,
                      n_clips: int | None = None) -> None:
    """Log the corpus of run `run_id` as a metadata-only dataset input (no data is copied into MLflow).

    `digest` is the manifest fingerprint (MLflow shows up to 36 characters), `protocol` the fold protocol's label
    (stored as the input's context, so two protocols on one corpus are told apart), `source` where the corpus was
    read from (a local folder or URI).
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import HTTPDatasetSource, LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    origin = HTTPDatasetSource(source) if source.startswith(("http://", "https://")) else \
        LocalArtifactDatasetSource(source)
    dataset = MetaDataset(source=origin, name=name, digest=digest[:36])
    tags = {MLFLOW_DATASET_CONTEXT: protocol[:200], "protocol": protocol,
            **({"clips": str(n_clips)} if n_clips is not None else {})}
    entry = DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[InputTag(k, v) for k, v in tags.items()])
    _client().log_inputs(run_id, datasets=[entry])


def share_runs_view(experiment_id: str, metrics: list[str], params: Sequence[str] = (), key: str = "harness"
                    ) -> str:
    """Store a runs-table view that shows `metrics` and `params` as columns; return its share key: the view is
    the experiment tag `mlflow.sharedViewState.<key>`, opened with `?viewStateShareKey=<key>` (`runs_table_url`),
    so the headline metrics show straight away."""
    columns = [*DEFAULT_COLUMNS, *(f"metrics.`{m}`" for m in metrics), *(f"params.`{p}`" for p in params)]
    _client().set_experiment_tag(experiment_id, VIEW_STATE_TAG_PREFIX + key, json.dumps({"selectedColumns": columns}))
    return key


def runs_table_url(server: str, experiment_id: str, share_key: str | None = None) -> str:
    """The address of the experiment's training-runs table (never the GenAI overview), with a shared view."""
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={share_key}" if share_key else "")
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"

