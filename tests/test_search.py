"""The one distributed search: units scheduled together, stored once, resumed, evaluated once per fold."""

from __future__ import annotations

import pytest
from fixtures.search_jobs import Recorder, make_job, toy_data

from harness.metrics import HEADLINE_METRICS
from harness.search import Search, SearchOptions, UnitStore, choose_config, sample_configs
from methods import get_method


def test_configurations_are_sampled_once_per_pair_and_seeded() -> None:
    space = get_method("audio-svm").search_space()
    first = sample_configs(space, 4, 0, "audio-svm", "emodb")
    assert first == sample_configs(space, 4, 0, "audio-svm", "emodb")
    assert first != sample_configs(space, 4, 1, "audio-svm", "emodb")
    assert first != sample_configs(space, 4, 0, "audio-svm", "ravdess")  # pairs draw independently
    assert len({repr(c) for c in first}) == 4
    assert sample_configs({}, 4, 0, "x", "y") == [{}]  # no space: the defaults, once


def test_choice_prefers_configurations_finished_on_every_fold() -> None:
    data = toy_data()
    job = make_job("audio-svm", data, 3)
    full = {f.name: dict.fromkeys(HEADLINE_METRICS, 0.5) for f in job.folds}
    better_but_partial = {job.folds[0].name: dict.fromkeys(HEADLINE_METRICS, 0.9)}
    worse_partial = {job.folds[1].name: dict.fromkeys(HEADLINE_METRICS, 0.2)}
    assert choose_config(job, {0: full, 1: better_but_partial}) == 0
    assert choose_config(job, {1: better_but_partial, 2: worse_partial}) == 1  # none complete: best of the most
    with pytest.raises(RuntimeError, match="no configuration finished"):
        choose_config(job, {})


@pytest.fixture(scope="module")
def searched(ray_session, tmp_path_factory):
    data = toy_data()
    jobs = [make_job("audio-svm", data, 3), make_job("late-average-svm", data, 2, refit=True)]
    store = str(tmp_path_factory.mktemp("tune"))
    recorder = Recorder()
    Search(jobs, {"toy": data}, SearchOptions(store), recorder).run()
    return data, jobs, store, recorder


def test_every_job_is_tested_once_per_fold_from_validated_units(searched) -> None:
    data, jobs, store, recorder = searched
    assert not recorder.failures
    assert set(recorder.outcomes) == {j.label for j in jobs}
    for job in jobs:
        outcome, models = recorder.outcomes[job.label]
        assert sorted(outcome.predictions["clip_id"]) == sorted(c for f in job.folds for c in f.test)
        assert set(outcome.predictions["group"]) <= set(data.groups["speaker"])
        assert len(outcome.trials) == len(job.configs)
        assert set(models) == {f.name for f in job.folds}
        best = max(range(len(job.configs)), key=lambda c: outcome.trials[c].val_mean["uar"])
        assert outcome.best_config == job.config(best)  # chosen on validation, by the mean over folds
        for config in range(len(job.configs)):
            for fold in job.folds:
                assert UnitStore(store).load(job.unit_key(config, fold.name)) is not None  # each unit stored


def test_trial_runs_are_reported_once_per_configuration(searched) -> None:
    _, jobs, _, recorder = searched
    reported = [(label, record.number) for label, record in recorder.trials]
    assert len(reported) == len(set(reported)) == sum(len(j.configs) for j in jobs)


def test_refit_trains_on_train_and_validation(searched) -> None:
    _, jobs, _, recorder = searched
    refitted, validated = recorder.outcomes["late-average-svm@toy"][0], recorder.outcomes["audio-svm@toy"][0]
    fold = jobs[1].folds[0]
    assert refitted.refit and refitted.notes[f"{fold.name}/refit_train_clips"] == len(fold.train) + len(fold.val)
    assert not validated.refit and not any(k.endswith("refit_train_clips") for k in validated.notes)


def test_a_second_search_resumes_from_stored_units(searched, monkeypatch) -> None:
    """Units a previous run stored are not fitted again: the same outcome comes back without any Tune trial."""
    import harness.search as search

    data, jobs, store, recorder = searched
    monkeypatch.setattr(search.Search, "_tune", lambda self, todo: pytest.fail(f"{len(todo)} units re-ran"))
    again = Recorder()
    Search(jobs, {"toy": data}, SearchOptions(store), again).run()
    for job in jobs:
        first, second = recorder.outcomes[job.label][0], again.outcomes[job.label][0]
        assert first.best_config == second.best_config
        assert first.predictions.equals(second.predictions)


def test_a_spent_time_budget_is_reported_per_unfinished_job(ray_session, tmp_path) -> None:
    data = toy_data()
    job = make_job("audio-xgboost", data, 12)
    recorder = Recorder()
    Search([job], {"toy": data}, SearchOptions(str(tmp_path), time_budget_s=0.01), recorder).run()
    if recorder.outcomes:  # the machine finished all 48 units within Tune's first step: nothing to check
        pytest.skip("every unit finished inside the budget")
    assert recorder.failures and "did not finish (time budget or errors)" in recorder.failures[0][1]
