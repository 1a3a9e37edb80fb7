"""How the benchmark looks in the MLflow UI: a model-training experiment whose runs name their corpus.

MLflow 3.x opens an experiment without a kind on its GenAI overview (traces, "No data available"), and a run that
logged no dataset input leaves the runs table's dataset column empty. Two calls fix that, for the writer of the
runs (`harness.track`) to make:

- `prepare_experiment(experiment_id)` once after creating or finding the experiment: tags it as a model-training
  experiment (`mlflow.experimentKind` = `custom_model_development`, the value the 3.17 UI reads), so it opens on
  the training runs.
- `log_dataset_input(run_id, ...)` for each parent run: logs the corpus as an MLflow dataset input (its name, the
  manifest fingerprint as digest, the protocol as context), so the runs table's dataset column shows it.

Both import MLflow inside the function, so importing this module stays light.
"""

from __future__ import annotations

import json

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def prepare_experiment(experiment_id: str, description: str | None = None) -> None:
    """Mark the experiment as model training (not GenAI), and give it a description when one is passed."""
    from mlflow import MlflowClient

    client = MlflowClient()
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
    from mlflow import MlflowClient
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
    MlflowClient().log_inputs(run_id, datasets=[entry])


VIEW_STATE_TAG_PREFIX = "mlflow.sharedViewState."
DEFAULT_COLUMNS = ("attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`")


def share_runs_view(experiment_id: str, metrics: list[str], params: list[str] = (), key: str = "harness") -> str:
    """Store a runs-table view that shows `metrics` and `params` as columns; return its share key.

    MLflow 3.17's runs table shows only Source, Models and Dataset until the user picks columns; a view stored as
    the experiment tag `mlflow.sharedViewState.<key>` and opened with `?viewStateShareKey=<key>` (see
    `runs_table_url`) shows the headline metrics straight away.
    """
    from mlflow import MlflowClient

    columns = [*DEFAULT_COLUMNS, *(f"metrics.`{m}`" for m in metrics), *(f"params.`{p}`" for p in params)]
    MlflowClient().set_experiment_tag(experiment_id, VIEW_STATE_TAG_PREFIX + key,
                                      json.dumps({"selectedColumns": columns}))
    return key


def runs_table_url(server: str, experiment_id: str, share_key: str | None = None) -> str:
    """The address of the experiment's training-runs table (never the GenAI overview), with a shared view."""
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={share_key}" if share_key else "")
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
