"""The console a researcher reads: progress in a log file is sparse, library warnings go to a log file with one
pointer line, Ray's own lines go to another unless --verbose, and a run's console holds none of them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from harness.runtime import Progress, route_warnings

REPO = Path(__file__).resolve().parents[1]


def _fake_clock(monkeypatch) -> None:
    clock = iter(float(t) for t in range(0, 100_000))  # one second per call
    monkeypatch.setattr("harness.runtime.time.perf_counter", lambda: next(clock))


def test_progress_in_a_log_file_is_sparse(capsys, monkeypatch):
    _fake_clock(monkeypatch)
    progress = Progress("features", "meld/minilm", total=11_098, unit="clips")  # stderr is not a terminal here
    for _ in range(0, 11_098, 16):
        progress.update(min(16, 11_098 - progress.done))
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) < 80  # 694 blocks, one line per ~10 s of (fake) time, not one per block
    assert lines[-1].startswith("[features] meld/minilm: 11098/11098 clips")
    assert "left" in lines[0] and "left" not in lines[-1]


def test_search_progress_says_the_end_once_and_counts_only_this_runs_rate(capsys, monkeypatch):
    _fake_clock(monkeypatch)
    progress = Progress("search", "synthetic", total=40, unit="units", initial=20)  # 20 stored by an earlier run
    for done in range(20, 41):
        progress.set(done, "0/2 results")
    for _ in range(30):  # waiting for the evaluations: the state does not change, nothing is printed
        progress.set(40, "0/2 results")
    progress.set(40, "1/2 results")
    progress.set(40, "2/2 results")
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert sum("40/40 units" in line for line in lines) == 2  # reaching the end, then the final state at close
    assert lines[-1].endswith("2/2 results)")
    assert len(lines) <= 5
    rate = float(re.search(r"\(([\d.]+) units/s", lines[0]).group(1))
    assert rate < 2  # 20 stored units do not count as done in the first seconds


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


# Ray's three ways to a driver's console: its C++ core on fd 2, its Python loggers, the (raylet) relay.
_SPEAKER = """
import logging, os, sys
from pathlib import Path
from harness.runtime import divert_ray_output, set_verbose
set_verbose(sys.argv[1] == "1")
divert_ray_output(Path(sys.argv[2]))
import ray._private.worker as w
os.write(2, b"[2026-12-06 17:44:55,196 E 7697 7697] core_worker.cc:2465: Actor with class name: 'MapWorker'\\n")
os.write(2, b"a native line of some other library\\n")
logging.getLogger("ray.tune.utils.util").warning("The `callbacks.on_step_end` operation took 1.3 s")
w.print_to_stdstream({"lines": ["A worker died or was killed"], "pid": "raylet", "is_err": False}, False)
print("[search] synthetic: 1/4 units", file=sys.stderr, flush=True)
print("[result] audio-svm@synthetic: test UAR 0.5", flush=True)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_lines_go_to_the_log_file_unless_verbose(tmp_path, verbose):
    log = tmp_path / "logs" / "ray.log"
    done = subprocess.run([sys.executable, "-c", _SPEAKER, "1" if verbose else "0", str(log)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    for own in ("[search] synthetic: 1/4 units", "[result] audio-svm@synthetic", "a native line of some other"):
        assert own in console  # the harness's lines, and native lines that are not Ray's, always reach it
    ray_lines = ("core_worker.cc", "on_step_end", "A worker died")
    if verbose:
        assert all(line in console for line in ray_lines) and not log.exists()
    else:
        assert not any(line in console for line in ray_lines)
        assert console.count("[ray] Ray's own messages are written to") == 1
        kept = log.read_text()
        assert all(line in kept for line in ray_lines)  # hidden, not lost


@pytest.mark.slow
def test_a_run_prints_no_ray_line_and_no_python_warning(tmp_path):
    """A small `harness run` as a log file sees it (stdout and stderr not terminals): the harness's lines, sparse
    progress, no Ray line, no Python warning."""
    flags = ["--workspace", str(tmp_path / "ws"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--dataset", "synthetic", "--method",
                           "audio-svm", "--trials", "1", "--seed", "1", "--num-cpus", "2", "--no-report", *flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - started
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    for noise in ("core_worker", "(raylet)", "took", "Progress bars disabled", "Traceback", "INFO", "WARNING"):
        assert noise not in console, noise
    assert not re.search(r"\w+Warning: ", console)  # Python warnings go to logs/warnings.log, with one pointer
    assert console.count("[ray] Ray's own messages are written to") == 1
    assert "core_worker" in (tmp_path / "ws" / "logs" / "ray.log").read_text()  # hidden, not lost
    progress = [line for line in console.splitlines() if re.match(r"\[(features|search)\] \S+: \d+/\d+ ", line)]
    assert 2 <= len(progress) <= 2 * (seconds / Progress.LINE_INTERVAL + 2)
    assert "[result] audio-svm@synthetic" in console and "[done] 1 results computed" in console


@pytest.mark.slow
def test_a_local_instance_runs_its_workers_at_the_drivers_priority(tmp_path):
    """Ray's default worker niceness (15) starved the harness's workers on a shared machine (benchmarks/resample.md)."""
    code = ("import os, ray\nfrom harness.config import Settings\nfrom harness.runtime import init_ray\n"
            f"init_ray(Settings.from_env(workspace={str(tmp_path / 'ws')!r}, num_cpus=1))\n"
            "print('niceness', ray.get(ray.remote(lambda: os.nice(0)).remote()) - os.nice(0))\nray.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "niceness 0" in done.stdout, done.stdout + done.stderr


def test_a_report_prints_no_mlflow_download_bar(tmp_path, capsys, monkeypatch):
    """MLflow draws a tqdm bar on stderr for every artifact download (the report reads each result's predictions):
    track.py turns MLflow's own setting off, unless the user set it."""
    from fixtures.mlflow_runs import EXPERIMENT, FakeResult, log_result

    from harness.report.leaderboard import render

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")  # recorded, so the test's change is undone
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")  # as a fresh `harness report` starts
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    for method, accuracy in (("audio-svm", 0.6), ("text-svm", 0.5)):
        log_result(uri, EXPERIMENT, FakeResult(method, accuracy))
    capsys.readouterr()
    board = render(uri, EXPERIMENT, tmp_path / "reports", figures=False)
    assert len(board.table) == 2  # both results were read, their predictions downloaded
    assert "Downloading artifacts" not in capsys.readouterr().err


# `harness report` with a library warning planted where the command reads the tracking store (after the workspace
# is known, before any Ray): the warning must reach warnings.log, not the console.
_REPORT_WITH_A_PLANTED_WARNING = """
import sys, warnings
import harness.track as track
from harness.cli import main
read = track.find_experiment
def find_experiment(*args, **kwargs):
    warnings.warn("planted library warning", UserWarning)
    return read(*args, **kwargs)
track.find_experiment = find_experiment
sys.exit(main(sys.argv[1:]))
"""


def test_warnings_before_ray_go_to_the_log_file_too(tmp_path):
    """`harness report` never starts Ray; a warning raised while it reads the results (here a planted one) goes to
    <workspace>/logs/warnings.log with one pointer line, from the moment the command knows its workspace. And
    SQLAlchemy's deprecation warning from importing MLflow's SQL store (the one every command met) is silenced at
    its cause: it is neither on the console nor in the log, even under PYTHONWARNINGS=default."""
    import os

    from fixtures.mlflow_runs import EXPERIMENT, FakeResult, log_result

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    log_result(uri, EXPERIMENT, FakeResult("audio-svm", 0.6))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"}
    done = subprocess.run([sys.executable, "-c", _REPORT_WITH_A_PLANTED_WARNING, "report",
                           "--workspace", str(tmp_path / "ws"), "--tracking-uri", uri, "--experiment", EXPERIMENT,
                           "--out", str(tmp_path / "reports")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONWARNINGS": "default"})
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    assert not re.search(r"\w+Warning: ", console) and "Downloading artifacts" not in console
    assert console.count("[warnings] library warnings are written to") == 1
    logged = (tmp_path / "ws" / "logs" / "warnings.log").read_text()
    assert "planted library warning" in logged  # routed, not lost
    assert "noload" not in logged and "SADeprecationWarning" not in logged  # handled where MLflow's store is imported


def _progress_lines(err: str, tag: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(rf"\[{tag}\] [^:]+: \d+/\d+ ", line)]


def test_robustness_shows_its_evaluations_as_one_sparse_progress(capsys, monkeypatch):
    """`harness robustness` waits on its evaluations one by one: a log file gets a line per ~10 s with the count
    done (reused ones counted, not in the rate) and the failures, and the final state last."""
    import types

    import pandas as pd
    import ray

    import harness.robustness.run as robustness
    from harness.config import Settings

    frame = pd.DataFrame({"condition": ["clean"], "metric": ["uar"], "value": [0.5]})
    tasks = [robustness._Task("missing", f"missing:m{i}@synthetic", "synthetic", f"m{i}", "p", f"fp{i}", "missing",
                              frame if i < 20 else f"ref{i}") for i in range(100)]  # 20 reused, 80 to compute

    def get(ref):
        if ref in ("ref30", "ref60", "ref90"):
            raise RuntimeError("a worker died")
        return frame, {}

    parent = types.SimpleNamespace(tags=types.SimpleNamespace(method="m", dataset="synthetic"))
    monkeypatch.setattr("harness.runtime.init_ray", lambda settings: None)
    monkeypatch.setattr("harness.track.use_experiment", lambda *a, **k: "1")
    monkeypatch.setattr(robustness, "finished_parents", lambda *a: [parent])
    monkeypatch.setattr(robustness, "_registered", lambda method: True)
    monkeypatch.setattr(robustness, "_dataset_tasks", lambda *a: tasks)
    monkeypatch.setattr(robustness, "_log_child", lambda *a: "child")
    monkeypatch.setattr(ray, "get", get)
    _fake_clock(monkeypatch)
    report = robustness.run(Settings(), robustness.RobustnessOptions(missing=True))
    assert (len(report.ran), len(report.reused), len(report.failed)) == (77, 20, 3)
    out = capsys.readouterr()
    lines = _progress_lines(out.err, "robustness")
    assert 2 <= len(lines) <= 100 // 10 + 3  # not one per evaluation
    assert lines[-1].startswith("[robustness] synthetic: 100/100 evaluations (") and lines[-1].endswith("3 failed)")
    assert "[robustness] missing:m99@synthetic: 1 scores" in out.out  # the per-evaluation lines stay on stdout


def test_e2e_shows_its_folds_as_one_sparse_progress(tmp_path, capsys, monkeypatch):
    """`harness e2e` trains fold after fold (each a blocking Ray Train run): a log file gets a line per ~10 s with
    the folds done and those without a checkpoint, and the final state last."""
    import types

    import numpy as np

    from harness.config import Settings
    from harness.e2e.commands import E2EOptions, run
    from harness.metrics import score

    classes = ["angry", "happy", "neutral", "sad"]

    class Manifest:
        dataset, classes = "synthetic", ["angry", "happy", "neutral", "sad"]

        def __len__(self) -> int:
            return 8

    folds = [types.SimpleNamespace(name=f"fold{i}", train=["a"], val=["b"], test=["c"]) for i in range(30)]
    tracked = types.SimpleNamespace(tags=types.SimpleNamespace(method="av-xattn-e2e-tiny"), parent_id="run1",
                                    add_fold=lambda *a: None, finish=lambda *a: None, fail=lambda *a: None)
    truth = np.array([0, 1, 2, 3])
    monkeypatch.setattr("harness.corpus.open_corpus",
                        lambda *a, **k: types.SimpleNamespace(manifest=Manifest(), folds=folds))
    monkeypatch.setattr("harness.e2e.clips.build_clip_cache", lambda *a: tmp_path / "clips")
    monkeypatch.setattr("harness.runtime.init_ray", lambda settings: None)
    monkeypatch.setattr("harness.e2e.leaderboard.start_run", lambda *a: tracked)
    monkeypatch.setattr("harness.e2e.train.run_e2e", lambda *a, **k: types.SimpleNamespace(
        checkpoint=None if a[6].endswith(("fold7", "fold21")) else "checkpoint", path="run", metrics={}))
    monkeypatch.setattr("harness.e2e.train.evaluate_split",
                        lambda *a: (score(truth, truth, classes), {"epoch": 0, "last_epoch": 0}))
    _fake_clock(monkeypatch)
    report = run(Settings(workspace=tmp_path / "ws"), E2EOptions(storage=tmp_path / "e2e", cpu=True))
    assert report.failed and len(report.record["folds"]) == 28
    lines = _progress_lines(capsys.readouterr().err, "e2e")
    assert 2 <= len(lines) <= 10  # not one per fold
    assert lines[-1].startswith("[e2e] av-xattn-e2e-tiny@synthetic: 30/30 folds (")
    assert lines[-1].endswith("2 without a checkpoint)")


def test_progress_of_a_stage_done_before_says_so(capsys):
    """Every evaluation reused from an earlier run: one line that says so, not "none finished yet"."""
    progress = Progress("robustness", "synthetic", total=2, unit="evaluations", initial=2)
    progress.set(2)
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[robustness] synthetic: 2/2 evaluations (all done before this run)"]
