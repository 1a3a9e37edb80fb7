"""Missing modalities at test time: masks and zeros, nested random rates, the tidy frame, the summaries."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.robustness_data import fit_models, speaker_folds, tiny_data

from harness.robustness.missing import ANY, absent_sets, evaluate_missing, random_drop, remove
from harness.robustness.summary import (
    curves,
    drop_against_unimodal,
    effective_robustness,
    relative_robustness,
    robustness_summary,
)


def test_remove_masks_and_zeroes_both_arrays():
    data = tiny_data()
    drop = np.zeros(len(data), bool)
    drop[[0, 5]] = True
    out = remove(data, {"video": drop})
    assert not out.available["video"][[0, 5]].any() and out.available["video"][1]
    assert np.all(out.pooled["video"][[0, 5]] == 0) and np.all(out.pooled["video"][1] == data.pooled["video"][1])
    assert out.sequences["video"][0].shape == (1, data.pooled["video"].shape[1])
    assert np.all(out.sequences["video"][0] == 0)
    assert out.available["audio"].all()  # other modalities untouched
    assert data.available["video"].all() and data.pooled["video"][0].any()  # the input is not modified
    with pytest.raises(KeyError, match="physio"):
        remove(data, {"physio": drop})


def test_random_drop_is_exact_nested_and_seeded():
    modalities = ["audio", "video", "text"]
    low = random_drop(50, modalities, "audio", 0.2, seed=0, fold="f")["audio"]
    high = random_drop(50, modalities, "audio", 0.6, seed=0, fold="f")["audio"]
    assert low.sum() == 10 and high.sum() == 30
    assert np.all(high[low])  # nested: missing at 20 % implies missing at 60 %
    other = random_drop(50, modalities, "audio", 0.2, seed=1, fold="f")["audio"]
    assert not np.array_equal(low, other)
    assert np.array_equal(low, random_drop(50, modalities, "audio", 0.2, seed=0, fold="f")["audio"])
    both = random_drop(50, modalities, ANY, 0.9, seed=0, fold="f")
    assert not np.stack([both[m] for m in modalities], axis=1).all(axis=1).any()  # a clip keeps one modality


def test_absent_sets_pairs_only_with_three_modalities():
    assert absent_sets(["audio", "video"]) == [("audio",), ("video",)]
    assert len(absent_sets(["audio", "video", "text"])) == 6


def test_evaluate_missing_degrades_a_fusion_model_and_leaves_a_unimodal_one():
    data = tiny_data()
    folds = speaker_folds(data)
    fusion = fit_models("late-average-svm", data, folds, C=1.0)
    frame = evaluate_missing(fusion, data, folds, rates=(0.0, 0.5, 0.9), seeds=(0, 1))
    assert list(frame.columns) == ["condition", "modality", "rate", "seed", "fold", "metric", "value"]
    uar = frame[frame["metric"] == "uar"]
    clean = uar[uar["condition"] == "clean"]["value"].mean()
    all_but_text = uar[(uar["condition"] == "absent") & (uar["modality"] == "audio+video")]["value"].mean()
    assert clean > 0.8 and all_but_text < clean - 0.1
    zero = uar[(uar["condition"] == "random") & (uar["modality"] == "audio") & (uar["rate"] == 0.0)]["value"]
    assert np.allclose(zero.mean(), clean)  # rate 0 is the clean condition
    assert set(frame[frame["condition"] == "random"]["modality"]) == {"audio", "video", "text", ANY}
    audio_only = fit_models("audio-svm", data, folds, C=1.0)
    frame_a = evaluate_missing(audio_only, data, folds, rates=(0.0,), seeds=(0,))
    ua = frame_a[frame_a["metric"] == "uar"]
    video_gone = ua[(ua["condition"] == "absent") & (ua["modality"] == "video")]["value"].to_numpy()
    assert np.allclose(video_gone, ua[ua["condition"] == "clean"]["value"].to_numpy())


def test_missing_model_for_a_fold_is_an_error():
    data = tiny_data()
    folds = speaker_folds(data)
    models = fit_models("audio-svm", data, folds[:1], C=1.0)
    with pytest.raises(KeyError, match="rerun `harness run`"):
        evaluate_missing(models, data, folds)


def test_multibench_formulas():
    assert relative_robustness([0, 0.5, 1.0], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert relative_robustness([0, 1.0], [1.0, 0.0]) == pytest.approx(0.5)
    # same decay as the baseline -> 0; decays 0.1 less at each of two levels -> 0.2
    assert effective_robustness([0.9, 0.8, 0.7], [0.6, 0.5, 0.4]) == pytest.approx(0.0)
    assert effective_robustness([0.9, 0.9, 0.9], [0.6, 0.5, 0.6]) == pytest.approx(0.1)


def test_summary_and_unimodal_drop_on_real_evaluations():
    data = tiny_data()
    folds = speaker_folds(data)
    frames = []
    for method in ("late-average-svm", "early-concat-svm", "audio-svm", "video-svm", "text-svm"):
        frame = evaluate_missing(fit_models(method, data, folds, C=1.0), data, folds, rates=(0.0, 0.5), seeds=(0,))
        frames.append(frame.assign(method=method, dataset="tiny"))
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    table = curves(frame, "uar")
    one = table[(table["method"] == "late-average-svm") & (table["modality"] == "audio")]
    assert list(one["rate"]) == [0.0, 0.5] and (one["low"] <= one["mean"]).all() and (one["mean"] <= one["high"]).all()
    summary = robustness_summary(frame, "uar", baseline_method="early-concat-svm")
    baseline_rows = summary[summary["method"] == "early-concat-svm"]
    assert np.allclose(baseline_rows["effective_robustness"], 0.0)  # the baseline against itself
    drops = drop_against_unimodal(frame, "uar", {"audio-svm": "audio", "video-svm": "video", "text-svm": "text"})
    row = drops[(drops["method"] == "late-average-svm") & (drops["absent"] == "audio+video")].iloc[0]
    assert row["best_unimodal"] == "text-svm"
    assert row["drop"] == pytest.approx(row["score"] - row["best_unimodal_score"])
    assert set(drops["method"]) == {"late-average-svm", "early-concat-svm"}
