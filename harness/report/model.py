"""The report's page model, at the bottom of `harness.report`: what one leaderboard table holds, nothing more.

Every other module of the package reads these types and none of them is imported here, so the package has no
import cycle: `model` <- `text` <- `markdown`, `html`; `model` <- `figures` <- `robustness`; `leaderboard` (analyse,
render) on top reads MLflow, builds the model and hands it to the renderers. A new line on the page (a claim, a
best published result, a soft-label metric) is a field or a column here and a few lines in `text`, `markdown` and
`html`; the statistics stay in `harness.stats`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import stats

METRIC_TITLES = {"accuracy": "WA", "uar": "UAR", "macro_f1": "macro-F1", "weighted_f1": "weighted-F1"}
FAILURE_COLUMNS = ["modality", "clip_id", "stage", "error"]


def escape(value: Any) -> str:
    """The report's one HTML escaper: every text and attribute value the pages write goes through it (quotes
    included, so a value never leaves its attribute), figure paths and names alike."""
    return html.escape(str(value), quote=True)

# each verdict of a row against its table's best method, in the words and CSS class the pages use (docs/report.md)
VERDICT_WORDS = {stats.BEST: "best", stats.EQUIVALENT: "practically equivalent to the best",
                 stats.WORSE: "worse than the best", stats.UNRESOLVED: "not separable from the best with this design"}
VERDICT_CLASSES = {stats.BEST: "best", stats.EQUIVALENT: "equivalent", stats.WORSE: "worse",
                   stats.UNRESOLVED: "unresolved"}


@dataclass
class Leaderboard:
    table: pd.DataFrame  # one row per (dataset, setting, method)
    paths: dict[str, Path]


@dataclass
class RunData:
    """What the report reads from one run's artifacts (None/empty when the run lacks them)."""

    predictions: pd.DataFrame | None
    classes: list[str]
    grouped_by: str  # "group" (the protocol's unit) or "clip_id" for runs that did not store groups
    failures: pd.DataFrame


@dataclass
class Section:
    """One leaderboard table: the results of one dataset under one evaluation setting."""

    dataset: str
    setting: str
    label: str  # the setting in words
    title: str  # dataset, plus what differs from the dataset's other settings
    slug: str  # folder/anchor name
    metric: str
    rows: pd.DataFrame  # ranked, with the statistics
    classes: list[str]
    grouped_by: str
    n_groups: int
    failures: pd.DataFrame
    resolution: stats.Resolution | None = None  # what this table's design can settle (None: no predictions)
    gain: dict[str, Any] | None = None  # best fusion vs best single modality, with its `stats.PairedDifference`
    per_class_f1: pd.DataFrame = field(default_factory=pd.DataFrame)  # methods x classes
    figures: dict[str, Path] = field(default_factory=dict)  # "scores", "per_class", "confusion:<method>"
    best_published: str = ""  # where the field stands under this protocol (harness.sota), or why none compares
    # perceived-emotion scores with intervals and verdicts, one row per (method, rating set, metric)
    # (`harness.report.soft_labels.analyse_soft`); empty when no stored prediction carries vote counts
    soft: pd.DataFrame = field(default_factory=pd.DataFrame)
