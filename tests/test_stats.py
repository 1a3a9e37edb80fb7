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


def test_jackknife_of_a_mean_is_the_t_test_over_groups():
    # one fold, equal groups, accuracy: the statistic is the mean of the per-group differences, so the jackknife
    # pseudo-values are those differences and the test is scipy's one-sample t-test on them
    from scipy.stats import ttest_1samp

    groups = tuple(f"s{i}" for i in range(6))
    a = fixed(set(groups[:5]), groups)
    b = fixed(set(groups[:2]), groups)
    b.loc[b["group"] == "s0", "y_pred"] = b.loc[b["group"] == "s0", "y_true"].map({"a": "b", "b": "a"})
    per_group = [float((a[a.group == g].y_pred == a[a.group == g].y_true).mean()
                       - (b[b.group == g].y_pred == b[b.group == g].y_true).mean()) for g in groups]
    result = stats.paired_difference(a, b, "accuracy", CLASSES, rope=0.01)
    assert result.difference == pytest.approx(np.mean(per_group))
    assert result.p_difference == pytest.approx(ttest_1samp(per_group, 0.0).pvalue)
    assert result.se == pytest.approx(np.std(per_group, ddof=1) / np.sqrt(6)) and result.df == 5
    shifted = [d + 0.01 for d in per_group], [d - 0.01 for d in per_group]
    assert result.p_equivalence == pytest.approx(max(ttest_1samp(shifted[0], 0.0, alternative="greater").pvalue,
                                                     ttest_1samp(shifted[1], 0.0, alternative="less").pvalue))


def test_identical_predictions_are_equivalent_never_better():
    groups = tuple(f"s{i}" for i in range(8))
    same = fixed(set(groups[:5]), groups)
    result = stats.paired_difference(same, same.copy(), "uar", CLASSES)
    assert (result.difference, result.p_difference, result.p_equivalence) == (0.0, 1.0, 0.0)
    table = stats.compare_with_best({"a": same, "b": same.copy(), "c": fixed(set(), groups)}, "uar", CLASSES)
    assert list(table["verdict"]) == [stats.BEST, stats.EQUIVALENT, stats.WORSE]
    assert stats.BETTER not in set(table["verdict"])
    assert stats.verdict_ranks(list(table["verdict"])) == ["1=", "1=", "3"]


def test_pairs_clips_across_row_orders():
    groups = tuple(f"s{i}" for i in range(4))
    a, b = fixed(set(groups[:3]), groups), fixed({"s0"}, groups)
    shuffled = b.sample(frac=1.0, random_state=3)
    assert stats.paired_difference(a, shuffled, "accuracy", CLASSES) == \
        stats.paired_difference(a, b, "accuracy", CLASSES)


def _simulated(accuracy: float, seed: int, groups: int = 8, clips: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        for i in range(clips):
            truth = ["a", "b", "c", "d"][i % 4]
            guess = truth if rng.random() < accuracy else ["a", "b", "c", "d"][(i + 1 + int(rng.integers(0, 3))) % 4]
            rows.append({"fold": str(g % 4), "clip_id": f"{g}-{i}", "group": f"s{g}", "y_true": truth,
                         "y_pred": guess})
    return pd.DataFrame(rows)


def test_a_large_gap_is_separated_on_eight_speakers_with_36_methods():
    # the demo: 0.885 against 0.27 UAR on 8 speakers, in a table of 36 methods (630 corrected pairs)
    predictions = {f"m{k:02d}": _simulated(0.885 if k < 18 else 0.27, k) for k in range(36)}
    table = stats.compare_with_best(predictions, "uar", ["a", "b", "c", "d"]).set_index("method")
    assert table.attrs["comparisons"] == 630
    weak = table[table["score"] < 0.5]
    assert len(weak) == 18 and (weak["verdict"] == stats.WORSE).all()
    strong = table[(table["score"] > 0.5) & (table["verdict"] != stats.BEST)]
    assert (strong["verdict"] == stats.UNRESOLVED).all()  # equal truth, a few hundredths apart: no verdict
    labels = stats.verdict_ranks(list(table["verdict"]))
    assert labels[0] == "1" and labels[1].endswith("?") and not labels[-1].endswith("?") and "1=" not in labels


def test_resolution_names_the_first_holm_step():
    from scipy.stats import t

    r = stats.resolution(8, 630, [0.02, 0.03, 0.04])
    assert r.first_step_p == pytest.approx(0.05 / 630)
    assert r.critical_t == pytest.approx(t.ppf(1 - 0.05 / 1260, 7))
    assert r.detectable == pytest.approx((r.critical_t + t.ppf(0.8, 7)) * 0.03)
    assert np.isinf(stats.resolution(2, 3, [0.1]).critical_t)


def test_calibration_at_small_scale():
    """benchmarks/verdicts.py at small scale: equal methods are not separated more often than alpha allows, a
    planted gap of 0.3 is found on 8 groups, and a gap of 0.01 is not called equivalent or better."""
    import gc
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from verdicts import Design, calibrate

    gc.freeze()  # statsmodels' Holm calls gc.collect() each time: keep the test session's objects out of it
    try:
        null = calibrate(Design(groups=8, methods=4, delta=0.0, clips=20), seeds=40)
        planted = calibrate(Design(groups=8, methods=4, delta=0.3, clips=20), seeds=15)
    finally:
        gc.unfreeze()
    assert null["fwer"] <= 0.1  # at most alpha = 0.05 in expectation: 2 of 40 tables; more than 4 has p < 0.05
    assert planted["power"] >= 0.9 and planted["fwer"] <= 0.15


def test_holm_against_hand_computation():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # an untestable comparison (NaN) neither counts nor gets a p-value
    adjusted = stats.holm([0.01, np.nan, 0.03])
    assert np.isnan(adjusted[1]) and adjusted[[0, 2]] == pytest.approx([0.02, 0.03])


def test_compare_with_best_gives_three_verdicts():
    groups = tuple(f"s{i}" for i in range(8))
    predictions = {"best": fixed(set(groups), groups), "close": fixed(set(groups[:7]), groups),
                   "bad": fixed(set(), groups)}
    table = stats.compare_with_best(predictions, "accuracy", CLASSES)
    assert list(table["method"]) == ["best", "close", "bad"]
    # close: wrong on one speaker of eight (pseudo-values 0 x 7 and -8 x 1: t = -1); bad: wrong everywhere
    assert list(table["verdict"]) == [stats.BEST, stats.UNRESOLVED, stats.WORSE]
    assert table.loc[1, "p_difference"] == pytest.approx(0.35, abs=0.01)
    assert table.loc[2, "p_difference"] == 0.0 and table.attrs["comparisons"] == 3
    assert stats.verdict_ranks(list(table["verdict"])) == ["1", "2?", "3"]
    assert stats.verdict_ranks([stats.BEST, stats.WORSE]) == ["1", "2"]


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
    assert ranking.tested and ranking.bayesian is None
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
    # two datasets still get a verdict: baycomp's Bayesian signed-rank test against the best mean rank
    assert ranking.reference == "b" and list(ranking.bayesian["method"]) == ["a", "c"]
    probabilities = ranking.bayesian.set_index("method")
    assert probabilities.sum(axis=1).to_numpy() == pytest.approx([1.0, 1.0])
    from baycomp import SignedRankTest

    expected = SignedRankTest.probs(scores["b"].to_numpy(), scores["c"].to_numpy(), rope=stats.ROPE,
                                    nsamples=stats.BAYES_SAMPLES, random_state=0)
    assert tuple(probabilities.loc["c"]) == pytest.approx(expected)
    assert probabilities.loc["c", "p_reference_better"] > 0.5  # c trails b by 0.1 on both datasets
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
