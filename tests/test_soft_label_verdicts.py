"""Soft-label (perceived-emotion) scores get the headline metric's statistics: the vote counts travel with the stored
predictions, each clip's JSD / plurality credit is recomputed, and `harness.stats` gives the columns group-bootstrap
intervals and jackknife + TOST + Holm verdicts, with JSD's direction (lower is better) respected. Also: an e2e
result logs soft scores, and a table renders intervals and rank labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import stats
from harness.ratings import clip_soft_scores, vote_sets, with_votes

CLASSES = ["anger", "happy", "neutral", "sad"]


def corpus_predictions(seed: int, skill: float, n_groups: int = 8, clips: int = 12,
                       ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(predictions of method "good" and "poor", the `voice` rating set): each clip's votes peak on its acted
    class; "good" puts `skill` of its probability on the peak, "poor" spreads its probability evenly."""
    rng = np.random.default_rng(seed)
    rows, votes = [], {}
    for g in range(n_groups):
        for k in range(clips):
            clip, y = f"s{g}_{k}", int(rng.integers(len(CLASSES)))
            counts = rng.integers(0, 3, len(CLASSES)).astype(float)
            counts[y] += 6
            votes[clip] = counts
            rows.append({"fold": f"fold{g % 4}", "clip_id": clip, "group": f"s{g}", "y_true": CLASSES[y]})
    base = pd.DataFrame(rows)
    out = {}
    for name, share in (("good", skill), ("poor", 0.25)):
        p = np.full((len(base), len(CLASSES)), (1 - share) / (len(CLASSES) - 1))
        y = base["y_true"].map(CLASSES.index).to_numpy()
        p[np.arange(len(base)), y] = share
        p = np.clip(p + rng.normal(0, 0.02, p.shape), 1e-3, None)
        p /= p.sum(axis=1, keepdims=True)
        table = base.assign(y_pred=[CLASSES[i] for i in p.argmax(axis=1)])
        for c, cls in enumerate(CLASSES):
            table[f"p_{cls}"] = p[:, c]
        out[name] = table
    return out, {"voice": pd.DataFrame.from_dict(votes, orient="index", columns=CLASSES)}


def test_votes_travel_with_the_predictions_and_give_back_the_logged_scores() -> None:
    from harness.ratings import soft_label_metrics

    predictions, ratings = corpus_predictions(0, 0.7)
    ratings["other"] = ratings["voice"].iloc[:, :3]  # other classes: never attached
    stored = with_votes(predictions["good"], CLASSES, ratings)
    assert vote_sets(stored) == ["voice"] and len(stored) == len(predictions["good"])
    clips = clip_soft_scores(stored, CLASSES, "voice")
    logged, _ = soft_label_metrics(predictions["good"], CLASSES, ratings)
    fold_means = clips.groupby("fold")[["jsd", "plurality_accuracy"]].mean()
    assert fold_means["jsd"].mean() == pytest.approx(logged["soft_voice_jsd_mean"])
    assert fold_means["plurality_accuracy"].mean() == pytest.approx(logged["soft_voice_plurality_accuracy_mean"])
    unrated = with_votes(predictions["good"], CLASSES, {"voice": ratings["voice"].iloc[:10]})
    assert len(clip_soft_scores(unrated, CLASSES, "voice")) == 10  # a clip without votes is not scored


def test_jsd_lower_is_better_the_worse_method_has_a_positive_difference() -> None:
    predictions, ratings = corpus_predictions(1, 0.8)
    clips = {m: clip_soft_scores(with_votes(p, CLASSES, ratings), CLASSES, "voice") for m, p in predictions.items()}
    compared = stats.compare_clip_scores(clips, "jsd", lower_is_better=True)
    assert list(compared["method"]) == ["good", "poor"]  # the lower JSD is the best
    good = clips["good"].groupby("fold")["jsd"].mean().mean()
    assert compared["score"].iloc[0] == pytest.approx(good)
    assert compared["difference"].iloc[1] > 0 and compared["verdict"].iloc[1] == stats.WORSE
    interval = stats.clip_score_interval(clips["good"], "jsd", lower_is_better=True)
    assert interval.low <= good <= interval.high and interval.n_groups == 8
    accuracy = stats.compare_clip_scores(clips, "plurality_accuracy", lower_is_better=False)
    assert list(accuracy["method"]) == ["good", "poor"] and accuracy["difference"].iloc[1] < 0


def test_identical_soft_predictions_are_practically_equivalent_never_better() -> None:
    predictions, ratings = corpus_predictions(2, 0.7)
    clips = clip_soft_scores(with_votes(predictions["good"], CLASSES, ratings), CLASSES, "voice")
    compared = stats.compare_clip_scores({"a": clips, "b": clips.copy()}, "jsd", lower_is_better=True)
    assert compared["verdict"].tolist() == [stats.BEST, stats.EQUIVALENT]


def test_the_clip_machinery_equals_the_confusion_machinery_on_accuracy() -> None:
    """Plurality accuracy against one-hot votes on the acted label is accuracy: the per-clip path must give the
    headline path's interval, p-values and verdict exactly (one set of statistics, two inputs)."""
    predictions, _ = corpus_predictions(3, 0.4)
    one_hot = {"voice": pd.DataFrame(0.0, index=predictions["good"]["clip_id"], columns=CLASSES)}
    for clip, y in zip(predictions["good"]["clip_id"], predictions["good"]["y_true"], strict=True):
        one_hot["voice"].loc[clip, y] = 1.0
    clips = {m: clip_soft_scores(with_votes(p, CLASSES, one_hot), CLASSES, "voice") for m, p in predictions.items()}
    soft = stats.compare_clip_scores(clips, "plurality_accuracy", lower_is_better=False)
    hard = stats.compare_with_best(predictions, "accuracy", CLASSES)
    columns = ["method", "score", "difference", "se", "p_difference_holm", "p_equivalence_holm", "verdict"]
    pd.testing.assert_frame_equal(soft[columns], hard[columns])
    a = stats.clip_score_interval(clips["good"], "plurality_accuracy", lower_is_better=False)
    b = stats.group_bootstrap_ci(predictions["good"], "accuracy", CLASSES)
    assert (a.low, a.high) == pytest.approx((b.low, b.high))


def test_a_table_gets_soft_intervals_and_rank_labels_and_old_results_keep_mean_and_std() -> None:
    from harness.report.leaderboard import analyse
    from harness.report.model import RunData
    from harness.report.text import soft_label_table, soft_note

    predictions, ratings = corpus_predictions(4, 0.8)
    runs = {"r-good": RunData(with_votes(predictions["good"], CLASSES, ratings), CLASSES, "group", pd.DataFrame()),
            "r-poor": RunData(with_votes(predictions["poor"], CLASSES, ratings), CLASSES, "group", pd.DataFrame()),
            "r-old": RunData(predictions["poor"].copy(), CLASSES, "group", pd.DataFrame())}  # stored before votes
    table = pd.DataFrame([{"dataset": "crema-d", "setting": "s", "setting_label": "words", "method": m,
                           "family": "classical", "modalities": "audio", "protocol": "speaker-kfold",
                           "headline": "uar", "run_id": f"r-{m}", "uar_mean": u, "uar_std": 0.1,
                           "soft_voice_jsd_mean": 0.3, "soft_voice_jsd_std": 0.05}
                          for m, u in (("good", 0.8), ("poor", 0.3), ("old", 0.2))])
    (section,) = analyse(table, runs)
    soft = section.soft.set_index(["method", "key"])
    assert set(soft.index.get_level_values("method")) == {"good", "poor"}  # the old run has no votes to test
    assert soft.loc[("poor", "soft_voice_jsd"), "verdict"] == stats.WORSE
    assert soft.loc[("good", "soft_voice_jsd"), "rank_label"] == "1"
    titles, rows = soft_label_table(section)
    assert titles == ["voice JSD ↓", "voice plurality acc. ↑"]
    cells = dict(rows)
    assert cells["good"][0].startswith(f"{soft.loc[('good', 'soft_voice_jsd'), 'estimate']:.3f} [")
    assert cells["poor"][0].endswith(" 2")  # shown worse: a plain rank
    assert cells["old"] == ["0.300 ± 0.050 (no verdict)", "–"]
    assert "Holm" in soft_note(section) and "8 groups" in soft_note(section)


def test_an_e2e_result_logs_soft_label_scores_with_votes(tmp_path: Path) -> None:
    import mlflow

    from harness import track
    from harness.e2e.leaderboard import E2ERun
    from harness.metrics import score
    from harness.results import ResultTags

    predictions, ratings = corpus_predictions(5, 0.8)
    good = predictions["good"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns.db")
    experiment = track.use_experiment(f"sqlite:///{tmp_path}/mlruns.db", "soft", ("uar",))
    tags = ResultTags(dataset="crema-d", method="av-xattn-e2e-tiny", family="neural", modalities="audio,video",
                      protocol="p", speaker_independent="True", features="f", feature_failures="0",
                      headline_metric="uar", selection_metric="uar", setting="s", setting_label="w",
                      fingerprint="x", git_commit="c", inputs="")
    parent = track.start_result(experiment, tags, {}, {"digest": "d", "n_clips": len(good), "source": "."})
    run = E2ERun(tags, experiment, parent, {"epochs": 1}, CLASSES, dict(zip(good["clip_id"], good["group"],
                                                                             strict=True)), ratings=ratings)
    for fold, part in good.groupby("fold"):
        y = part["y_true"].map(CLASSES.index).to_numpy()
        probabilities = part[[f"p_{c}" for c in CLASSES]].to_numpy()
        scores = score(y, probabilities.argmax(axis=1), CLASSES)
        run.add_fold(str(fold), scores, {"ids": list(part["clip_id"]), "labels": y, "probabilities": probabilities},
                     scores, {"best_epoch": 0})
    outcome = run.finish(1.0, {})
    metrics = mlflow.get_run(parent).data.metrics
    assert 0 < metrics["test_soft_voice_jsd_mean"] < 1 and metrics["test_soft_voice_n_rated"] == len(good)
    assert vote_sets(outcome.predictions) == ["voice"]
