"""The one distributed search: units scheduled together, stored once, resumed, evaluated once per fold."""

from __future__ import annotations

from pathlib import Path

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
    monkeypatch.setattr(search.Search, "_tune", lambda self, todo, round_=0: pytest.fail(f"{len(todo)} units re-ran"))
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



# ---- work lost with its worker is run again; a method that raises is not ------------------------------------
# Small searches whose units or evaluation actor kill their own worker process (`os._exit`, what a lost node looks
# like to the driver) or raise. The crashing functions and classes are made inside functions, so cloudpickle sends
# them to Ray's workers by value; attempts are counted in files, because each runs in another process.
RETRIES = 1  # SearchOptions.max_failures for these searches: Tune retries a unit once, then one more round
DEAD_ACTOR = ("ActorDiedError", "ActorUnavailableError")  # how Ray reports an actor whose process exited


class RetryRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.retries: list[tuple[str, str]] = []

    def on_retry(self, job, what) -> None:
        self.retries.append((job.label, what))


def attempts(counter: Path) -> int:
    return int(counter.read_text()) if counter.exists() else 0


def faulty_units(faults: dict[str, tuple[Path, int, str]]):
    """A unit function: unit id -> (attempt counter, how many first attempts fail, "exit" the worker process or
    "raise" from the method); other units run as usual."""
    import os

    from harness.search import _unit_trainable

    def unit_fn(config, jobs, units, data_refs, store_uri) -> None:
        if config["unit"] in faults:
            counter, failing, how = faults[config["unit"]]
            attempt = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(attempt + 1))
            if attempt < failing:
                if how == "exit":
                    os._exit(1)
                raise ValueError(f"broken method (attempt {attempt + 1})")
        _unit_trainable(config, jobs, units, data_refs, store_uri)

    return unit_fn


def faulty_evaluator(counter: Path, failing: int, how: str):
    """An evaluator class whose first `failing` calls (over all its actors) exit the process or raise."""
    import os

    from harness.search import _Evaluator

    class FaultyEvaluator(_Evaluator):
        def evaluate(self, job, data_ref, chosen, store_uri):
            attempt = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(attempt + 1))
            if attempt < failing:
                if how == "exit":
                    os._exit(1)
                raise ValueError("broken evaluation")
            return super().evaluate(job, data_ref, chosen, store_uri)

    return FaultyEvaluator


@pytest.fixture(scope="module")
def faulty_search(ray_session, tmp_path_factory):
    """One search of two jobs: a unit of audio-svm (the `searched` job) kills its worker more often than Tune
    retries it; a unit of late-average-svm raises every time."""
    data = toy_data()
    lost_job, broken_job = make_job("audio-svm", data, 3), make_job("late-average-svm", data, 1, refit=True)
    tmp = tmp_path_factory.mktemp("faulty")
    lost_unit, broken_unit = lost_job.units()[4].id, broken_job.units()[0].id
    faults = {lost_unit: (tmp / "lost", RETRIES + 1, "exit"), broken_unit: (tmp / "broken", 99, "raise")}

    class FaultySearch(Search):
        unit_fn = staticmethod(faulty_units(faults))

    recorder = RetryRecorder()
    FaultySearch([lost_job, broken_job], {"toy": data}, SearchOptions(str(tmp / "tune"), max_failures=RETRIES),
                 recorder).run()
    return recorder, tmp, lost_unit


def test_a_unit_lost_more_often_than_tune_retries_runs_in_a_new_round(faulty_search, searched) -> None:
    recorder, tmp, lost_unit = faulty_search
    assert attempts(tmp / "lost") == RETRIES + 2  # Tune's attempts, then one in the second round
    assert len(recorder.retries) == 1
    label, what = recorder.retries[0]
    assert label == "audio-svm@toy" and lost_unit in what and any(name in what for name in DEAD_ACTOR)
    assert "audio-svm@toy" not in dict(recorder.failures)
    outcome, reference = recorder.outcomes["audio-svm@toy"][0], searched[3].outcomes["audio-svm@toy"][0]
    assert outcome.best_config == reference.best_config
    assert outcome.predictions.equals(reference.predictions)


def test_a_unit_whose_method_raises_is_not_run_again_and_fails_its_job(faulty_search) -> None:
    recorder, tmp, _ = faulty_search
    assert attempts(tmp / "broken") == 1  # an exception of the method is deterministic: never run again
    assert all(label != "late-average-svm@toy" for label, _ in recorder.retries)
    failures = dict(recorder.failures)
    assert "late-average-svm@toy" not in recorder.outcomes
    assert "ValueError" in failures["late-average-svm@toy"]
    assert "unit late-average-svm@toy|0|fold0" in failures["late-average-svm@toy"]
    assert "broken method (attempt 1)" in failures["late-average-svm@toy"]  # the message, not a file path
    assert "error.txt" not in failures["late-average-svm@toy"]


def test_an_evaluation_lost_with_its_actor_runs_again_on_a_fresh_one(searched, tmp_path) -> None:
    """The evaluation actor dies during its first call; both jobs' evaluations (queued on that actor) are
    submitted again on a fresh one and give the undisturbed search's predictions. Every unit comes from the store."""
    data, jobs, store, undisturbed = searched

    class FaultySearch(Search):
        evaluator_cls = faulty_evaluator(tmp_path / "calls", 1, "exit")

        def _tune(self, todo, round_=0):
            pytest.fail(f"{len(todo)} units re-ran")

    recorder = RetryRecorder()
    FaultySearch(jobs, {"toy": data}, SearchOptions(store), recorder).run()
    assert not recorder.failures
    assert sorted(label for label, _ in recorder.retries) == sorted(j.label for j in jobs)  # once each
    assert all("evaluation was lost" in what and any(name in what for name in DEAD_ACTOR)
               for _, what in recorder.retries)
    assert attempts(tmp_path / "calls") == 1 + len(jobs)  # the fatal call, then each evaluation once more
    for job in jobs:
        assert recorder.outcomes[job.label][0].predictions.equals(undisturbed.outcomes[job.label][0].predictions)


def test_an_evaluation_whose_method_raises_fails_its_job_at_once(searched, tmp_path) -> None:
    data, jobs, store, _ = searched

    class FaultySearch(Search):
        evaluator_cls = faulty_evaluator(tmp_path / "calls", 99, "raise")

    recorder = RetryRecorder()
    FaultySearch(jobs[:1], {"toy": data}, SearchOptions(store), recorder).run()
    assert not recorder.retries and attempts(tmp_path / "calls") == 1
    assert not recorder.outcomes and len(recorder.failures) == 1
    label, error = recorder.failures[0]
    assert label == jobs[0].label and "ValueError" in error and "broken evaluation" in error
