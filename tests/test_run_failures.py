"""The end of `harness run`: each failed result and each clip without features named once, built from the
run's report (`pipeline.RunReport`) and printed by the command, which also owns the exit status."""

from __future__ import annotations

import contextlib

import pandas as pd

from harness.pipeline import RunReport


def _failures(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["clip_id", "modality", "stage", "error"])


def test_each_failed_result_and_clip_is_named_once():
    report = RunReport()
    assert report.failure_summary() == []
    assert report.fail("audio-svm@synthetic", "unit 3 failed: ValueError: bad")
    assert not report.fail("audio-svm@synthetic", "unit 3 failed after 4 attempts: lost")  # a retry's report
    report.add_clip_failures("synthetic", _failures(("c1", "audio", "decode", "no audio stream"),
                                                    ("c1", "video", "decode", "no video stream"),
                                                    ("c2", "video", "face", "no face")))
    report.add_clip_failures("synthetic", _failures(("c1", "audio", "decode", "no audio stream")))  # again
    report.add_clip_failures("emodb", _failures())  # none: no line
    assert report.failure_summary() == [
        "1 result(s) failed:",
        "  audio-svm@synthetic: unit 3 failed: ValueError: bad",
        "synthetic: 2 clip(s) without features for some modality; 3 clip-modality failures:",
        "  c1: audio (decode: no audio stream); video (decode: no video stream)",
        "  c2: video (face: no face)",
    ]


def test_a_long_list_is_cut_with_a_count():
    report = RunReport()
    report.add_clip_failures("d", _failures(*[(f"c{i:02d}", "audio", "decode", "x") for i in range(12)]))
    lines = report.failure_summary(shown=10)
    assert lines[0] == "d: 12 clip(s) without features for some modality:" and len(lines) == 12
    assert lines[-1].startswith("  ... and 2 more clips")


def test_the_command_prints_the_summary_last_and_exits_1(monkeypatch, tmp_path, capsys):
    from harness import pipeline
    from harness.cli import main
    from harness.cli import preflight as checks

    report = RunReport()
    report.fail("audio-svm@synthetic", "unit 3 failed: ValueError: bad")
    monkeypatch.setattr(pipeline, "plan", lambda settings, options: None)
    monkeypatch.setattr(pipeline, "execute", lambda plan: report)
    monkeypatch.setattr(checks, "preflight", lambda settings: contextlib.nullcontext())
    assert main(["run", "--method", "audio-svm", "--no-report", "--workspace", str(tmp_path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2:] == ["[failures] 1 result(s) failed:",
                        "[failures]   audio-svm@synthetic: unit 3 failed: ValueError: bad"]


def test_robustness_names_each_failed_evaluation_once():
    from harness.robustness.run import RobustnessReport

    report = RobustnessReport()
    assert report.failure_summary() == []
    report.failed += ["missing:audio-svm@synthetic: ValueError: x", "missing:audio-svm@synthetic: ValueError: x",
                      "cross:audio-svm@a->b: KeyError: y"]
    assert report.failure_summary() == ["2 evaluation(s) failed:", "  missing:audio-svm@synthetic: ValueError: x",
                                        "  cross:audio-svm@a->b: KeyError: y"]


def test_extract_prints_each_failed_extraction_and_exits_1(monkeypatch, capsys):
    from harness.cli import main
    from harness.features import commands

    seen = {}

    def run(settings, options):
        seen["options"] = options
        return commands.ExtractReport(problems=["synthetic/logmel: no clip extracted from 2. First reasons: ..."])

    monkeypatch.setattr(commands, "run", run)
    assert main(["extract", "--dataset", "synthetic", "--extractor", "logmel", "--local", "--batch-size", "4"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: synthetic/logmel: no clip extracted from 2. First reasons: ..."
    assert seen["options"] == commands.ExtractOptions("synthetic", ("logmel",), batch_size=4, local=True)
