"""The report's statistics against cases whose answers can be worked out by hand, or by scipy directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness import stats
from harness.metrics import headline_from_confusions, scores_from_confusion

CLASSES = ["a", "b"]


def fixed(right_groups: set[str], groups: tuple[str, ...] = ("s1", "s2", "s3"), clips: int = 10) -> pd.DataFrame:
    """Every clip of a group in `right_groups` is predicted correctly, every other clip wrongly; one fold."""
    rows = []
    for group in groups:
        for i in range(clips):
            truth = CLASSES[i % 2]
            guess = truth if group in right_groups else CLASSES[1 - i % 2]
            rows.append({"fold": "0", "clip_id": f"{group}-{i}", "group": group, "y_true": truth, "y_pred": guess})
    return pd.DataFrame(rows)


def test_vectorised_metrics_equal_the_reference_definitions():
    rng = np.random.default_rng(0)
    matrices = rng.integers(0, 6, size=(20, 4, 4))
    matrices[3, 2, :] = 0  # a class absent from y_true
    matrices[4, :, 1] = 0  # a class never predicted
    batch = headline_from_confusions(matrices)
    for k, matrix in enumerate(matrices):
        reference = scores_from_confusion(matrix, list("wxyz")).headline()
        for name, value in reference.items():
            assert batch[name][k] == pytest.approx(value), (k, name)


def test_bootstrap_resamples_groups_not_clips():
    # two speakers of 10 clips each: one always right, one always wrong. Resampling speakers gives accuracy 0 (both
    # draws the wrong one, p = 1/4), 0.5 (p = 1/2) or 1 (p = 1/4), so the 95 % percentile interval is [0, 1]; a
    # clip-level bootstrap would have given about 0.5 ± 0.2.
    interval = stats.group_bootstrap_ci(fixed({"s1"}, groups=("s1", "s2")), "accuracy", CLASSES, n_resamples=4000)
    assert interval.estimate == 0.5
    assert (interval.low, interval.high) == (0.0, 1.0)
    assert interval.n_groups == 2 and interval.n_resamples == 4000


def test_bootstrap_interval_of_a_known_binomial_shape():
    # 40 speakers of one clip each, 30 right: the percentile interval of a mean of Bernoulli(0.75) over 40 draws
    # is close to 0.75 ± 1.96 * sqrt(0.75 * 0.25 / 40) = [0.616, 0.884]
    groups = tuple(f"s{i:02d}" for i in range(40))
    table = fixed(set(groups[:30]), groups=groups, clips=1)
    interval = stats.group_bootstrap_ci(table, "accuracy", CLASSES, n_resamples=5000, seed=1)
    assert interval.estimate == 0.75
    assert interval.low == pytest.approx(0.616, abs=0.03) and interval.high == pytest.approx(0.884, abs=0.03)


def test_one_group_gives_a_zero_width_interval():
    interval = stats.group_bootstrap_ci(fixed({"s1"}, groups=("s1",)), "uar", CLASSES)
    assert (interval.low, interval.estimate, interval.high) == (1.0, 1.0, 1.0) and interval.n_resamples == 0


def test_permutation_test_known_answer():
    # a right on all 3 speakers, b wrong on all: of the 2^3 group-wise swaps only "none" and "all" reach
    # |difference| = 1, so the exact two-sided p-value is 2/8
    result = stats.paired_permutation_test(fixed({"s1", "s2", "s3"}), fixed(set()), "accuracy", CLASSES)
    assert result.difference == 1.0 and result.p_value == 0.25 and result.exact and result.n_groups == 3
    same = stats.paired_permutation_test(fixed({"s1"}), fixed({"s1"}), "uar", CLASSES)
    assert same.difference == 0.0 and same.p_value == 1.0


def test_permutation_test_pairs_clips_across_row_orders():
    a, b = fixed({"s1", "s2"}), fixed({"s1"})
    shuffled = b.sample(frac=1.0, random_state=3)
    assert stats.paired_permutation_test(a, shuffled, "accuracy", CLASSES) == \
        stats.paired_permutation_test(a, b, "accuracy", CLASSES)


def test_mcnemar_known_answer():
    # a is right on 6 clips where b is wrong and never the reverse: exact p = 2 * 0.5^6
    a = fixed({"s1"}, groups=("s1", "s2"), clips=6)
    b = fixed(set(), groups=("s1", "s2"), clips=6)
    assert stats.mcnemar_test(a, b) == pytest.approx(2 * 0.5 ** 6)


def test_holm_against_hand_computation():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_compare_with_best_marks_ties_and_ranks():
    groups = tuple(f"s{i}" for i in range(8))
    predictions = {"best": fixed(set(groups), groups), "close": fixed(set(groups[:7]), groups),
                   "bad": fixed(set(), groups)}
    table = stats.compare_with_best(predictions, "accuracy", CLASSES)
    assert list(table["method"]) == ["best", "close", "bad"]
    assert list(table["tied_with_best"]) == [True, True, False]
    assert table.loc[2, "p_perm"] == pytest.approx(2 / 256)  # exact: only "no swap" and "swap all" reach |1|
    assert table.loc[2, "p_perm_holm"] == pytest.approx(min(1.0, 2 * 2 / 256))
    assert stats.tie_aware_ranks(list(table["tied_with_best"])) == ["1=", "1=", "3"]
    assert stats.tie_aware_ranks([True, False]) == ["1", "2"]


def test_bad_predictions_name_the_fix():
    with pytest.raises(ValueError, match="lack columns \\['group'\\]"):
        stats.group_bootstrap_ci(fixed({"s1"}).drop(columns="group"), "uar", CLASSES)
    with pytest.raises(ValueError, match="not in"):
        stats.group_bootstrap_ci(fixed({"s1"}), "uar", ["x", "y"])


def test_friedman_against_scipy_and_mean_ranks():
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(4)
    scores = pd.DataFrame(rng.uniform(0.4, 0.6, size=(6, 4)) + np.array([0.3, 0.2, 0.1, 0.0]),
                          index=[f"d{i}" for i in range(6)], columns=["m0", "m1", "m2", "m3"])
    ranking = stats.cross_dataset_ranking(scores)
    assert ranking.tested
    reference = friedmanchisquare(*[scores[c] for c in scores.columns])
    assert ranking.friedman_statistic == pytest.approx(reference.statistic)
    assert ranking.friedman_p == pytest.approx(reference.pvalue)
    expected = scores.rank(axis=1, ascending=False).mean()
    assert ranking.mean_ranks.to_dict() == pytest.approx(expected.to_dict())
    assert ranking.critical_difference > 0


def test_too_few_datasets_are_said_not_tested():
    scores = pd.DataFrame([[0.9, 0.8, 0.7], [0.6, 0.8, 0.7]], index=["emodb", "synthetic"],
                          columns=["a", "b", "c"])
    ranking = stats.cross_dataset_ranking(scores)
    assert not ranking.tested and "needs at least 5" in ranking.reason
    assert ranking.mean_ranks.to_dict() == {"b": 1.5, "a": 2.0, "c": 2.5}
    with_gap = scores.assign(d=[0.5, np.nan])
    assert "d" not in stats.cross_dataset_ranking(with_gap).mean_ranks


def test_critical_difference_diagram_is_written(tmp_path):
    from harness.report.figures import critical_difference_figure

    rng = np.random.default_rng(5)
    scores = pd.DataFrame(rng.uniform(0.4, 0.6, size=(6, 3)) + np.array([0.3, 0.0, 0.0]),
                          index=[f"d{i}" for i in range(6)], columns=["fusion", "audio", "text"])
    ranking = stats.cross_dataset_ranking(scores)
    paths = critical_difference_figure(ranking.result, tmp_path / "cd")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert "fusion" in paths[1].read_text()
