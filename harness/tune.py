"""Hyperparameter search on Ray Tune, then one test evaluation per fold with the chosen configuration.

The protocol that makes the numbers trustworthy:
  1. every trial fits its configuration on each fold's training part and is scored on that fold's validation
     part; the trial's score is the mean over folds of the dataset's selection metric. The fitted fold models
     are saved as the trial's Tune checkpoint; the trial never sees test data;
  2. the best trial by that validation score is chosen; test data has not been touched;
  3. the chosen trial's fold models (exactly the models that were validated, not a refit) predict each fold's
     test part, once.
The checkpoints are pickles that the harness itself wrote into its workspace; nothing else is ever unpickled.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray.tune import Callback

from harness.metrics import HEADLINE_METRICS, Scores, score, scores_from_confusion, summarise_folds
from harness.protocols import Fold
from methods import FusionMethod, MethodSpec, MultimodalData, Param, get_method

MODELS_FILE = "fold_models.pkl"


@dataclass
class TrialRecord:
    config: dict[str, Any]
    val_by_fold: dict[str, dict[str, float]]  # fold -> metric -> value
    val_mean: dict[str, float]  # metric -> mean over folds


@dataclass
class MethodOutcome:
    method: str
    dataset: str
    selection_metric: str
    best_config: dict[str, Any]
    trials: list[TrialRecord]
    fold_names: list[str]
    fold_scores: list[Scores]
    predictions: pd.DataFrame  # fold, clip_id, y_true, y_pred, p_<class>...
    notes: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        return summarise_folds(self.fold_scores)

    def pooled_confusion(self) -> np.ndarray:
        return np.sum([s.confusion for s in self.fold_scores], axis=0)

    def pooled_scores(self, classes: list[str]) -> Scores:
        return scores_from_confusion(self.pooled_confusion(), classes)


def to_tune_space(space: dict[str, Param]) -> dict[str, Any]:
    from ray import tune

    converters = {
        "choice": lambda p: tune.choice(list(p.values)),
        "uniform": lambda p: tune.uniform(p.low, p.high),
        "loguniform": lambda p: tune.loguniform(p.low, p.high),
        "int": lambda p: tune.randint(int(p.low), int(p.high) + 1),
    }
    return {name: converters[p.kind](p) for name, p in space.items()}


def accepts_param(spec: MethodSpec, name: str) -> bool:
    """Whether the method declares that it uses the context parameter `name` (see FusionMethod.context_params)."""
    return name in spec.cls.context_params


def _limit_threads() -> None:
    """One trial = one CPU: keep BLAS/torch from oversubscribing the cores Ray gave other trials."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def fit_on_fold(method_name: str, config: dict[str, Any], data: MultimodalData, fold: Fold
                ) -> tuple[FusionMethod, dict[str, float]]:
    """Fit on the fold's training part (validation available for early stopping); score on validation."""
    method = get_method(method_name).build(**config)
    validation = data.select(fold.val)
    method.fit(data.select(fold.train), validation)
    return method, score(validation.labels, method.predict(validation), data.classes).headline()


def _trainable(config: dict[str, Any], method_name: str, fixed: dict[str, Any], data: MultimodalData,
               folds: list[Fold], metric: str) -> None:
    from ray import tune

    _limit_threads()
    fitted = {f.name: fit_on_fold(method_name, {**fixed, **config}, data, f) for f in folds}
    by_fold = {name: fold_scores for name, (_, fold_scores) in fitted.items()}
    means = {m: float(np.mean([s[m] for s in by_fold.values()])) for m in HEADLINE_METRICS}
    flat = {f"{fold}/{m}": v for fold, s in by_fold.items() for m, v in s.items()}
    with tempfile.TemporaryDirectory() as folder:
        with open(Path(folder) / MODELS_FILE, "wb") as stream:
            pickle.dump({name: model for name, (model, _) in fitted.items()}, stream)
        tune.report({f"val_{metric}": means[metric], **{f"val_{m}": v for m, v in means.items()}, **flat},
                    checkpoint=tune.Checkpoint.from_directory(folder))


def load_fold_models(checkpoint) -> dict[str, FusionMethod]:
    with checkpoint.as_directory() as folder, open(Path(folder) / MODELS_FILE, "rb") as stream:
        return pickle.load(stream)  # written by `_trainable` above, in this run's own workspace


def tune_and_test(method_name: str, dataset: str, data: MultimodalData, folds: list[Fold], metric: str,
                  trials: int, seed: int, fixed: dict[str, Any], storage: Path, verbose: bool = True
                  ) -> MethodOutcome:
    """Search on validation folds with Ray Tune, then test the chosen configuration once per fold."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    started = time.perf_counter()
    spec = get_method(method_name)
    space = spec.search_space()
    n_samples = trials if space else 1
    progress = _TrialProgress(f"{method_name}@{dataset}", n_samples, verbose)
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, method_name=method_name, fixed=fixed, data=data, folds=folds,
                             metric=metric),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=to_tune_space(space),
        # reuse_actors: trials of one search share worker processes instead of re-importing the stack per trial.
        tune_config=tune.TuneConfig(metric=f"val_{metric}", mode="max", num_samples=n_samples, reuse_actors=True,
                                    search_alg=BasicVariantGenerator(random_state=seed)),
        run_config=tune.RunConfig(name=f"{dataset}__{method_name}", storage_path=str(storage.resolve()),
                                  verbose=0, callbacks=[progress]),
    )
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error is not None]
    if len(errors) == len(grid):
        raise RuntimeError(f"{method_name}@{dataset}: every trial failed; first error: {errors[0]}")
    trial_records = [_trial_record(r, folds, metric) for r in grid if r.error is None]
    best = grid.get_best_result(metric=f"val_{metric}", mode="max")
    best_config = {**fixed, **best.config}
    models = load_fold_models(best.checkpoint)
    fold_scores, frames, notes = [], [], {}
    for fold in folds:
        test = data.select(fold.test)
        probabilities = models[fold.name].predict_proba(test)
        predicted = probabilities.argmax(axis=1)
        fold_scores.append(score(test.labels, predicted, data.classes))
        frame = pd.DataFrame({"fold": fold.name, "clip_id": test.ids,
                              "y_true": [data.classes[i] for i in test.labels],
                              "y_pred": [data.classes[i] for i in predicted]})
        for c, name in enumerate(data.classes):
            frame[f"p_{name}"] = probabilities[:, c]
        frames.append(frame)
        notes.update({f"{fold.name}/{k}": v for k, v in models[fold.name].fit_notes().items()})
    return MethodOutcome(method_name, dataset, metric, best_config, trial_records, [f.name for f in folds],
                         fold_scores, pd.concat(frames, ignore_index=True), notes,
                         time.perf_counter() - started)


def _trial_record(result, folds: list[Fold], metric: str) -> TrialRecord:
    metrics = result.metrics
    by_fold = {f.name: {m: float(metrics[f"{f.name}/{m}"]) for m in HEADLINE_METRICS} for f in folds}
    return TrialRecord(dict(result.config), by_fold, {m: float(metrics[f"val_{m}"]) for m in HEADLINE_METRICS})


class _TrialProgress(Callback):
    """Prints one line per finished trial: progress is visible without Tune's full tables."""

    def __init__(self, label: str, total: int, verbose: bool) -> None:
        self.label, self.total, self.verbose, self.done = label, total, verbose, 0

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        if self.verbose:
            value = next((v for k, v in (trial.last_result or {}).items() if k.startswith("val_")), float("nan"))
            print(f"[tune] {self.label}: trial {self.done}/{self.total} done (validation {value:.3f})", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        print(f"[tune] {self.label}: trial {self.done}/{self.total} FAILED: {trial.error_file}", flush=True)
