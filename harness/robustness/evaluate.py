"""Scoring validated fold models on transformed test parts: the one loop every robustness condition shares.

A condition is a function of (test part, fold) -> test part: remove a modality, swap in corrupted features.
The models are the ones a finished result validated (its `models.pkl`: fold name -> fitted method), so nothing is
refitted and the training and validation parts are never touched; each fold's test part is scored through
`harness.metrics`, like the clean result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from harness.metrics import HEADLINE_METRICS, score
from harness.protocols import Fold
from methods import FusionMethod, MultimodalData

Transform = Callable[[MultimodalData, Fold], MultimodalData]
TIDY_COLUMNS = ["condition", "modality", "rate", "seed", "fold", "metric", "value"]


def check_models(models: Mapping[str, FusionMethod], folds: list[Fold], where: str) -> None:
    """Every fold needs its fitted model; a stale models.pkl (folds changed since) is an error, not a skip."""
    missing = [fold.name for fold in folds if fold.name not in models]
    if missing:
        raise KeyError(f"{where}: no fitted model for folds {missing} (models are for {sorted(models)}); the folds "
                       "changed since the result was computed: rerun `harness run` for this method and dataset")


def score_condition(models: Mapping[str, FusionMethod], data: MultimodalData, folds: list[Fold],
                    transform: Transform, keys: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows (keys + fold, metric, value) of every headline metric on every fold's transformed test part."""
    rows = []
    for fold in folds:
        test = transform(data.select(fold.test), fold)
        predicted = models[fold.name].predict(test)
        scores = score(test.labels, predicted, data.classes)
        rows += [{**keys, "fold": fold.name, "metric": metric, "value": float(getattr(scores, metric))}
                 for metric in HEADLINE_METRICS]
    return rows


def tidy(rows: list[dict[str, Any]], columns: list[str] = TIDY_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)
