"""Per-unit resources and early stopping: neural units get a GPU share (logical GPUs here), classical units do
not; ASHA stops poor neural configurations per fold and the search records where."""

from __future__ import annotations

import dataclasses

import pytest
from fixtures.search_jobs import Recorder, make_job, toy_data

from harness.search import Search, SearchOptions, UnitStore

FAST = {"max_epochs": 6, "patience": 6, "batch_size": 8}


@pytest.fixture(scope="module")
def gpu_ray():
    """A local Ray instance that advertises 2 logical GPUs (no CUDA device is needed to schedule on them)."""
    import ray

    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_neural_units_are_scheduled_with_a_gpu_and_classical_units_without(gpu_ray, tmp_path) -> None:
    data = toy_data()
    neural = make_job("neural-audio", data, 1, fixed=FAST)
    classical = make_job("audio-svm", data, 1)
    recorder = Recorder()
    store = str(tmp_path)
    Search([neural, classical], {"toy": data}, SearchOptions(store, gpus_per_trial=0.5), recorder).run()
    assert not recorder.failures and len(recorder.outcomes) == 2
    for job, expect_gpu in ((neural, True), (classical, False)):
        for fold in job.folds:
            unit = UnitStore(store).load(job.unit_key(0, fold.name))
            assert bool(unit["gpu_ids"]) is expect_gpu, (job.label, unit["gpu_ids"])


def test_asha_stops_poor_configurations_within_their_fold(gpu_ray, tmp_path) -> None:
    """Two configurations that learn (lr 1e-2) and two that cannot (lr 1e-7): ASHA, comparing configurations of
    one fold at each rung, stops the hopeless ones; only configurations finished on every fold can be chosen."""
    data = toy_data()
    job = make_job("neural-audio", data, 1, fixed=FAST)
    configs = [{"lr": 3e-2}, {"lr": 3e-2, "dropout": 0.0}, {"lr": 1e-7}, {"lr": 1e-7, "dropout": 0.0}]
    job = dataclasses.replace(job, configs=configs)
    recorder = Recorder()
    options = SearchOptions(str(tmp_path), scheduler="asha", max_epochs=FAST["max_epochs"], asha_grace_period=2)
    Search([job], {"toy": data}, options, recorder).run()
    assert not recorder.failures
    outcome, _ = recorder.outcomes[job.label]
    stopped = {record.number for record in outcome.trials
               if any(n.get("stopped_early") for n in record.notes_by_fold.values())}
    assert stopped and stopped <= {2, 3}
    assert outcome.best_config["lr"] == 3e-2
    assert sorted(outcome.predictions["clip_id"]) == sorted(c for f in job.folds for c in f.test)
