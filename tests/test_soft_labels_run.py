"""A run over a generated CREMA-D-named corpus with crowd ratings: the soft-label scores are logged with the hard
ones and reach the leaderboard."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fixtures.corpora import write_wav
from test_soft_labels import CODES, write_tabulated_votes

from harness.config import Settings

pytestmark = pytest.mark.slow  # Ray, feature extraction and a search: about a minute on 2 cores

FREQUENCIES = {"ANG": 180.0, "DIS": 260.0, "FEA": 340.0, "HAP": 420.0, "NEU": 500.0, "SAD": 580.0}


@pytest.fixture(scope="module")
def crema_root(tmp_path_factory) -> Path:
    """6 actors x 6 emotions x 2 sentences of tones (pitch by emotion) and a tabulatedVotes.csv whose voice votes
    mostly agree with the acted emotion (one clip per actor tied between two emotions)."""
    root = tmp_path_factory.mktemp("crema") / "crema-d"
    votes = {}
    for actor in range(1001, 1007):
        for sentence in ("DFA", "IEO"):
            for e, emotion in enumerate(FREQUENCIES):
                clip = f"{actor}_{sentence}_{emotion}_XX"
                write_wav(root / "AudioWAV" / f"{clip}.wav", seconds=0.5, freq=FREQUENCIES[emotion] + actor - 1000)
                counts = [0] * len(CODES)
                counts[e] = 6
                counts[(e + 1) % len(CODES)] = 6 if (sentence == "IEO" and e == 0) else 2
                votes[clip] = counts
    write_tabulated_votes(root, votes)
    return root


def test_a_crema_d_run_logs_and_reports_soft_label_scores(ray_session, crema_root, tmp_path):
    import mlflow

    from harness import pipeline
    from harness.report.leaderboard import render

    settings = Settings(workspace=tmp_path / "ws", tracking_uri=f"sqlite:///{tmp_path}/mlruns.db",
                        reports_dir=tmp_path / "reports", trials=1, data_dirs={"crema-d": crema_root})
    pipeline.run(settings, pipeline.RunOptions(methods=["audio-svm"], datasets=["crema-d"]))
    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.method = 'audio-svm'")
    run = runs[runs["metrics.test_uar_mean"].notna()].iloc[0]  # the result's parent run, not a trial
    for rating_set in ("voice", "face"):
        jsd = run[f"metrics.test_soft_{rating_set}_jsd_mean"]
        accuracy = run[f"metrics.test_soft_{rating_set}_plurality_accuracy_mean"]
        assert 0 <= jsd <= 1 and 0 <= accuracy <= 1
    assert run["metrics.test_soft_voice_n_rated"] == 72 and run["metrics.test_soft_voice_n_tied"] == 6
    assert "metrics.test_soft_av_jsd_mean" not in runs.columns  # no mode-3 rows in the generated table
    board = render(settings.tracking_uri, settings.experiment, tmp_path / "reports", figures=False)
    markdown = board.paths["md"].read_text()
    assert "voice JSD ↓" in markdown and "voice plurality acc. ↑" in markdown
    # the stored predictions carry the votes, so the soft columns get the headline's interval and rank label
    (row,) = [line for line in markdown.splitlines() if line.startswith("| `audio-svm` |") and "[" in line
              and line.count("|") == 2 + 4]
    assert all(cell.strip().endswith(" 1") and " [" in cell for cell in row.split("|")[2:-1])
    soft = pd.read_csv(board.paths["soft_csv"])  # the same figures as a table
    assert set(soft["rating_set"]) == {"voice", "face"} and (soft["verdict"] == "best").all()
    assert "Best published" in markdown
