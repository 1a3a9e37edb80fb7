"""The soft-label (perceived-emotion) table under a leaderboard table: intervals and verdicts for each rating set's
scores, by the headline metric's statistics.

Each result's stored predictions carry its test clips' vote counts (`votes:<set>:<class>` columns, written by
`harness.ratings.with_votes`), so every clip's JSD and tie-aware plurality credit is computed again here from the
stored probabilities (`harness.ratings.clip_soft_scores`), and `harness.stats` gives each column what the headline
column gets: a 95 % percentile bootstrap over the protocol's groups of the mean over folds, and the verdict against
the column's best from the delete-one-group jackknife t-test and TOST (±ROPE) with Holm over every pair of methods
that scored the same clips. JSD is lower-is-better, so its best is the lowest and a worse method's difference is
positive. A result stored without vote columns keeps its logged fold mean ± std and no verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness import stats
from harness.metrics import SOFT_LOWER_IS_BETTER, SOFT_METRICS

SOFT_COLUMNS = ["method", "key", "rating_set", "metric", "estimate", "ci_low", "ci_high", "difference", "se",
                "p_difference_holm", "p_equivalence_holm", "verdict", "rank_label", "n_groups", "n_comparisons"]


def analyse_soft(predictions: dict[str, pd.DataFrame], classes: list[str], grouped_by: str,
                 seed: int = 0) -> pd.DataFrame:
    """One row per (method, rating set, soft metric) with `SOFT_COLUMNS`, for the methods whose predictions carry
    that set's votes; empty when none do. `key` is the column name the leaderboard uses, `soft_<set>_<metric>`."""
    from harness.ratings import clip_soft_scores, vote_sets

    rows: list[dict] = []
    sets = sorted({s for table in predictions.values() for s in vote_sets(table)})
    for rating_set in sets:
        scored = {m: clip_soft_scores(t, classes, rating_set) for m, t in predictions.items()
                  if rating_set in vote_sets(t)}
        scored = {m: t for m, t in scored.items() if len(t)}
        if not scored:
            continue
        for metric in SOFT_METRICS:
            lower = metric in SOFT_LOWER_IS_BETTER
            compared = stats.compare_clip_scores(scored, metric, lower, group_column=grouped_by)
            labels = stats.verdict_ranks(compared["verdict"].tolist())
            for (_, row), label in zip(compared.iterrows(), labels, strict=True):
                interval = stats.clip_score_interval(scored[row["method"]], metric, lower, group_column=grouped_by,
                                                     seed=seed)
                rows.append({"method": row["method"], "key": f"soft_{rating_set}_{metric}", "rating_set": rating_set,
                             "metric": metric, "estimate": row["score"], "ci_low": interval.low,
                             "ci_high": interval.high, "difference": row["difference"], "se": row["se"],
                             "p_difference_holm": row["p_difference_holm"],
                             "p_equivalence_holm": row["p_equivalence_holm"], "verdict": row["verdict"],
                             "rank_label": label, "n_groups": interval.n_groups,
                             "n_comparisons": compared.attrs["comparisons"]})
    return pd.DataFrame(rows, columns=SOFT_COLUMNS)


def soft_cell(found: pd.Series | None, logged_mean: float, logged_std: float) -> str:
    """A soft-label cell: estimate [95 % CI] and the verdict's rank label; without stored votes, the logged fold
    mean ± std; "–" when the result has no score for the column."""
    if found is not None:
        return f"{found['estimate']:.3f} [{found['ci_low']:.3f}, {found['ci_high']:.3f}] {found['rank_label']}"
    if logged_mean is None or pd.isna(logged_mean):
        return "–"
    return f"{logged_mean:.3f} ± {0.0 if pd.isna(logged_std) else logged_std:.3f} (no verdict)"


def soft_resolution(soft: pd.DataFrame) -> str:
    """One sentence: what the soft-label verdicts rest on (groups and comparisons per column)."""
    if soft.empty:
        return ""
    groups = int(np.nanmax(soft["n_groups"].to_numpy(dtype=float)))
    comparisons = int(soft["n_comparisons"].max())
    unresolved = int((soft["verdict"] == stats.UNRESOLVED).sum())
    return (f"Each column is tested on its own, as the headline column is: {groups} groups, {comparisons} pairwise "
            f"comparison{'s' if comparisons != 1 else ''} per column, Holm at alpha = {stats.ALPHA}, equivalence "
            f"within ±{stats.ROPE:g}; {unresolved} cell{'s' if unresolved != 1 else ''} not separable from the "
            "column's best (rank with ?).")
