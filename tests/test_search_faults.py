"""Fault tolerance of the one search, for real: a worker node lost mid-search, and the driver SIGKILLed.

Both run `harness run` as a subprocess on a small copy of the built-in corpus (3 classical methods x 3 sampled
configurations x 4 folds = 36 units), and compare with an undisturbed run of the same seed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.local_cluster import local_cluster

pytestmark = pytest.mark.slow

HARNESS = str(Path(sys.executable).parent / "harness")
METHODS = ["audio-svm", "audio-xgboost", "audio-mlp"]
TRIALS, FOLDS = 3, 4
UNITS = len(METHODS) * TRIALS * FOLDS


def run_args(work: Path, corpus: Path, *extra: str) -> list[str]:
    args = [HARNESS, "run", "--dataset", "synthetic", "--data-dir", f"synthetic={corpus}", "--trials", str(TRIALS),
            "--workspace", str(work / "ws"), "--tracking-uri", f"sqlite:///{work}/mlruns.db", "--no-report"]
    for method in METHODS:
        args += ["--method", method]
    return [*args, *extra]


# What Ray streams to the driver from other processes ("(raylet) Raylet is terminated...", "(gcs_server) ...",
# coloured) and C++ log lines, alone or indented under such a line ("    [2026-01-01 10:00:00,123 I 12 34] (raylet)
# worker_pool.cc:..."): when a node dies they bury the harness's own lines, which a failed run's message shows.
RAY_LINE = re.compile(r"^\s*(\([\w.-]+([, ][^)]*)?\) |\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] )")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def harness_output(log: Path, limit: int = 8000) -> str:
    """The run's output without Ray's streamed lines (the last `limit` characters), for a failed assertion."""
    lines = [ANSI.sub("", line) for line in log.read_text(errors="replace").splitlines()]
    return "\n".join(line for line in lines if not RAY_LINE.match(line))[-limit:]


def stored_units(work: Path) -> int:
    folder = work / "ws" / "tune" / "_cache" / "units"
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".tmp-")) if folder.exists() else 0


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # a cluster's token: local_cluster puts it in os.environ
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_units(process: subprocess.Popen, work: Path, at_least: int, log: Path, timeout: float = 600) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        count = stored_units(work)
        if count >= at_least:
            return count
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before {at_least} units:\n{harness_output(log)}")
        time.sleep(0.2)
    pytest.fail(f"fewer than {at_least} units stored after {timeout}s")


def leaderboard(work: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work}/mlruns.db")
    runs = mlflow.search_runs(experiment_names=["mer-benchmark"], output_format="pandas")
    parents = runs[(runs["tags.harness.role"] == "parent") & (runs["status"] == "FINISHED")]
    trials = runs[runs["tags.harness.role"] == "trial"]
    return parents.set_index("tags.method").sort_index(), runs, trials


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, small_synthetic) -> Path:
    root = tmp_path_factory.mktemp("faults") / "corpus"
    shutil.copytree(small_synthetic, root)
    return root


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, corpus):
    work = tmp_path_factory.mktemp("undisturbed")
    log = work / "log.txt"
    process = start(run_args(work, corpus, "--num-cpus", "2"), log)
    assert process.wait(timeout=900) == 0, harness_output(log)
    return leaderboard(work)[0]


def assert_same_results(parents, reference) -> None:
    assert list(parents.index) == sorted(METHODS)
    for metric in ("test_uar_mean", "test_accuracy_mean", "test_weighted_f1_mean"):
        assert parents[f"metrics.{metric}"].tolist() == reference[f"metrics.{metric}"].tolist(), metric


def test_worker_node_lost_mid_search(tmp_path, corpus, undisturbed):
    with local_cluster(workers=1, cpus_per_node=1) as cluster:
        log = tmp_path / "log.txt"
        process = start(run_args(tmp_path, corpus, "--address", cluster.address), log)
        wait_for_units(process, tmp_path, 4, log)
        cluster.kill_worker_node(0)
        assert process.wait(timeout=900) == 0, harness_output(log)
    assert stored_units(tmp_path) == UNITS  # every unit stored exactly once (one blob per unit key)
    parents, _, trials = leaderboard(tmp_path)
    assert_same_results(parents, undisturbed)
    assert trials.groupby("tags.method").size().to_dict() == dict.fromkeys(METHODS, TRIALS)


def test_driver_killed_mid_search_resumes_at_unit_granularity(tmp_path, corpus, undisturbed):
    log = tmp_path / "first.txt"
    process = start(run_args(tmp_path, corpus, "--num-cpus", "2"), log)
    before = wait_for_units(process, tmp_path, 2, log)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and the local Ray it started
    process.wait()
    _, runs, _ = leaderboard(tmp_path)
    assert (runs["status"] == "RUNNING").any()  # the killed driver's parents were left behind
    second = tmp_path / "second.txt"
    process = start(run_args(tmp_path, corpus, "--num-cpus", "2"), second)
    assert process.wait(timeout=900) == 0, harness_output(second)
    out = second.read_text()
    resumed = int(out.split("[search] resuming: ")[1].split(" units")[0])
    assert resumed >= before and f"; {UNITS - resumed} to run" in out
    parents, runs, _ = leaderboard(tmp_path)
    assert_same_results(parents, undisturbed)
    assert not (runs["status"] == "RUNNING").any()  # stale parents were marked KILLED, none left half-finished
    assert (runs["status"] == "KILLED").any()


def test_ctrl_c_during_the_search_is_one_line_and_exit_130(tmp_path, corpus):
    """Ctrl-C while units run: no method is reported as failed, one line, exit status 130, and a resume."""
    log = tmp_path / "first.txt"
    process = start(run_args(tmp_path, corpus, "--num-cpus", "2"), log)
    wait_for_units(process, tmp_path, 1, log)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=120) == 130, harness_output(log)
    out = log.read_text()
    assert "[error]" not in out and "Traceback" not in out
    assert "interrupted; completed work is stored and the next run resumes from it" in out
