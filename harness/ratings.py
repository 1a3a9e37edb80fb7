"""Annotator rating distributions (perceived emotion) read through a card's `ratings:`, and the soft-label scores
of a finished result against them.

A card's rating set names a side table under the corpus root, a template giving each row's clip id, optional row
filters (regexes on columns), and the count columns per class. The scores themselves are defined in
`harness.metrics` (`soft_label_scores`); here they are computed per test fold from the stored predictions
(`p_<class>` columns) and summarised over folds like the hard metrics, as MLflow metrics
`test_soft_<set>_<metric>_mean/_std`. The vote counts of each scored test clip travel with the result's
predictions (`votes:<set>:<class>` columns of predictions.csv, `with_votes`), so the report computes every clip's
soft scores again (`clip_soft_scores`) and gives them the intervals and verdicts of the headline metric.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.metrics import soft_label_clip_scores, soft_label_scores, summarise_soft_folds

if TYPE_CHECKING:
    from harness.datasets import DatasetSpec


VOTES_PREFIX = "votes:"  # predictions.csv columns `votes:<set>:<class>`: a test clip's vote counts (0: unrated)


class RatingsError(ValueError):
    """A rating table that does not match its card entry; one line naming the file and the fix."""


def read_rating_set(root: Path, name: str, entry: dict[str, Any]) -> pd.DataFrame | None:
    """Vote counts [clip_id x class] of one rating set, or None when its table is absent (ratings are optional:
    a corpus without them has no soft-label scores, and nothing else changes)."""
    path = Path(root) / entry["file"]
    if not path.is_file():
        return None
    filters = {column: re.compile(pattern) for column, pattern in (entry.get("rows") or {}).items()}
    counts_by_column: dict[str, str] = dict(entry["counts"])
    rows: dict[str, list[float]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = sorted((set(filters) | set(counts_by_column)) - set(reader.fieldnames or []))
        if missing:
            raise RatingsError(f"{path}: rating set {name!r} names columns {missing}, which the table lacks "
                               f"(it has {reader.fieldnames}); fix the card's ratings.{name}")
        for line, row in enumerate(reader, start=2):
            if not all(pattern.search(row[column] or "") for column, pattern in filters.items()):
                continue
            try:
                clip = entry["clip_id"].format_map(row)
                values = [float(row[column] or 0) for column in counts_by_column]
            except (KeyError, ValueError) as error:
                raise RatingsError(f"{path}:{line}: rating set {name!r}: {error}; fix the card's "
                                   f"ratings.{name} or the table") from None
            if clip in rows:
                raise RatingsError(f"{path}:{line}: rating set {name!r} has two rows for clip {clip!r}; add a "
                                   f"`rows:` filter to the card's ratings.{name} so each clip has one")
            rows[clip] = values
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(counts_by_column))
    frame = frame.rename(columns=counts_by_column)
    return frame.T.groupby(level=0, sort=False).sum().T  # two count columns mapped to one class add up


def read_ratings(spec: DatasetSpec, root: Path) -> dict[str, pd.DataFrame]:
    """Every rating set of the card whose table is present and has rows for it."""
    found = {name: read_rating_set(root, name, entry) for name, entry in spec.ratings.items()}
    return {name: frame for name, frame in found.items() if frame is not None and len(frame)}


def soft_label_metrics(predictions: pd.DataFrame, classes: list[str],
                       ratings: dict[str, pd.DataFrame]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, notes) of one result: for each rating set over exactly the result's classes, the per-fold soft
    scores summarised over folds (`soft_<set>_<metric>_mean/_std`, plus rated/tied clip counts); a set that
    cannot be compared (other classes, no rated test clip) gets a note saying why, never a number."""
    metrics: dict[str, float] = {}
    notes: dict[str, str] = {}
    probability_columns = [f"p_{c}" for c in classes]
    for name, table in ratings.items():
        if set(table.columns) != set(classes):
            notes[name] = (f"not scored: its classes {sorted(table.columns)} differ from the result's "
                           f"{sorted(classes)}")
            continue
        joined = predictions.join(table[list(classes)], on="clip_id", how="inner")
        fold_scores = []
        for _, part in joined.groupby("fold", sort=False):
            counts = part[list(classes)].to_numpy(dtype=float)
            if not (counts.sum(axis=1) > 0).any():
                continue
            fold_scores.append(soft_label_scores(part[probability_columns].to_numpy(dtype=float), counts))
        if not fold_scores:
            notes[name] = "not scored: no test clip has a rating"
            continue
        prefix = f"soft_{name}"
        metrics.update(summarise_soft_folds(fold_scores, prefix))
        for count in ("n_rated", "n_tied"):
            metrics[f"{prefix}_{count}"] = float(np.sum([s[count] for s in fold_scores]))
    return metrics, notes


def comparable_sets(classes: list[str], ratings: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The rating sets over exactly the result's classes (the others cannot be compared; `soft_label_metrics`
    says why in its notes)."""
    return {name: table for name, table in ratings.items() if set(table.columns) == set(classes)}


def with_votes(predictions: pd.DataFrame, classes: list[str], ratings: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """`predictions` with each comparable rating set's vote counts per clip as `votes:<set>:<class>` columns (0 for
    a clip the set does not rate), so the stored predictions alone let the report score and test the soft labels.
    Unchanged when no set compares."""
    out = predictions
    for name, table in comparable_sets(classes, ratings).items():
        votes = table[list(classes)].rename(columns={c: f"{VOTES_PREFIX}{name}:{c}" for c in classes})
        out = out.join(votes, on="clip_id")
        columns = list(votes.columns)
        out[columns] = out[columns].fillna(0.0)
    return out


def vote_sets(predictions: pd.DataFrame) -> list[str]:
    """The rating sets whose vote counts a stored predictions table carries (`with_votes`), sorted."""
    return sorted({str(c)[len(VOTES_PREFIX):].split(":", 1)[0] for c in predictions.columns
                   if str(c).startswith(VOTES_PREFIX)})


def clip_soft_scores(predictions: pd.DataFrame, classes: list[str], rating_set: str) -> pd.DataFrame:
    """Every rated test clip's soft scores against `rating_set` from a stored predictions table: fold, clip_id,
    group (when stored), y_true, and one column per metric of `harness.metrics.SOFT_METRICS`."""
    votes = predictions[[f"{VOTES_PREFIX}{rating_set}:{c}" for c in classes]].to_numpy(dtype=float)
    scores = soft_label_clip_scores(predictions[[f"p_{c}" for c in classes]].to_numpy(dtype=float), votes)
    keep = [c for c in ("fold", "clip_id", "group", "y_true") if c in predictions.columns]
    table = predictions[keep].assign(**{k: v for k, v in scores.items() if k != "tied"})
    return table[votes.sum(axis=1) > 0].reset_index(drop=True)
