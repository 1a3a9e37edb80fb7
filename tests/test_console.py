"""The console a researcher reads: progress in a log file is sparse, library warnings go to a log file with one
pointer line."""

from __future__ import annotations

import warnings

from harness.features.runner import Progress
from harness.runtime import route_warnings


def test_progress_in_a_log_file_is_sparse(capsys, monkeypatch):
    clock = iter(float(t) for t in range(0, 1000, 1))  # one second per call
    monkeypatch.setattr("harness.features.runner.time.perf_counter", lambda: next(clock))
    progress = Progress("meld/minilm", total=11_098, enabled=True)  # stderr is not a terminal under pytest
    for _ in range(0, 11_098, 16):
        progress.update(min(16, 11_098 - progress.done))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) < 80  # 694 blocks, one line per ~10 s of (fake) time, not one per block
    assert lines[-1].startswith("[features] meld/minilm: 11098/11098 clips")
    assert "left" in lines[0]


def test_unhandled_warnings_go_to_the_log_file_with_one_pointer(tmp_path, capsys):
    saved = warnings.showwarning
    try:
        route_warnings(tmp_path / "logs" / "warnings.log")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for _ in range(3):
                warnings.warn("something a library says", UserWarning, stacklevel=1)
    finally:
        warnings.showwarning = saved
    err = capsys.readouterr().err
    assert err.count("[warnings]") == 1 and "something a library says" not in err
    assert (tmp_path / "logs" / "warnings.log").read_text().count("UserWarning: something a library says") == 3
