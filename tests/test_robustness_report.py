"""The leaderboard's robustness section: missing-modality table with the drop against the best single remaining
modality, robustness curves with intervals and MultiBench's numbers, the cross-corpus matrix naming mapped and
dropped classes; from hand-built tidy rows (values checked by hand) and end to end from MLflow children."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report import robustness as rr

CLEAN = {"early-concat-svm": 0.8, "late-average-svm": 0.7, "audio-svm": 0.6, "video-svm": 0.5}
ABSENT = {"early-concat-svm": {"audio": 0.55, "video": 0.65}, "late-average-svm": {"audio": 0.45, "video": 0.62},
          "audio-svm": {"audio": 0.25, "video": 0.6}, "video-svm": {"audio": 0.5, "video": 0.25}}
RANDOM_HALF = {"early-concat-svm": 0.6, "late-average-svm": 0.6, "audio-svm": 0.45, "video-svm": 0.4}
NOISE = {"early-concat-svm": (0.7, 0.5), "late-average-svm": (0.68, 0.66)}  # at 20 dB and 0 dB


def _rows(method: str, condition: str, modality: str, rate: float, value: float, tag: str, **extra) -> list[dict]:
    return [{"condition": condition, "modality": modality, "rate": rate, "seed": 0, "fold": fold, "metric": "uar",
             "value": value + offset, "dataset": "synthetic", "method": method, "condition_tag": tag, **extra}
            for fold, offset in (("f0", -0.02), ("f1", 0.02))]


def tidy_frame() -> pd.DataFrame:
    rows: list[dict] = []
    for method, clean in CLEAN.items():
        rows += _rows(method, "clean", "", 0.0, clean, "missing")
        for removed, value in ABSENT[method].items():
            rows += _rows(method, "absent", removed, 1.0, value, "missing")
        rows += _rows(method, "random", "any", 0.0, clean, "missing")
        rows += _rows(method, "random", "any", 0.5, RANDOM_HALF[method], "missing")
    for method, (mild, severe) in NOISE.items():
        tag = "corrupt:white-noise"
        rows += _rows(method, tag, "audio", 0.0, CLEAN[method], tag, level=np.nan)
        rows += _rows(method, tag, "audio", 0.5, mild, tag, level=20.0)
        rows += _rows(method, tag, "audio", 1.0, severe, tag, level=0.0)
    for test_on, values in (("emodb", (0.4, 0.5)), ("synthetic", (0.7, 0.7))):
        rows += [{"train_on": "synthetic", "test_on": test_on, "fold": f"f{i}", "metric": "uar", "value": v,
                  "dataset": "synthetic", "method": "audio-svm", "condition_tag": "cross-corpus:synthetic->emodb"}
                 for i, v in enumerate(values)]
    return pd.DataFrame(rows)


RECORD = {"train_on": "synthetic", "test_on": "emodb", "shared": ["neutral", "happy", "sad", "angry"],
          "mapped": {"synthetic": {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"},
                     "emodb": {"neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry"}},
          "dropped": {"synthetic": [], "emodb": ["boredom", "disgust", "fear"]}}


def test_missing_table_drops_against_the_best_remaining_modality():
    view = rr.analyse(tidy_frame(), [RECORD])
    (data,) = view.datasets
    assert data.metric == "uar" and data.baseline == "early-concat-svm"
    absent = data.absent.set_index(["method", "condition"])
    # without audio only video remains: video-svm's clean 0.5 is the baseline
    assert absent.loc[("early-concat-svm", "audio"), "drop"] == pytest.approx(0.05)
    assert absent.loc[("late-average-svm", "audio"), "drop"] == pytest.approx(-0.05)
    assert absent.loc[("late-average-svm", "audio"), "best_unimodal"] == "video-svm"
    assert absent.loc[("early-concat-svm", "video"), "drop"] == pytest.approx(0.05)  # vs audio-svm 0.6
    assert list(data.absent[data.absent["below_baseline"]]["method"]) == ["late-average-svm"]
    assert np.isnan(absent.loc[("audio-svm", "audio"), "drop"])  # unimodal rows are not compared
    assert rr.below_lines(data) == ["`late-average-svm` without audio: 0.450 < `video-svm` 0.500"]


def test_curves_and_multibench_numbers():
    (data,) = rr.analyse(tidy_frame(), []).datasets
    random = data.random_summary.set_index("method")
    assert random.loc["early-concat-svm", "relative_robustness"] == pytest.approx(np.trapezoid([0.8, 0.6], [0, 0.5]))
    # late fusion loses 0.1 where the baseline loses 0.2: +0.1 effective robustness
    assert random.loc["late-average-svm", "effective_robustness"] == pytest.approx(0.1)
    assert random.loc["early-concat-svm", "effective_robustness"] == pytest.approx(0.0)
    noise = data.corrupt_summary.set_index("method")
    assert noise.loc["early-concat-svm", "relative_robustness"] == pytest.approx(
        np.trapezoid([0.8, 0.7, 0.5], [0, 0.5, 1]))
    assert noise.loc["late-average-svm", "worst"] == pytest.approx(0.66)
    curve = data.corrupt_curves[data.corrupt_curves["method"] == "early-concat-svm"].sort_values("rate")
    assert list(curve["level"].iloc[1:]) == [20.0, 0.0]
    assert (curve["low"] < curve["mean"]).all() and (curve["mean"] < curve["high"]).all()  # two folds: a real CI


def test_markdown_html_and_figures(tmp_path):
    view = rr.analyse(tidy_frame(), [RECORD])
    rr.figures(view, tmp_path / "figures" / "robustness")
    (data,) = view.datasets
    assert set(data.figures) == {"random", "corrupt:white-noise"}
    assert all(p.exists() and p.stat().st_size > 5000 for p in data.figures.values())
    markdown = "\n".join(rr.markdown_lines(view, tmp_path))
    assert "| method | clean | no audio | no video |" in markdown
    assert "| `late-average-svm` | 0.700 | 0.450 (-0.050 !) | 0.620 (+0.020) |" in markdown
    assert "figures/robustness/synthetic/white-noise.png" in markdown
    assert "| `audio-svm` | synthetic | 0.450 ± 0.071 | 0.700 ± 0.000 |" in markdown
    assert "emodb maps happiness->happy, sadness->sad, anger->angry, drops boredom, disgust, fear" in markdown
    page = "\n".join(rr.html_parts(view, tmp_path))
    assert "<h3>Cross-corpus</h3>" in page and "drops boredom, disgust, fear" in page
    assert "robustness/synthetic/random_missing.png" in page and "0.450 (-0.050 !)" in page
    assert rr.markdown_lines(rr.analyse(pd.DataFrame(), []), tmp_path) == []


def test_leaderboard_shows_the_section_from_mlflow_children(tmp_path):
    """Parents and robustness children in a real MLflow store, rendered by `harness report`."""
    from fixtures.mlflow_runs import EXPERIMENT, FakeResult, log_result

    from harness import track
    from harness.report.leaderboard import render
    from harness.robustness.run import _log_child, _Task

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    for method, modalities, family in (("early-concat-svm", "audio,video", "classical"),
                                       ("late-average-svm", "audio,video", "classical"),
                                       ("audio-svm", "audio", "unimodal"), ("video-svm", "video", "unimodal")):
        log_result(uri, EXPERIMENT, FakeResult(method, CLEAN[method], modalities=modalities, family=family,
                                               dataset="synthetic", features="audio=egemaps:cccc"))
    experiment_id = track.use_experiment(uri, EXPERIMENT)
    frame = tidy_frame()
    for (method, tag), part in frame.groupby(["method", "condition_tag"]):
        task = _Task("", "", "synthetic", method, None, f"fp-{method}-{tag}", tag)
        record = RECORD if tag.startswith("cross") else {}
        _log_child(experiment_id, task, part.drop(columns=["dataset", "method", "condition_tag"]).dropna(
            axis=1, how="all"), record)
    from harness.cli import main

    # `harness report` (the CLI): the leaderboard imports the robustness section itself
    assert main(["report", "--tracking-uri", uri, "--experiment", EXPERIMENT, "--out", str(tmp_path / "reports")]) == 0
    markdown = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert markdown.index("## Robustness") < markdown.index("## Across datasets")
    assert "| `late-average-svm` | 0.700 | 0.450 (-0.050 !) | 0.620 (+0.020) |" in markdown
    assert "drops boredom, disgust, fear" in markdown
    assert (tmp_path / "reports" / "figures" / "robustness" / "synthetic" / "white-noise.png").exists()
    assert "id='robustness'" in (tmp_path / "reports" / "index.html").read_text()
    # the library call shows the section too: the report imports it, nothing hands it in
    direct = render(uri, EXPERIMENT, tmp_path / "direct", figures=False).paths["md"].read_text()
    assert "| `late-average-svm` | 0.700 | 0.450 (-0.050 !) | 0.620 (+0.020) |" in direct
