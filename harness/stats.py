"""Statistics that say which leaderboard differences are real: pure functions on prediction tables and score arrays.

Why these and not mean ± std over folds: folds share speakers' styles, corpora have 4-10 folds, and adjacent
leaderboard ranks are usually closer than one standard deviation. So:

- `group_bootstrap_ci` gives a 95 % interval for a headline metric by resampling the protocol's *groups* (speakers,
  or sessions/dialogues) with replacement, never single clips, because clips of one speaker are not independent
  (scipy.stats.bootstrap, percentile method).
- `paired_permutation_test` compares two methods on the same test clips by swapping, group by group, which method's
  predictions count (scipy.stats.permutation_test, paired "samples" design; exact when the groups are few).
- `mcnemar_test` is the classic clip-level paired test on pooled predictions (statsmodels); it assumes independent
  clips, so it is reported beside the group test, not used for the tie decision.
- `compare_with_best` runs both against the dataset's best method and Holm-corrects them (statsmodels).
- `cross_dataset_ranking` ranks methods over datasets: mean ranks always, and Friedman + Nemenyi (autorank,
  nonparametric) when there are enough datasets for the test.

Every score is computed by `harness.metrics` from stored predictions; the statistic of every test is the one the
table shows: the mean over folds of the headline metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import headline_from_confusions

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
PERMUTATION_RESAMPLES = 9999
ALPHA = 0.05
AUTORANK_MIN_DATASETS = 5  # autorank refuses fewer "performance estimations" (rows) than this


@dataclass(frozen=True)
class GroupedConfusions:
    """One method's test predictions as confusion counts per (group, fold): `counts[g, f, true, predicted]`."""

    groups: list[str]
    folds: list[str]
    counts: np.ndarray

    def fold_mean(self, weights: np.ndarray, metric: str) -> np.ndarray:
        """Mean over folds of `metric` with group g counted `weights[..., g]` times (folds left empty are skipped)."""
        matrices = np.einsum("...g,gfij->...fij", weights, self.counts)
        with np.errstate(invalid="ignore"):
            return np.nanmean(headline_from_confusions(matrices)[metric], axis=-1)


def grouped_confusions(predictions: pd.DataFrame, classes: list[str], group_column: str = "group",
                       groups: list[str] | None = None) -> GroupedConfusions:
    """Count one method's predictions per (group, fold, true class, predicted class).

    `predictions` has columns fold, y_true, y_pred (class names) and `group_column`; `groups` fixes the group order
    (so two methods can be paired group by group).
    """
    missing = {"fold", "y_true", "y_pred", group_column} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions lack columns {sorted(missing)}; expected fold, {group_column}, y_true, y_pred")
    index = {name: i for i, name in enumerate(classes)}
    unknown = set(predictions["y_true"].astype(str)) | set(predictions["y_pred"].astype(str))
    unknown -= set(index)
    if unknown:
        raise ValueError(f"predictions use classes {sorted(unknown)} that are not in {classes}")
    group_names = groups if groups is not None else sorted(predictions[group_column].astype(str).unique())
    group_index = {g: i for i, g in enumerate(group_names)}
    fold_names = sorted(predictions["fold"].astype(str).unique())
    fold_index = {f: i for i, f in enumerate(fold_names)}
    counts = np.zeros((len(group_names), len(fold_names), len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (predictions[group_column].astype(str).map(group_index).to_numpy(),
                       predictions["fold"].astype(str).map(fold_index).to_numpy(),
                       predictions["y_true"].astype(str).map(index).to_numpy(),
                       predictions["y_pred"].astype(str).map(index).to_numpy()), 1)
    return GroupedConfusions(group_names, fold_names, counts)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval, and how it was obtained."""

    estimate: float
    low: float
    high: float
    n_groups: int
    n_resamples: int
    confidence: float = CONFIDENCE
    method: str = "percentile bootstrap over groups"


def group_bootstrap_ci(predictions: pd.DataFrame, metric: str, classes: list[str], *, group_column: str = "group",
                       n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the fold-mean `metric`, resampling whole groups (speakers, dialogues).

    A resample draws as many groups as there are, with replacement, and scores every clip of each drawn group
    (a group drawn twice counts twice) in its own fold. One group gives a zero-width interval: there is nothing to
    resample, and the report shows the group count beside the interval.
    """
    from scipy.stats import bootstrap

    grouped = grouped_confusions(predictions, classes, group_column)
    n_groups = len(grouped.groups)
    estimate = float(grouped.fold_mean(np.ones(n_groups), metric))
    if n_groups < 2:
        return Interval(estimate, estimate, estimate, n_groups, 0, confidence)

    def statistic(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        drawn = np.moveaxis(np.asarray(drawn), axis, -1)
        weights = (drawn[..., None] == np.arange(n_groups)).sum(axis=-2)
        return grouped.fold_mean(weights, metric)

    result = bootstrap((np.arange(n_groups),), statistic, n_resamples=n_resamples, confidence_level=confidence,
                       method="percentile", vectorized=True, batch=500, rng=np.random.default_rng(seed))
    return Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high),
                    n_groups, n_resamples, confidence)


@dataclass(frozen=True)
class PairedTest:
    """Two methods on the same clips: difference of the fold-mean metric (a - b) and the test's p-value."""

    difference: float
    p_value: float
    n_groups: int
    exact: bool


def _paired(a: pd.DataFrame, b: pd.DataFrame, group_column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of a and b on the clips both scored (by fold and clip), in the same order."""
    keys = ["fold", "clip_id"]
    both = a[keys].astype(str).merge(b[keys].astype(str), on=keys)
    if both.empty:
        raise ValueError("the two methods share no test clip (fold, clip_id); they cannot be compared")
    a = a.astype({"fold": str, "clip_id": str}).merge(both, on=keys).sort_values(keys, ignore_index=True)
    b = b.astype({"fold": str, "clip_id": str}).merge(both, on=keys).sort_values(keys, ignore_index=True)
    if not (a["y_true"].astype(str).to_numpy() == b["y_true"].astype(str).to_numpy()).all():
        raise ValueError("the two methods' predictions disagree on true labels of the same clips")
    return a, b


def paired_permutation_test(a: pd.DataFrame, b: pd.DataFrame, metric: str, classes: list[str], *,
                            group_column: str = "group", n_resamples: int = PERMUTATION_RESAMPLES,
                            seed: int = 0) -> PairedTest:
    """Two-sided paired permutation test of "a and b score the same" on the fold-mean `metric`.

    Under the null hypothesis the two methods' predictions are exchangeable within each group, so every one of the
    2^groups ways of swapping them group by group is equally likely; the p-value is the share of swaps whose
    |difference| reaches the observed one (scipy counts the observed arrangement). Exact when 2^groups <=
    n_resamples, Monte Carlo otherwise.
    """
    from scipy.stats import permutation_test

    a, b = _paired(a, b, group_column)
    groups = sorted(a[group_column].astype(str).unique())
    counts_a = grouped_confusions(a, classes, group_column, groups)
    counts_b = grouped_confusions(b, classes, group_column, groups)
    if counts_a.folds != counts_b.folds:
        raise ValueError("the two methods were tested on different folds")
    n_groups = len(groups)
    stacked = np.stack([counts_a.counts, counts_b.counts])  # [method, group, fold, C, C]

    def score(tokens: np.ndarray) -> np.ndarray:
        # token g means "method a's predictions of group g", token n_groups + g "method b's"; position = group
        from_b = (tokens >= n_groups).astype(float)
        matrices = (np.einsum("...g,gfij->...fij", 1.0 - from_b, stacked[0])
                    + np.einsum("...g,gfij->...fij", from_b, stacked[1]))
        with np.errstate(invalid="ignore"):
            return np.nanmean(headline_from_confusions(matrices)[metric], axis=-1)

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return score(np.moveaxis(x, axis, -1)) - score(np.moveaxis(y, axis, -1))

    result = permutation_test((np.arange(n_groups), np.arange(n_groups) + n_groups), statistic,
                              permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                              alternative="two-sided", rng=np.random.default_rng(seed))
    return PairedTest(float(result.statistic), float(min(1.0, result.pvalue)), n_groups,
                      exact=2 ** n_groups <= n_resamples)


def mcnemar_test(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Exact McNemar p-value on the clips both methods scored: do they err on different clips more than chance?

    Assumes clips are independent (they are not within a speaker), so the report shows it as a clip-level check.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = _paired(a, b, group_column="fold")
    right_a = (a["y_true"].astype(str) == a["y_pred"].astype(str)).to_numpy()
    right_b = (b["y_true"].astype(str) == b["y_pred"].astype(str)).to_numpy()
    table = [[int(np.sum(right_a & right_b)), int(np.sum(right_a & ~right_b))],
             [int(np.sum(~right_a & right_b)), int(np.sum(~right_a & ~right_b))]]
    return float(mcnemar(table, exact=True).pvalue)


def holm(p_values: list[float], alpha: float = ALPHA) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels), controlling the family-wise error over one dataset's comparisons."""
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return np.array([])
    return multipletests(np.asarray(p_values, dtype=float), alpha=alpha, method="holm")[1]


def compare_with_best(predictions: dict[str, pd.DataFrame], metric: str, classes: list[str], *,
                      group_column: str = "group", alpha: float = ALPHA, seed: int = 0,
                      n_resamples: int = PERMUTATION_RESAMPLES) -> pd.DataFrame:
    """Each method against the best one (highest fold-mean `metric`) on the same clips, Holm-corrected.

    Returns one row per method (the best first, then by score): method, score, difference (method - best), p_perm,
    p_perm_holm, p_mcnemar, p_mcnemar_holm, tied_with_best. A method is tied with the best when the Holm-adjusted
    group permutation test does not reject equality at `alpha` ("not significantly worse").
    """
    if not predictions:
        raise ValueError("no predictions to compare")
    scores = {m: float(grouped_confusions(p, classes, group_column).fold_mean(
        np.ones(p[group_column].nunique()), metric)) for m, p in predictions.items()}
    order = sorted(scores, key=lambda m: (-scores[m], m))
    best = order[0]
    rows: list[dict[str, Any]] = [{"method": best, "score": scores[best], "difference": 0.0, "p_perm": np.nan,
                                   "p_mcnemar": np.nan, "exact": True}]
    for method in order[1:]:
        test = paired_permutation_test(predictions[method], predictions[best], metric, classes,
                                       group_column=group_column, n_resamples=n_resamples, seed=seed)
        rows.append({"method": method, "score": scores[method], "difference": test.difference,
                     "p_perm": test.p_value, "p_mcnemar": mcnemar_test(predictions[method], predictions[best]),
                     "exact": test.exact})
    table = pd.DataFrame(rows)
    others = table.index[1:]
    table["p_perm_holm"] = np.nan
    table["p_mcnemar_holm"] = np.nan
    table.loc[others, "p_perm_holm"] = holm(table.loc[others, "p_perm"].tolist(), alpha)
    table.loc[others, "p_mcnemar_holm"] = holm(table.loc[others, "p_mcnemar"].tolist(), alpha)
    table["tied_with_best"] = [True] + [bool(p >= alpha) for p in table.loc[others, "p_perm_holm"]]
    return table


def tie_aware_ranks(tied_with_best: list[bool]) -> list[str]:
    """Rank labels for rows sorted best first: every method tied with the best shares "1=", the rest keep their
    position, so the table never implies an order the test could not establish at the top."""
    n_tied = sum(tied_with_best)
    return [("1=" if n_tied > 1 else "1") if tied else str(position)
            for position, tied in enumerate(tied_with_best, start=1)]


@dataclass
class CrossDatasetRanking:
    """Methods ranked over datasets: mean ranks always; the Friedman/Nemenyi outcome when it could be run."""

    scores: pd.DataFrame  # index dataset, columns method (only methods run on every dataset)
    mean_ranks: pd.Series  # method -> mean rank (1 = best), ascending
    tested: bool
    reason: str  # why the test was or was not run, in words for the report
    friedman_statistic: float = float("nan")
    friedman_p: float = float("nan")
    critical_difference: float = float("nan")
    result: Any = field(default=None, repr=False)  # autorank's RankResult, for the diagram


def cross_dataset_ranking(scores: pd.DataFrame, alpha: float = ALPHA) -> CrossDatasetRanking:
    """Rank the methods (columns) over the datasets (rows) of a score table; higher scores are better.

    Methods missing on some dataset are left out (the Friedman design needs every method on every dataset). Mean
    ranks use average ranks for ties. Friedman's test with Nemenyi's post-hoc runs through autorank
    (`force_mode="nonparametric"`) when there are at least five datasets (autorank's minimum) and three methods;
    otherwise `reason` says what is missing and no diagram is drawn.
    """
    complete = scores.dropna(axis=1, how="any")
    complete = complete.reindex(sorted(complete.columns), axis=1)
    n_datasets, n_methods = complete.shape
    ranks = complete.rank(axis=1, ascending=False, method="average")
    mean_ranks = ranks.mean(axis=0).sort_values(kind="stable")
    if n_methods < 3:
        return CrossDatasetRanking(complete, mean_ranks, False,
                                   f"{n_methods} method(s) ran on all {n_datasets} datasets; the Friedman test "
                                   "compares at least three.")
    if n_datasets < AUTORANK_MIN_DATASETS:
        return CrossDatasetRanking(complete, mean_ranks, False,
                                   f"only {n_datasets} dataset(s) share these methods; the Friedman test with the "
                                   f"Nemenyi post-hoc needs at least {AUTORANK_MIN_DATASETS} (autorank's minimum), "
                                   "so no test is run and no critical-difference diagram is drawn. Mean ranks over "
                                   "so few datasets are descriptive only.")
    import contextlib
    import io

    from autorank import autorank
    from scipy.stats import friedmanchisquare

    with contextlib.redirect_stdout(io.StringIO()):  # autorank prints a note when force_mode is set
        result = autorank(complete, alpha=alpha, order="descending", force_mode="nonparametric")
    statistic = friedmanchisquare(*[complete[c].to_numpy() for c in complete.columns]).statistic
    return CrossDatasetRanking(complete, mean_ranks, True,
                               f"Friedman test over {n_datasets} datasets and {n_methods} methods, Nemenyi post-hoc "
                               f"at alpha = {alpha} (autorank, nonparametric).",
                               float(statistic), float(result.pvalue), float(result.cd or np.nan), result)
