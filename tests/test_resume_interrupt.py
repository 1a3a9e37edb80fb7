"""Interrupt and resume, end to end (issue 20): a run stopped by SIGINT, SIGTERM or SIGKILL after its first trial
child run is logged loses nothing, and the next run computes exactly what is missing; the leaderboard after the
last resume equals an undisturbed run's.

One chain keeps this lean (CI time): run 1 is stopped by SIGINT, run 2 (resuming it) by SIGTERM, run 3 by
SIGKILL, run 4 finishes; each stop comes once that run has stored a unit of its own and logged a trial child.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.atomic import is_temporary

pytestmark = pytest.mark.slow

ARGS = ["run", "--dataset", "synthetic", "--method", "audio-svm", "--method", "video-xgboost", "--trials", "2",
        "--seed", "8", "--num-cpus", "2", "--no-report"]
SCORES = ["dataset", "method", "n_trials", "accuracy_mean", "accuracy_std", "uar_mean", "uar_std", "macro_f1_mean",
          "macro_f1_std", "weighted_f1_mean", "weighted_f1_std"]
STOPPED = {signal.SIGINT: (130, "interrupted;"), signal.SIGTERM: (143, "terminated (SIGTERM);"),
           signal.SIGKILL: (-signal.SIGKILL, None)}


def _flags(root: Path) -> list[str]:
    return ["--workspace", str(root / "ws"), "--tracking-uri", f"sqlite:///{root / 'mlruns.db'}"]


def _start(root: Path, log: Path) -> subprocess.Popen:
    """The driver in its own session, so what it started (the local Ray node) can be ended with it."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "harness.cli", *ARGS, *_flags(root)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=root)


def _end_session(proc: subprocess.Popen) -> None:
    """Kill what is left of the driver's session (a SIGKILLed driver's Ray node and its workers, if any) and wait
    until every process of it is gone. Ray puts each worker in a process group of its own (same session), so
    killing the driver's group leaves workers that exit only once they notice their raylet died, and may finish a
    unit meanwhile: the units are counted once nothing of the run can write any more."""
    deadline = time.monotonic() + 60
    while (alive := _live_members(proc.pid)) and time.monotonic() < deadline:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.2)


def _live_members(session: int) -> list[int]:
    """Processes of the session that can still run (zombies, which cannot write, are left out)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z" and int(fields[3]) == session:
            members.append(int(stat.parent.name))
    return members


def _count(root: Path, sql: str) -> int:
    try:
        with sqlite3.connect(root / "mlruns.db") as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def _stored_units(root: Path) -> int:
    units = root / "ws" / "tune" / "_cache" / "units"
    return sum(1 for p in units.iterdir() if not is_temporary(p)) if units.exists() else 0


def _complete_parents(root: Path) -> int:
    return _count(root, "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid where "
                        "t.key = 'harness.role' and t.value = 'parent' and r.status = 'FINISHED'")


def _trials(root: Path) -> int:
    return _count(root, "select count(*) from runs where name like 'trial-%' and status = 'FINISHED'")


def _run_to_end(root: Path, log: Path) -> str:
    proc = _start(root, log)
    try:
        assert proc.wait(timeout=1200) == 0, log.read_text()[-3000:]
    finally:
        _end_session(proc)
    return log.read_text()


def _leaderboard(root: Path) -> pd.DataFrame:
    out = root / "report"
    subprocess.run([sys.executable, "-m", "harness.cli", "report", "--out", str(out), *_flags(root)], check=True,
                   capture_output=True, cwd=root)
    return pd.read_csv(out / "leaderboard.csv")[SCORES].sort_values(["dataset", "method"]).reset_index(drop=True)


def _check_resuming(text: str, stored: int, complete: int) -> None:
    """A run after a stop computes exactly what is missing: it reuses the complete results (and nothing else) and
    every stored unit, and runs the other units."""
    if complete == 0 and stored:  # every stored unit belongs to a search of this run
        searched = re.search(r"\[search\] (\d+) \(method, dataset\) searches, (\d+) units", text)
        resumed = re.search(r"resuming: (\d+) units already stored by an earlier run; (\d+) to run", text)
        assert searched and resumed, text[-3000:]
        assert int(resumed[1]) == stored and int(resumed[1]) + int(resumed[2]) == int(searched[2]), text[-3000:]
    reused = re.findall(r"\[cache\] (\S+): finished result with identical inputs exists in MLflow; reused", text)
    assert len(reused) == complete, text[-3000:]
    done = re.search(r"\[done\] (\d+) results computed, (\d+) reused", text)
    assert done is None or (int(done[2]) == complete and int(done[1]) + complete == 2), text[-3000:]


def test_runs_stopped_by_sigint_sigterm_and_sigkill_resume_to_the_undisturbed_leaderboard(tmp_path) -> None:
    calm, chain = tmp_path / "calm", tmp_path / "chain"
    calm.mkdir()
    chain.mkdir()
    _run_to_end(calm, calm / "run.log")
    expected = _leaderboard(calm)
    assert list(expected["method"]) == ["audio-svm", "video-xgboost"]

    for number, sig in enumerate(STOPPED, start=1):
        units_before, trials_before = _stored_units(chain), _trials(chain)
        complete_before = _complete_parents(chain)
        log = chain / f"run{number}.log"
        proc = _start(chain, log)
        try:
            deadline = time.monotonic() + 900
            while not (_stored_units(chain) > units_before and _trials(chain) > trials_before):
                assert proc.poll() is None, f"run {number} ended before a unit of its own:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no trial child run logged in time"
                time.sleep(0.3)
            proc.send_signal(sig)
            status = proc.wait(timeout=300)
        finally:
            _end_session(proc)
        code, line = STOPPED[sig]
        text = log.read_text()
        assert status == code, text[-3000:]
        if line is not None:
            assert line in text.splitlines()[-1] and "Traceback" not in text, text[-3000:]
        _check_resuming(text, units_before, complete_before)
        assert not list((chain / "ws").rglob(".tmp-*")) or sig == signal.SIGKILL

    stored, complete = _stored_units(chain), _complete_parents(chain)
    final = _run_to_end(chain, chain / "final.log")
    _check_resuming(final, stored, complete)
    assert "[done]" in final
    pd.testing.assert_frame_equal(_leaderboard(chain), expected)
