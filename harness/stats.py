"""Statistics that say which leaderboard differences are real: pure functions on prediction tables and score arrays.

Why these and not mean ± std over folds: folds share speakers' styles, corpora have 4-10 folds, and adjacent
leaderboard ranks are usually closer than one standard deviation. So:

- `group_bootstrap_ci` gives a 95 % interval for a headline metric by resampling the protocol's *groups* (speakers,
  or sessions/dialogues) with replacement, never single clips, because clips of one speaker are not independent
  (scipy.stats.bootstrap, percentile method).
- `jackknife_tests` compares two methods on the same test clips: the paired difference of the table's statistic,
  its delete-one-group jackknife standard error and a t-test on groups - 1 degrees of freedom (scipy), and two
  one-sided tests (TOST) against a region of practical equivalence, ±`ROPE`. Why not the exact group-swap
  permutation test this module used before: its p-value cannot go below 2 / 2^groups, so with 8-10 groups and a
  Holm correction over a full table no comparison could ever be significant. The t-test has no such floor.
- `compare_confusions` / `compare_with_best` test every pair of a table's methods (the best is chosen from the same
  data, so "vs the best" is a selected pair), Holm-correct them (statsmodels) and give each row one of three
  verdicts against the best: worse, practically equivalent, or not separable with this design (`verdict`);
  `resolution` says what the design can settle. benchmarks/verdicts.py calibrates all of it on planted truths.
- The same intervals, tests and verdicts serve metrics that are a mean over clips (the perceived-emotion soft-label
  scores): `GroupedClipScores` sums each clip's score per (group, fold) where `GroupedConfusions` counts confusions,
  so `group_bootstrap_ci` / `compare_confusions` take either (`clip_score_interval`, `compare_clip_scores`); a
  lower-is-better score (JSD) is negated inside and given back in its own direction.
- `cross_dataset_ranking` ranks methods over datasets: mean ranks always; Friedman + Nemenyi (autorank,
  nonparametric) with at least five datasets; with two to four, baycomp's Bayesian signed-rank test of each
  method against the one of best mean rank (`bayesian_signed_rank`).

Written here by hand, because no maintained library has them for a nonlinear statistic over clustered clips: the
jackknife pseudo-values (a few lines; the tests on them are scipy's) and the choice of verdict from two p-values.
Every score is computed by `harness.metrics` from stored predictions; the statistic of every test is the one the
table shows: the mean over folds of the headline metric.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import headline_from_confusions

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
ALPHA = 0.05
ROPE = 0.01  # region of practical equivalence on the headline metric: |difference| below it does not matter
MIN_GROUPS = 3  # the jackknife t-test needs two degrees of freedom to say anything
# the verdict of a comparison with the best method of a table (docs/report.md says each in words)
BEST, BETTER, WORSE, EQUIVALENT, UNRESOLVED = "best", "better", "worse", "equivalent", "not separable"
BAYES_SAMPLES = 3000  # posterior draws per baycomp signed-rank test (a Python loop): probabilities +-0.01
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

    def leave_one_out(self, metric: str) -> np.ndarray:
        """`fold_mean` without group g, for every g at once: `[g]` (a fold left empty by it is skipped)."""
        matrices = self.counts.sum(axis=0)[None] - self.counts
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
class GroupedClipScores:
    """One method's per-clip scores summed per (group, fold), `sums[metric][g, f]`, with the clips counted,
    `counts[metric][g, f]`: for metrics that are a mean over clips (the soft-label scores), what `GroupedConfusions`
    is for the confusion-based ones, with the same `fold_mean` / `leave_one_out`, so the same bootstrap, jackknife
    and Holm apply. Scores are stored higher-is-better (`sign` -1 for a lower-is-better metric such as JSD)."""

    groups: list[str]
    folds: list[str]
    sums: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    sign: dict[str, float]

    def fold_mean(self, weights: np.ndarray, metric: str) -> np.ndarray:
        """Mean over folds of the per-fold clip mean, group g counted `weights[..., g]` times (an empty fold is
        skipped)."""
        total = np.einsum("...g,gf->...f", weights, self.sums[metric])
        n = np.einsum("...g,gf->...f", weights, self.counts[metric])
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.where(n > 0, total / np.where(n > 0, n, 1), np.nan), axis=-1)

    def leave_one_out(self, metric: str) -> np.ndarray:
        """`fold_mean` without group g, for every g at once: `[g]`."""
        groups = len(self.groups)
        return self.fold_mean(np.ones((groups, groups)) - np.eye(groups), metric)


def grouped_clip_scores(scores: pd.DataFrame, metrics: dict[str, bool], group_column: str = "group",
                        groups: list[str] | None = None, folds: list[str] | None = None) -> GroupedClipScores:
    """Sum per-clip scores per (group, fold). `scores` has columns fold, `group_column` and one per metric (NaN:
    the clip has no score for it); `metrics` maps each metric to whether lower is better; `groups`/`folds` fix the
    order (so methods pair group by group)."""
    missing = {"fold", group_column, *metrics} - set(scores.columns)
    if missing:
        raise ValueError(f"clip scores lack columns {sorted(missing)}")
    group_names = groups if groups is not None else sorted(scores[group_column].astype(str).unique())
    fold_names = folds if folds is not None else sorted(scores["fold"].astype(str).unique())
    g = scores[group_column].astype(str).map({name: i for i, name in enumerate(group_names)}).to_numpy()
    f = scores["fold"].astype(str).map({name: i for i, name in enumerate(fold_names)}).to_numpy()
    sums, counts, sign = {}, {}, {}
    for metric, lower_is_better in metrics.items():
        sign[metric] = -1.0 if lower_is_better else 1.0
        values = scores[metric].to_numpy(dtype=float)
        present = ~np.isnan(values)
        sums[metric] = np.zeros((len(group_names), len(fold_names)))
        counts[metric] = np.zeros((len(group_names), len(fold_names)))
        np.add.at(sums[metric], (g[present], f[present]), sign[metric] * values[present])
        np.add.at(counts[metric], (g[present], f[present]), 1.0)
    return GroupedClipScores(list(group_names), list(fold_names), sums, counts, sign)


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
    return bootstrap_interval(grouped_confusions(predictions, classes, group_column), metric,
                              n_resamples=n_resamples, confidence=confidence, seed=seed)


def bootstrap_interval(grouped: GroupedConfusions | GroupedClipScores, metric: str, *,
                       n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = 0) -> Interval:
    """`group_bootstrap_ci`'s percentile bootstrap over groups, on confusion counts or per-clip scores."""
    from scipy.stats import bootstrap

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
class PairedDifference:
    """Two methods on the same clips: the difference of the fold-mean metric (a - b) and what the design says of it.

    `se` is the delete-one-group jackknife standard error, `df` = groups - 1; `p_difference` is the two-sided
    p-value of "a and b score the same", `p_equivalence` the TOST p-value of "|a - b| < rope" (the larger of the
    two one-sided p-values); both NaN when fewer than `MIN_GROUPS` groups leave nothing to test.
    """

    difference: float
    se: float
    df: int
    p_difference: float
    p_equivalence: float
    n_groups: int
    rope: float


def jackknife_difference(a: GroupedConfusions, b: GroupedConfusions, metric: str,
                         rope: float = ROPE) -> PairedDifference:
    """Paired difference of the fold-mean `metric` with its delete-one-group jackknife t-test and a TOST.

    Each group (speaker, session, dialogue) is left out in turn from both methods and the statistic (the difference
    of the fold means, as the table shows it) recomputed; `jackknife_tests` tests the pseudo-values.
    """
    if a.groups != b.groups or a.folds != b.folds:
        raise ValueError("the two methods must be counted over the same groups and folds (pair their clips first)")
    difference = a.fold_mean(np.ones(len(a.groups)), metric) - b.fold_mean(np.ones(len(b.groups)), metric)
    left_out = a.leave_one_out(metric) - b.leave_one_out(metric)
    return jackknife_tests(np.atleast_1d(difference), left_out[None, :], rope)[0]


def jackknife_tests(differences: np.ndarray, left_out: np.ndarray, rope: float = ROPE) -> list[PairedDifference]:
    """The tests of k paired differences at once: `differences[k]` on all groups, `left_out[k, g]` without group g.

    The jackknife pseudo-values G * d - (G - 1) * d_(-g) are tested with a one-sample t-test on G - 1 degrees of
    freedom (scipy.stats.ttest_1samp, vectorised over the k comparisons): the delete-one-cluster jackknife with a
    t reference, which stays valid with few clusters (MacKinnon, Nielsen & Webb 2023), two-sided for "the same
    score", and as two one-sided tests against -rope and +rope for "practically equivalent" (Schuirmann 1987).
    Identical predictions give pseudo-values that are all 0: no difference (p = 1) and, for any rope > 0,
    equivalence (p = 0). Fewer than MIN_GROUPS groups: nothing is tested (NaN).
    """
    from scipy.stats import ttest_1samp

    differences = np.asarray(differences, dtype=float)
    n_groups = left_out.shape[1]
    if n_groups < MIN_GROUPS:
        return [PairedDifference(float(d), np.nan, n_groups - 1, np.nan, np.nan, n_groups, rope) for d in differences]
    pseudo = n_groups * differences[:, None] - (n_groups - 1) * left_out
    se = np.std(pseudo, axis=1, ddof=1) / np.sqrt(n_groups)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant pseudo-values: decided below, not by the t-test
        p_difference = ttest_1samp(pseudo, 0.0, axis=1).pvalue
        p_equivalence = np.maximum(ttest_1samp(pseudo, -rope, axis=1, alternative="greater").pvalue,
                                   ttest_1samp(pseudo, rope, axis=1, alternative="less").pvalue)
    out = []
    for k, difference in enumerate(differences):
        if not se[k] > 1e-12:  # every group says the same (identical predictions): the data leave no doubt
            out.append(PairedDifference(float(difference), 0.0, n_groups - 1, 0.0 if abs(difference) > 1e-12 else 1.0,
                                        0.0 if abs(difference) < rope else 1.0, n_groups, rope))
        else:
            out.append(PairedDifference(float(difference), float(se[k]), n_groups - 1, float(p_difference[k]),
                                        float(p_equivalence[k]), n_groups, rope))
    return out


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


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str, classes: list[str], *,
                      group_column: str = "group", rope: float = ROPE) -> PairedDifference:
    """`jackknife_difference` of two prediction tables, on the clips both scored (paired by fold and clip)."""
    a, b = _paired(a, b, group_column)
    groups = sorted(a[group_column].astype(str).unique())
    counts_a = grouped_confusions(a, classes, group_column, groups)
    counts_b = grouped_confusions(b, classes, group_column, groups)
    if counts_a.folds != counts_b.folds:
        raise ValueError("the two methods were tested on different folds")
    return jackknife_difference(counts_a, counts_b, metric, rope)


def holm(p_values: list[float], alpha: float = ALPHA) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels), controlling the family-wise error over one table's comparisons.
    NaN (a comparison the design cannot test) stays NaN and does not count as a comparison."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        out[tested] = multipletests(p[tested], alpha=alpha, method="holm")[1]
    return out


def verdict(p_difference_holm: float, p_equivalence_holm: float, difference: float, alpha: float = ALPHA) -> str:
    """One comparison's verdict from its Holm-adjusted p-values: equivalence first (a difference inside the ROPE
    does not matter in practice even where it is detectable), then a supported difference, else not separable."""
    if p_equivalence_holm < alpha:
        return EQUIVALENT
    if p_difference_holm < alpha:
        return BETTER if difference > 0 else WORSE
    return UNRESOLVED


def compare_confusions(confusions: dict[str, GroupedConfusions] | dict[str, GroupedClipScores], metric: str, *,
                       alpha: float = ALPHA, rope: float = ROPE) -> pd.DataFrame:
    """Every method against the best one (highest fold-mean `metric`), all counted over the same groups and folds.

    Why all pairs are tested and corrected, though the table shows only "vs best": the best is chosen from the same
    data, so "method i vs the best" is whichever of the M(M-1)/2 pairs came out on top; correcting for M - 1
    comparisons with a control fixed in advance lets the family-wise error grow with M (benchmarks/verdicts.md
    measures it). Holm over every pair holds it at alpha whatever the selection (García & Herrera, JMLR 9, 2008).

    Returns one row per method (the best first, then by score, ties by name): method, score, difference
    (method - best), se, p_difference, p_difference_holm, p_equivalence, p_equivalence_holm, verdict ("best",
    "equivalent", "worse" or "not separable"); `attrs["comparisons"]` is the size of the corrected family.
    """
    names = sorted(confusions)
    first = confusions[names[0]]
    if any(c.groups != first.groups or c.folds != first.folds for c in confusions.values()):
        raise ValueError("every method must be counted over the same groups and folds (pair their clips first)")
    every = np.ones(len(first.groups))
    scores = np.array([confusions[m].fold_mean(every, metric) for m in names], dtype=float)
    order = sorted(range(len(names)), key=lambda k: (-scores[k], names[k]))
    left_out = np.stack([confusions[m].leave_one_out(metric) for m in names])
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    tests = jackknife_tests(np.array([scores[i] - scores[j] for i, j in pairs], dtype=float),
                            np.array([left_out[i] - left_out[j] for i, j in pairs]).reshape(len(pairs), len(every)),
                            rope)
    p_difference = holm([t.p_difference for t in tests], alpha)
    p_equivalence = holm([t.p_equivalence for t in tests], alpha)
    index = {pair: n for n, pair in enumerate(pairs)}
    best = order[0]
    rows = [{"method": names[best], "score": scores[best], "difference": 0.0, "se": np.nan, "p_difference": np.nan,
             "p_difference_holm": np.nan, "p_equivalence": np.nan, "p_equivalence_holm": np.nan, "verdict": BEST}]
    for k in order[1:]:
        n = index[(min(k, best), max(k, best))]
        rows.append({"method": names[k], "score": scores[k], "difference": scores[k] - scores[best],
                     "se": tests[n].se, "p_difference": tests[n].p_difference, "p_difference_holm": p_difference[n],
                     "p_equivalence": tests[n].p_equivalence, "p_equivalence_holm": p_equivalence[n],
                     "verdict": verdict(p_difference[n], p_equivalence[n], scores[k] - scores[best], alpha)})
    table = pd.DataFrame(rows)
    table.attrs["comparisons"] = len(pairs)
    return table


def _on_shared_clips(tables: dict[str, pd.DataFrame], group_column: str, what: str
                     ) -> tuple[dict[str, pd.DataFrame], list[str], list[str]]:
    """Each method's table restricted to the (fold, clip_id) pairs every method has, so comparisons are paired;
    with the sorted groups and folds of those clips. `what` names the clips in the error when none is shared."""
    keys = ["fold", "clip_id"]
    shared = None
    for table in tables.values():
        found = table[keys].astype(str).drop_duplicates()
        shared = found if shared is None else shared.merge(found, on=keys)
    if shared is None or shared.empty:
        raise ValueError(f"the methods share no {what} (fold, clip_id); they cannot be compared")
    aligned = {m: t.astype({"fold": str, "clip_id": str}).merge(shared, on=keys) for m, t in tables.items()}
    groups = sorted(set().union(*[set(t[group_column].astype(str)) for t in aligned.values()]))
    return aligned, groups, sorted(set(shared["fold"]))


def compare_with_best(predictions: dict[str, pd.DataFrame], metric: str, classes: list[str], *,
                      group_column: str = "group", alpha: float = ALPHA, rope: float = ROPE) -> pd.DataFrame:
    """`compare_confusions` of prediction tables, on the clips every method scored (paired by fold and clip).

    The scores in the returned table are those of the shared clips; methods of one evaluation setting score the same
    clips (a missing modality is handled by the method's rule, not by dropping the clip), so they equal the logged
    means.
    """
    if not predictions:
        raise ValueError("no predictions to compare")
    aligned, groups, _ = _on_shared_clips(predictions, group_column, "test clip")
    return compare_confusions({m: grouped_confusions(p, classes, group_column, groups) for m, p in aligned.items()},
                              metric, alpha=alpha, rope=rope)


def clip_score_interval(scores: pd.DataFrame, metric: str, lower_is_better: bool, *, group_column: str = "group",
                        seed: int = 0) -> Interval:
    """`group_bootstrap_ci` of a per-clip score's fold mean (columns fold, `group_column`, `metric`), in the
    metric's own direction."""
    grouped = grouped_clip_scores(scores, {metric: lower_is_better}, group_column)
    interval = bootstrap_interval(grouped, metric, seed=seed)
    if not lower_is_better:
        return interval
    return Interval(-interval.estimate, -interval.high, -interval.low, interval.n_groups, interval.n_resamples,
                    interval.confidence, interval.method)


def compare_clip_scores(scores: dict[str, pd.DataFrame], metric: str, lower_is_better: bool, *,
                        group_column: str = "group", alpha: float = ALPHA, rope: float = ROPE) -> pd.DataFrame:
    """`compare_confusions` of a per-clip score (one table per method: fold, clip_id, `group_column`, `metric`), on
    the clips every method scored: the best is the lowest for a lower-is-better metric, and `score` and
    `difference` (method - best) are given in the metric's own direction (a worse JSD has a positive difference).
    The tests are those of the headline metric: jackknife t-test, TOST against ±rope, Holm over every pair."""
    if not scores:
        raise ValueError("no clip scores to compare")
    aligned, groups, folds = _on_shared_clips(scores, group_column, "scored clip")
    table = compare_confusions({m: grouped_clip_scores(t, {metric: lower_is_better}, group_column, groups, folds)
                                for m, t in aligned.items()}, metric, alpha=alpha, rope=rope)
    if lower_is_better:
        table[["score", "difference"]] = -table[["score", "difference"]]
        table["difference"] = table["difference"] + 0.0  # no -0.0 for the best row
    return table


def verdict_ranks(verdicts: list[str]) -> list[str]:
    """Rank labels for rows sorted best first: the best and the methods practically equivalent to it share "1="
    (only equivalence is a tie); a method shown worse keeps its position; a method the design cannot separate from
    the best keeps its position with "?" (its place is the point estimate's, not a finding)."""
    n_top = sum(v in (BEST, EQUIVALENT) for v in verdicts)
    labels = []
    for position, name in enumerate(verdicts, start=1):
        if name in (BEST, EQUIVALENT):
            labels.append("1=" if n_top > 1 else "1")
        else:
            labels.append(f"{position}?" if name == UNRESOLVED else str(position))
    return labels


@dataclass(frozen=True)
class Resolution:
    """What one table's design can settle: its groups, the bar the first Holm step sets, and the smallest
    difference it detects with 80 % power (at the table's median jackknife standard error)."""

    n_groups: int
    n_comparisons: int
    first_step_p: float  # the raw p-value the most significant comparison must beat (alpha / comparisons)
    critical_t: float  # |t| that beats it, on groups - 1 degrees of freedom
    detectable: float  # smallest |difference| found with 80 % power at the first Holm step (NaN: not testable)
    rope: float = ROPE


def resolution(n_groups: int, n_comparisons: int, ses: list[float], alpha: float = ALPHA, power: float = 0.8,
               rope: float = ROPE) -> Resolution:
    """The design's resolution: with m comparisons (all pairs of the table's methods, as `compare_confusions`
    corrects them) the first Holm step tests at alpha / m, so a difference is
    found with `power` when it is (t_{1 - alpha/2m} + t_power) standard errors large (df = groups - 1); there is no
    p-value floor (the t-test is continuous), unlike the exact group-swap permutation test (2 / 2^groups)."""
    from scipy.stats import t

    m = max(1, n_comparisons)
    if n_groups < MIN_GROUPS:
        return Resolution(n_groups, n_comparisons, alpha / m, np.inf, np.nan, rope)
    df = n_groups - 1
    critical = float(t.ppf(1 - alpha / (2 * m), df))
    finite = [s for s in ses if np.isfinite(s) and s > 0]
    detectable = float((critical + t.ppf(power, df)) * np.median(finite)) if finite else np.nan
    return Resolution(n_groups, n_comparisons, alpha / m, critical, detectable, rope)


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
    # with 2-4 datasets: each method against the one of best mean rank, baycomp's Bayesian signed-rank test:
    # method, p_reference_better, p_equivalent, p_method_better (posterior probabilities, ROPE = ROPE)
    bayesian: pd.DataFrame | None = None
    reference: str = ""


def bayesian_signed_rank(scores: pd.DataFrame, reference: str, rope: float = ROPE, seed: int = 0) -> pd.DataFrame:
    """Every method (column) against `reference` over the datasets (rows): the Bayesian signed-rank test (Benavoli,
    Corani, Demšar & Zaffalon, "Time for a change", JMLR 18(77), 2017; baycomp.SignedRankTest), whose posterior
    gives P(reference better), P(practically equivalent: |difference| < rope) and P(method better). Unlike the
    Friedman test it says something with two datasets: its Dirichlet-process prior (one pseudo-observation at 0)
    keeps two datasets from looking decisive, and the probabilities say how far the evidence goes."""
    from baycomp import SignedRankTest

    rows = []
    for method in scores.columns:
        if method == reference:
            continue
        p_reference, p_rope, p_method = SignedRankTest.probs(scores[reference].to_numpy(dtype=float),
                                                             scores[method].to_numpy(dtype=float), rope=rope,
                                                             nsamples=BAYES_SAMPLES, random_state=seed)
        rows.append({"method": method, "p_reference_better": float(p_reference), "p_equivalent": float(p_rope),
                     "p_method_better": float(p_method)})
    return pd.DataFrame(rows, columns=["method", "p_reference_better", "p_equivalent", "p_method_better"])


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
    if n_methods < 2:
        return CrossDatasetRanking(complete, mean_ranks, False,
                                   f"{n_methods} method(s) ran on all {n_datasets} datasets: nothing to compare.")
    if n_methods < 3 and n_datasets >= AUTORANK_MIN_DATASETS:
        return CrossDatasetRanking(complete, mean_ranks, False,
                                   f"{n_methods} methods ran on all {n_datasets} datasets; the Friedman test "
                                   "compares at least three.")
    if n_datasets < AUTORANK_MIN_DATASETS:
        reference = str(mean_ranks.index[0])
        return CrossDatasetRanking(complete, mean_ranks, False,
                                   f"only {n_datasets} dataset(s) share these methods; the Friedman test with the "
                                   f"Nemenyi post-hoc needs at least {AUTORANK_MIN_DATASETS} (autorank's minimum), "
                                   "so no critical-difference diagram is drawn and the mean ranks are descriptive. "
                                   f"Instead each method is compared with `{reference}` (best mean rank) by the "
                                   f"Bayesian signed-rank test (baycomp, ROPE ±{ROPE:g}).",
                                   bayesian=bayesian_signed_rank(complete, reference), reference=reference)
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
