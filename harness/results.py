"""The results contract: what one benchmark result is, and the names it is stored under in MLflow.

This module imports neither Ray nor MLflow: `harness.search` produces these records, `harness.track` writes and
reads them, and `harness.report` renders them, each through the names defined here and nowhere else.

MLflow layout of one result (one parent run per (method, dataset, evaluation setting)). The runs table shows every
param and metric as a column, so only what a user sorts or filters on is one; the rest is in JSON artifacts:
  tags       `ResultTags` (dataset, method, protocol, features, setting...), `harness.role` = "parent"
  params     the chosen configuration, n_trials, n_folds, refit, settings.{seed,trials,speaker_norm,preset,refit}
  metrics    test_<metric>_mean / _std, val_<metric>_mean (best trial), seconds; test_soft_<set>_<metric>_mean / _std
             where the corpus has annotator ratings (harness.ratings)
  artifacts  predictions.csv (fold, clip_id, group, y_true, y_pred, p_<class>..., and votes:<set>:<class>, the test
             clips' rating counts, where the corpus has ratings), folds.json (per-fold test and
             validation scores, fit notes), settings.json (every resolved setting), confusion.json, per_class.csv,
             config.json, confusion.png, models.pkl (fold -> fitted method), feature_failures.csv when any
  inputs     the corpus as an MLflow dataset (name, manifest fingerprint, protocol)
One child run per sampled configuration (`harness.role` = "trial") holds its mean validation scores (folds.json:
per fold, with ASHA's early stops), and is written as soon as its last fold finishes, so the MLflow UI shows the
search while it runs.
`harness robustness` adds one run per evaluated condition (`harness.role` = "robustness"; a child of the parent
it re-scores, or top-level for a cross-corpus pair without one): tags dataset, method, `robustness.condition`
and `harness.robustness_fingerprint` (its reuse key), per-condition mean metrics, and the artifacts
robustness.csv (the tidy scores) and robustness.json (e.g. a cross-corpus pair's mapped and dropped classes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import HEADLINE_METRICS, Scores, scores_from_confusion, summarise_folds

ROLE_TAG = "harness.role"
FINGERPRINT_TAG = "harness.fingerprint"
SETTING_TAG = "harness.setting"
SETTING_LABEL_TAG = "harness.setting_label"
FAILURES_ARTIFACT = "feature_failures.csv"
PREDICTIONS_ARTIFACT = "predictions.csv"
MODELS_ARTIFACT = "models.pkl"
PARENT, TRIAL = "parent", "trial"
ROBUSTNESS = "robustness"  # the role of an evaluation run of `harness robustness`
CONDITION_TAG = "robustness.condition"  # "missing", "corrupt:<name>", "cross-corpus:<train>-><test>"
ROBUSTNESS_FINGERPRINT_TAG = "harness.robustness_fingerprint"
ROBUSTNESS_TABLE_ARTIFACT = "robustness.csv"
ROBUSTNESS_RECORD_ARTIFACT = "robustness.json"


def test_metric(metric: str, fold: str | None = None, stat: str = "mean") -> str:
    """Name of a test metric: `test_uar_mean`, `test_uar_std`, or one fold's `test_uar_<fold>`."""
    return f"test_{metric}_{fold}" if fold is not None else f"test_{metric}_{stat}"


def val_metric(metric: str, fold: str | None = None) -> str:
    """Name of a validation metric: `val_uar_mean` (over folds) or one fold's `val_uar_<fold>`."""
    return f"val_{metric}_{fold}" if fold is not None else f"val_{metric}_mean"


@dataclass(frozen=True)
class ResultTags:
    """The tags every parent run carries; the report groups, ranks and labels results by them."""

    dataset: str
    method: str
    family: str
    modalities: str
    protocol: str
    speaker_independent: str
    features: str
    feature_failures: str
    headline_metric: str
    selection_metric: str
    setting: str  # hash of everything that makes two results comparable (see `evaluation_setting`)
    setting_label: str  # the same in words, for section headers
    fingerprint: str  # hash of everything that determines this one result (reuse key)
    git_commit: str = "unknown"
    # per modality, whether the input was the paper's, a stand-in or the user's substitution (`--preset paper`,
    # harness.paper_inputs); "" when the run chose no paper inputs
    inputs: str = ""
    # whether an extractor's weights saw this corpus: "yes: audio=<extractor> (trained on ...)", "unknown: ...",
    # "no"; "" for results written before the tag existed (harness.prepare.contamination_label)
    contamination: str = ""

    _RENAMED = {"setting": SETTING_TAG, "setting_label": SETTING_LABEL_TAG, "fingerprint": FINGERPRINT_TAG}

    def to_tags(self) -> dict[str, str]:
        tags = {self._RENAMED.get(k, k): str(v) for k, v in asdict(self).items()}
        return {**tags, ROLE_TAG: PARENT}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> ResultTags:
        """Read back from a run's tags; runs written before a tag existed get "" for it."""
        return cls(**{f.name: str(tags.get(cls._RENAMED.get(f.name, f.name), "")) for f in fields(cls)})


ALTERNATIVE_SEPARATOR = ": "  # a protocol tag "<card alternative>: <mechanics>", e.g. "av-crossattention-10fold: ..."


def protocol_alternative(label: str) -> str:
    """The card alternative a result's protocol tag names ("default" for a dataset's main protocol), so a paper
    claim is compared only with results evaluated under the claim's protocol."""
    name, separator, _ = label.partition(ALTERNATIVE_SEPARATOR)
    return name if separator else "default"


def evaluation_setting(*, evaluation_digest: str, protocol: str, features: dict[str, str], trials: int,
                       preset: str, speaker_norm: bool, refit: str, train_missing_rate: float = 0.0,
                       max_epochs: int | None = None) -> tuple[dict[str, Any], str]:
    """What two results must share to be ranked in one table, as (record, words).

    `features` maps modality -> "extractor:cache-key" (the key covers the extractor options and the corpus), so a
    different eGeMAPS variant is a different setting; the method's own hyperparameters are not part of it.
    """
    record = {"evaluation": evaluation_digest, "protocol": protocol, "features": dict(sorted(features.items())),
              "trials": trials, "preset": preset, "speaker_norm": speaker_norm, "refit": refit}
    feature_words = ", ".join(f"{m}={k}" for m, k in sorted(features.items())) or "none"
    words = (f"{protocol}; features {feature_words}; {trials} trials; preset {preset}; "
             f"speaker-norm {'on' if speaker_norm else 'off'}; refit {refit}")
    if train_missing_rate:  # only when used, so settings recorded before the option existed keep their hash
        record["train_missing_rate"] = float(train_missing_rate)
        words += f"; modality dropout {train_missing_rate:g} in training"
    if max_epochs:  # likewise only when set: a capped run is a different setting from the uncapped one
        record["max_epochs"] = int(max_epochs)
        words += f"; neural epochs capped at {int(max_epochs)}"
    return record, words


@dataclass
class TrialRecord:
    """One sampled configuration of a (method, dataset): its validation scores on every fold."""

    number: int
    config: dict[str, Any]
    val_by_fold: dict[str, dict[str, float]]  # fold -> metric -> value
    notes_by_fold: dict[str, dict[str, float]] = field(default_factory=dict)  # epochs run, early stop...

    @property
    def val_mean(self) -> dict[str, float]:
        """Mean over the folds this configuration finished; NaN for one that finished none (stopped by the
        scheduler on every fold), said without numpy's "Mean of empty slice" warning."""
        if not self.val_by_fold:
            return {m: float("nan") for m in HEADLINE_METRICS}
        return {m: float(np.mean([s[m] for s in self.val_by_fold.values()])) for m in HEADLINE_METRICS}


@dataclass
class MethodOutcome:
    """The tested result of one (method, dataset): the chosen configuration and its per-fold test scores."""

    method: str
    dataset: str
    selection_metric: str
    best_config: dict[str, Any]
    trials: list[TrialRecord]
    fold_names: list[str]
    fold_scores: list[Scores]
    predictions: pd.DataFrame  # fold, clip_id, group, y_true, y_pred, p_<class>...
    notes: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    refit: bool = False

    def summary(self) -> dict[str, float]:
        return summarise_folds(self.fold_scores)

    def pooled_confusion(self) -> np.ndarray:
        return np.sum([s.confusion for s in self.fold_scores], axis=0)

    def pooled_scores(self, classes: list[str]) -> Scores:
        return scores_from_confusion(self.pooled_confusion(), classes)

    def best_trial(self) -> TrialRecord:
        """The configuration with the best mean validation score; one that finished no fold never wins."""
        scored = [t for t in self.trials if t.val_by_fold] or self.trials
        return max(scored, key=lambda t: t.val_mean[self.selection_metric])
