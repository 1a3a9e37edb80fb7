"""The one distributed search: units scheduled together, stored once, resumed, evaluated once per fold."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import HEADLINE_METRICS
from harness.protocols import Fold
from harness.search import Job, Search, SearchListener, SearchOptions, UnitStore, choose_config, sample_configs
from methods import MultimodalData, get_method

CLASSES = ["happy", "sad", "angry"]


def toy_data(n_speakers: int = 6, per_speaker: int = 12, seed: int = 0) -> MultimodalData:
    """Separable pooled audio/text vectors and short sequences, grouped by speaker."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per_speaker
    labels = np.arange(n) % len(CLASSES)
    centres = rng.normal(size=(len(CLASSES), 8)) * 2
    pooled = {m: (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32) for m in ("audio", "text")}
    sequences = {m: [np.repeat(pooled[m][i:i + 1], 3, axis=0) for i in range(n)] for m in ("audio", "text")}
    speakers = np.repeat([f"s{k}" for k in range(n_speakers)], per_speaker)
    return MultimodalData(ids=[f"c{i}" for i in range(n)], classes=CLASSES, pooled=pooled, sequences=sequences,
                          labels=labels, groups={"speaker": speakers})


def speaker_folds(data: MultimodalData, k: int = 3) -> list[Fold]:
    speakers = sorted(set(data.groups["speaker"]))
    folds = []
    for i in range(k):
        test, val = speakers[i * 2 % len(speakers)], speakers[(i * 2 + 1) % len(speakers)]
        ids = np.array(data.ids)
        part = data.groups["speaker"]
        folds.append(Fold(f"fold{i}", ids[(part != test) & (part != val)].tolist(), ids[part == val].tolist(),
                          ids[part == test].tolist()))
    return folds


def make_job(method: str, data: MultimodalData, trials: int, refit: bool = False, fixed=None) -> Job:
    spec = get_method(method)
    configs = sample_configs(spec.search_space(), trials, 0, method, "toy")
    groups = dict(zip(data.ids, data.groups["speaker"], strict=True))
    return Job(method, "toy", {**spec.fixed, "seed": 0, **(fixed or {})}, configs, speaker_folds(data), "uar",
               f"fp-{method}-{trials}-{refit}", spec.cls.input_kind == "sequence", refit, groups)


class Recorder(SearchListener):
    def __init__(self) -> None:
        self.trials, self.outcomes, self.failures = [], {}, []

    def on_trial(self, job, record) -> None:
        self.trials.append((job.label, record))

    def on_outcome(self, job, outcome, models) -> None:
        self.outcomes[job.label] = (outcome, models)

    def on_failure(self, job, error) -> None:
        self.failures.append((job.label, error))


def test_configurations_are_sampled_once_per_pair_and_seeded() -> None:
    space = get_method("audio-svm").search_space()
    first = sample_configs(space, 4, 0, "audio-svm", "emodb")
    assert first == sample_configs(space, 4, 0, "audio-svm", "emodb")
    assert first != sample_configs(space, 4, 1, "audio-svm", "emodb")
    assert first != sample_configs(space, 4, 0, "audio-svm", "ravdess")  # pairs draw independently
    assert len({repr(c) for c in first}) == 4
    assert sample_configs({}, 4, 0, "x", "y") == [{}]  # no space: the defaults, once


def test_choice_needs_every_fold_of_a_configuration() -> None:
    data = toy_data()
    job = make_job("audio-svm", data, 2)
    full = {f.name: dict.fromkeys(HEADLINE_METRICS, 0.5) for f in job.folds}
    better_but_partial = {job.folds[0].name: dict.fromkeys(HEADLINE_METRICS, 0.9)}
    assert choose_config(job, {0: full, 1: better_but_partial}) == 0
    with pytest.raises(RuntimeError, match="no configuration finished"):
        choose_config(job, {1: better_but_partial})


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
