"""The search's records: a configuration the scheduler stopped on every fold has no validation mean, says so
without a numpy warning, and is never the best trial."""

from __future__ import annotations

import math
import warnings

import pandas as pd

from harness.results import MethodOutcome, TrialRecord


def test_a_trial_with_no_finished_fold_is_nan_without_warnings_and_never_best() -> None:
    stopped = TrialRecord(number=0, config={"lr": 1.0}, val_by_fold={})
    finished = TrialRecord(number=1, config={"lr": 0.1},
                           val_by_fold={"f0": {"accuracy": 0.4, "uar": 0.5, "macro_f1": 0.4, "weighted_f1": 0.4}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "Mean of empty slice" once reached every run's console
        assert all(math.isnan(v) for v in stopped.val_mean.values())
        outcome = MethodOutcome(method="m", dataset="d", selection_metric="uar", best_config={},
                                trials=[stopped, finished], fold_names=["f0"], fold_scores=[],
                                predictions=pd.DataFrame())
        assert outcome.best_trial() is finished
    assert finished.val_mean["uar"] == 0.5
