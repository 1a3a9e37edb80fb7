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


def test_intervals_and_verdicts(board):
    synthetic = board.table[board.table["dataset"] == "synthetic"].set_index("method")
    assert list(synthetic["rank"]) == [1, 2, 3]
    # 0.80 vs 0.79 per clip over 8 speakers can be neither separated nor shown equivalent; 0.80 vs 0.30 is separated
    assert synthetic.loc["late-stack-xgboost", "verdict"] == "best"
    assert synthetic.loc["audio-svm", "verdict"] == "not separable" and synthetic.loc["audio-svm", "rank_label"] == "2?"
    assert synthetic.loc["video-svm", "verdict"] == "worse" and synthetic.loc["video-svm", "rank_label"] == "3"
    assert synthetic.loc["video-svm", "p_difference_holm"] < 0.05 <= synthetic.loc["audio-svm", "p_difference_holm"]
    for method, row in synthetic.iterrows():
        assert row["ci_low"] <= row["uar_mean"] <= row["ci_high"], method
        assert row["ci_high"] - row["ci_low"] > 0.01
    markdown = board.paths["md"].read_text()
    assert "percentile bootstrap, 2000 resamples of 8 groups" in markdown
    # each table states its resolution, and says in words what it cannot settle
    section = markdown.split("## synthetic", 1)[1].split("\n## ", 1)[0]
    assert "Resolution: 8 groups, 3 pairwise comparisons" in section and "first Holm step needs p < 0.017" in section
    assert "1 of 2 methods cannot be separated from the best with this design" in section
    assert "| 2? | `audio-svm` |" in section and "not separable (p = " in section and "| 3 | `video-svm` |" in section
    assert "| 1= |" not in section  # nothing here is shown equivalent, so nothing is shown tied
    csv = board.paths["csv"].read_text().splitlines()[0].split(",")
    assert {"verdict", "p_difference_holm", "p_equivalence_holm", "se"} <= set(csv) and "tied_with_best" not in csv


def test_fusion_gain_says_its_verdict(board):
    markdown = board.paths["md"].read_text()
    line = next(x for x in markdown.splitlines() if x.startswith("Best fusion `late-stack-xgboost`"))
    assert "fusion adds +0.0" in line and "not separable with 8 groups" in line


def test_cross_dataset_section_says_when_too_few_datasets(board):
    markdown = board.paths["md"].read_text()
    section = markdown.split("## Across datasets", 1)[1]
    assert "needs at least 5" in section and "no critical-difference diagram is drawn" in section
    # the three methods both datasets' main settings share get mean ranks; audio-xgboost (other setting) does not
    assert "| `late-stack-xgboost` | 1.00 | reference |" in section and "| `video-svm` | 3.00 | " in section
    # with two datasets the Bayesian signed-rank test still speaks (baycomp)
    assert "P(`late-stack-xgboost` better) | P(practically equivalent) | P(method better)" in section
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
