"""The leaderboard from synthesised MLflow runs: settings never mixed, intervals, ties, tests, figures, files."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fixtures.mlflow_runs import EXPERIMENT, FakeResult, fold_mean, log_result, write_mixed_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return write_mixed_store(tmp_path_factory.mktemp("mlflow"), EXPERIMENT)


@pytest.fixture(scope="module")
def board(store, tmp_path_factory):
    from harness.report.leaderboard import render

    return render(store, EXPERIMENT, tmp_path_factory.mktemp("reports"))


def test_import_is_light():
    code = ("import sys, harness.stats, harness.report.leaderboard, harness.report.markdown, harness.report.html, "
            "harness.report.figures, harness.report.robustness; "
            "print(','.join(m for m in ('ray', 'mlflow', 'torch', 'autorank', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_settings_are_never_ranked_together(board):
    table = board.table
    emodb = table[table["dataset"] == "emodb"]
    assert emodb["setting"].nunique() == 2
    by_setting = emodb.groupby("setting")["method"].apply(set).tolist()
    assert sorted(by_setting, key=len) == [{"audio-xgboost"},
                                           {"audio-svm", "early-concat-svm", "late-stack-xgboost", "video-svm"}]
    # each setting is its own table, ranked from 1, headed by what differs
    assert emodb.groupby("setting")["rank"].min().eq(1).all()
    markdown = board.paths["md"].read_text()
    assert "## emodb: features audio=egemaps:GeMAPSv01b-bbbb; 2 trials" in markdown
    assert "## emodb: features audio=egemaps:aaaa; 3 trials" in markdown


def test_fusion_gain_compares_within_one_setting(board):
    markdown = board.paths["md"].read_text()
    gains = [line for line in markdown.splitlines() if line.startswith("Best fusion")]
    emodb_gain = next(line for line in gains if "early-concat-svm" in line)
    # audio-xgboost scores higher but was run with other features: it must not be the single-modality reference
    assert "`audio-svm`" in emodb_gain and "audio-xgboost" not in emodb_gain
    expected = fold_mean(FakeResult("early-concat-svm", 0.75)) - fold_mean(FakeResult("audio-svm", 0.55))
    assert f"{expected:+.3f} UAR" in emodb_gain


def test_intervals_tests_and_ties(board):
    synthetic = board.table[board.table["dataset"] == "synthetic"].set_index("method")
    assert list(synthetic["rank"]) == [1, 2, 3]
    # 0.80 vs 0.79 per clip over 8 speakers cannot be separated; 0.30 can
    assert synthetic.loc["audio-svm", "tied_with_best"] and synthetic.loc["audio-svm", "rank_label"] == "1="
    assert not synthetic.loc["video-svm", "tied_with_best"] and synthetic.loc["video-svm", "rank_label"] == "3"
    assert synthetic.loc["video-svm", "p_perm_holm"] < 0.05
    for method, row in synthetic.iterrows():
        assert row["ci_low"] <= row["uar_mean"] <= row["ci_high"], method
        assert row["ci_high"] - row["ci_low"] > 0.01
    markdown = board.paths["md"].read_text()
    assert "percentile bootstrap, 2000 resamples of 8 groups" in markdown
    assert "Holm" in markdown


def test_cross_dataset_section_says_when_too_few_datasets(board):
    markdown = board.paths["md"].read_text()
    section = markdown.split("## Across datasets", 1)[1]
    assert "needs at least 5" in section and "no critical-difference diagram is drawn" in section
    # the three methods both datasets' main settings share get mean ranks; audio-xgboost (other setting) does not
    assert "| `late-stack-xgboost` | 1.00 |" in section and "| `video-svm` | 3.00 |" in section
    assert "audio-xgboost" not in section
    assert not (board.paths["md"].parent / "figures" / "critical_difference.png").exists()


def test_figures_and_failures(board):
    out = board.paths["md"].parent
    for name in ("scores.png", "per_class_f1.png", "late-stack-xgboost.png"):
        assert (out / "figures" / "synthetic" / name).exists(), name
    assert (out / "figures" / "fusion_gain.png").exists()
    markdown = board.paths["md"].read_text()
    assert "| video | `spk1-03` | decode | moov atom not found |" in markdown
    page = board.paths["html"].read_text()
    assert board.paths["html"].name == "index.html" and "moov atom not found" in page
    assert "<table>" in page and "http" not in page.split("<body>", 1)[1].split("MLflow run")[0]


def test_rendering_twice_gives_identical_files(board, store, tmp_path):
    from harness.report.leaderboard import render
    from harness.report.text import TIMESTAMP_PREFIX

    again = render(store, EXPERIMENT, tmp_path)
    for kind in ("md", "html", "csv"):
        first = [line for line in board.paths[kind].read_text().splitlines() if TIMESTAMP_PREFIX not in line]
        second = [line for line in again.paths[kind].read_text().splitlines() if TIMESTAMP_PREFIX not in line]
        assert first == second, kind
    for figure in ("synthetic/scores.png", "synthetic/audio-svm.png", "fusion_gain.png"):
        old = board.paths["md"].parent / "figures" / figure
        assert old.read_bytes() == (tmp_path / "figures" / figure).read_bytes(), figure


def test_runs_without_groups_bootstrap_over_clips(tmp_path):
    from harness.report.leaderboard import render

    uri = f"sqlite:///{tmp_path}/old.db"
    for method, accuracy in (("audio-svm", 0.6), ("text-svm", 0.5)):
        log_result(uri, EXPERIMENT, FakeResult(method, accuracy, group_column=False))
    board = render(uri, EXPERIMENT, tmp_path / "reports", figures=False)
    assert "resamples of clips (these runs stored no protocol groups)" in board.paths["md"].read_text()
    assert board.table["ci_low"].notna().all()


def test_paper_claims_stand_beside_the_reproduced_figure(tmp_path):
    """A method a seed paper reports a figure for on this dataset gets the claim, the gap and the caveat."""
    from harness.report.leaderboard import render

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    for method, accuracy in (("xmt-embracenet", 0.6), ("audio-svm", 0.5)):
        log_result(uri, EXPERIMENT, FakeResult(method, accuracy, dataset="meld", modalities="audio,text"))
    markdown = render(uri, EXPERIMENT, tmp_path / "reports", figures=False).paths["md"].read_text()
    claim = next(line for line in markdown.splitlines() if line.startswith("Paper claim for `xmt-embracenet`"))
    assert "reports WA 0.650" in claim and "Not comparable (different-conditions)" in claim
    reproduced = float(claim.split("reproduced here ")[1].split(" ")[0])
    assert f"({reproduced - 0.65:+.3f})" in claim
    assert "Paper claim for `audio-svm`" not in markdown  # no paper reports this baseline
    row = next(line for line in markdown.splitlines() if line.startswith("| ") and "`xmt-embracenet`" in line)
    assert f"0.650 WA ({reproduced - 0.65:+.3f}, not comparable)" in row  # the leaderboard's claim column
    baseline = next(line for line in markdown.splitlines() if line.startswith("| ") and "`audio-svm`" in line)
    assert "WA (" not in baseline
    html = (tmp_path / "reports" / "index.html").read_text()
    assert "paper claim (gap)" in html and f"0.650 WA ({reproduced - 0.65:+.3f}, not comparable)" in html
