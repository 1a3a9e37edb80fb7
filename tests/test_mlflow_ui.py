"""The benchmark in the MLflow UI: a model-training experiment, the corpus in the dataset column, headline metric
columns; checked in the store (fast) and in the real MLflow 3.17 UI in headless Chromium (slow)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fixtures.browser import headless_page
from fixtures.mlflow_runs import EXPERIMENT, FakeResult, log_result

from harness.track import (
    EXPERIMENT_KIND_TAG,
    TRAINING_KIND,
    VIEW_STATE_TAG_PREFIX,
    log_dataset_input,
    prepare_experiment,
    runs_table_url,
    share_runs_view,
)

HEADLINE = ["test_uar_mean", "test_accuracy_mean"]


def small_store(folder: Path) -> tuple[str, str, str]:
    """One finished run of emodb with the experiment prepared; returns (uri, experiment id, share key)."""
    import mlflow

    uri = f"sqlite:///{folder}/mlruns.db"
    run_id = log_result(uri, EXPERIMENT, FakeResult("early-concat-svm", 0.75, modalities="audio,text"))
    experiment_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    prepare_experiment(experiment_id, description="MER benchmark")
    log_dataset_input(run_id, "emodb", "fingerprint0123456789", "leave-one-speaker-out", "/data/emodb", n_clips=96)
    return uri, experiment_id, share_runs_view(experiment_id, HEADLINE, ["n_trials"])


def test_experiment_and_run_carry_what_the_ui_reads(tmp_path):
    import mlflow

    uri, experiment_id, key = small_store(tmp_path)
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    view = json.loads(experiment.tags[VIEW_STATE_TAG_PREFIX + key])
    assert "metrics.`test_uar_mean`" in view["selectedColumns"]
    run = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list")[0]
    (dataset_input,) = run.inputs.dataset_inputs
    assert (dataset_input.dataset.name, dataset_input.dataset.digest) == ("emodb", "fingerprint0123456789")
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "leave-one-speaker-out"
    assert runs_table_url("http://h:5000/", "7", "k") == \
        "http://h:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=k"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # the MLflow server takes up to a minute to start on a 2-core machine
def test_mlflow_ui_shows_training_runs_dataset_and_headline_metric(tmp_path):
    uri, experiment_id, key = small_store(tmp_path)
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen([str(mlflow_cli), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # its own process group: its workers stop with it
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "the MLflow UI server exited"
            assert time.monotonic() < deadline, "the MLflow UI server did not answer within 180 s"
            time.sleep(1)
        with headless_page(2000, 900) as page:
            page.goto(runs_table_url(f"http://127.0.0.1:{port}", experiment_id, key))
            page.get_by_text("early-concat-svm@emodb").first.wait_for(timeout=90_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "mlflow-runs.png"))
            headers = page.evaluate("[...document.querySelectorAll('[role=columnheader]')].map(h => h.innerText)")
            assert "test_uar_mean" in headers and "Dataset" in headers
            assert page.get_by_text("emodb (fingerprint0123456789").first.is_visible()
            assert "workflowType=machine_learning" in page.url and "/runs" in page.url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
