"""Benchmark of the one distributed search (issue 14 targets), written to benchmarks/search.md.

Sections, each measured in this one script run on this machine:
  A  `harness run --all` on the built-in corpus: the previous code path (one Tuner per (method, dataset), checked
     out from git into a temporary worktree) against this one, same corpus, default suite and trial budget.
  B  slot utilisation of the search phase on a local 3-raylet cluster (head + 2 workers, 1 logical CPU each):
     busy unit-seconds / (slots x span from the first unit's start to the last unit's end), from the units'
     own wall-clock spans.
  C  fixed per-run cost and amortised start-up per (method, dataset), from A's new run.
  D  peak driver memory of a search over a 10,000-clip in-memory dataset (generated here, not committed).
  E  EmoDB (../shared/data), leave-one-speaker-out with --speaker-norm: the harness's audio-svm and
     audio-xgboost (refit on train+validation, and validated models without refit) against a plain scikit-learn
     GroupKFold + StandardScaler + SVC / LogisticRegression reference on the same stored eGeMAPS vectors.

Run:  .venv/bin/python benchmarks/search.py [--sections ABCDE] [--legacy-commit dd26e03]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = REPO / "benchmarks" / "search.md"
LEGACY_COMMIT = "dd26e03"  # the last commit with one Tuner per (method, dataset)
SHARED = REPO.parent / "shared" / "data"


def timed_lines(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
                ) -> tuple[float, list[tuple[float, str]], int]:
    """Run a command; return (wall seconds, [(seconds since start, line)], return code)."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    lines = [(time.perf_counter() - started, line.rstrip()) for line in process.stdout]
    return time.perf_counter() - started, lines, process.wait()


def first(lines: list[tuple[float, str]], prefix: str) -> float | None:
    return next((t for t, line in lines if line.startswith(prefix)), None)


def run_all(work: Path, data_root: Path, pythonpath: Path | None, extra: list[str] = ()) -> dict:
    env = {"PYTHONPATH": str(pythonpath)} if pythonpath else {}
    # A `ray start` cluster (section B, or any test) leaves /tmp/ray/ray_current_cluster behind, and the previous
    # code's bare ray.init() would try to join that dead cluster: every local run asks for a fresh instance.
    env["RAY_ADDRESS"] = "local"
    args = [str(BIN / "python"), "-m", "harness.cli", "run", "--all", "--data-root", str(data_root),
            "--workspace", str(work / "ws"), "--tracking-uri", f"sqlite:///{work}/mlruns.db",
            "--no-report", *extra]
    wall, lines, rc = timed_lines(args, env, cwd=work)
    (work / "log.txt").write_text("\n".join(f"{t:8.2f} {line}" for t, line in lines))
    done = next((line for _, line in lines if line.startswith("[done]")), "")
    return {"wall": wall, "rc": rc, "lines": lines, "done": done}


def unit_timings(workspace: Path) -> list[dict]:
    folder = workspace / "tune" / "_cache" / "units"
    spans = []
    for path in folder.iterdir():
        if path.name.startswith(".tmp-"):
            continue
        payload = pickle.loads(path.read_bytes())  # written by this harness's own search, in this benchmark
        if "timing" in payload:
            spans.append(payload["timing"])
    return spans


def utilisation(spans: list[dict], slots: int) -> tuple[float, float, float]:
    start, end = min(s["start"] for s in spans), max(s["end"] for s in spans)
    busy = sum(s["end"] - s["start"] for s in spans)
    return busy / (slots * (end - start)), busy, end - start


# ---- A + C ----------------------------------------------------------------------------------------------------
def logged_run(work: Path) -> dict:
    """A run of `run_all` read back from the log it kept (`--reuse`): wall time up to its last line."""
    lines = [(float(line[:8]), line[9:]) for line in (work / "log.txt").read_text().splitlines() if line[:8].strip()]
    done = next((line for _, line in lines if line.startswith("[done]")), "")
    return {"wall": lines[-1][0], "rc": 0 if done else 1, "lines": lines, "done": done}


def section_a(tmp: Path, legacy_commit: str, reuse: bool = False) -> tuple[list[str], dict]:
    if reuse:  # the two timed runs of an earlier `--keep` run of this script, read from their logs
        new, old = logged_run(tmp / "new"), logged_run(tmp / "old")
        return _section_a_lines(new, old, legacy_commit), new
    data_root = tmp / "datasets"
    from harness.datasets.synthetic import SyntheticConfig, generate

    generate(data_root / "synthetic", SyntheticConfig())  # generated once, outside both timings
    legacy_tree = tmp / "legacy"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(legacy_tree), legacy_commit], cwd=REPO,
                   check=True)
    try:
        (tmp / "new").mkdir()
        (tmp / "old").mkdir()
        new = run_all(tmp / "new", data_root, REPO)
        old = run_all(tmp / "old", data_root, legacy_tree)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(legacy_tree)], cwd=REPO, check=False)
    return _section_a_lines(new, old, legacy_commit), new


def _section_a_lines(new: dict, old: dict, legacy_commit: str) -> list[str]:
    ratio = new["wall"] / old["wall"]
    lines = ["## A. `harness run --all` on the built-in corpus, previous code path vs this one", "",
             f"Same corpus (generated once beforehand), same default suite and `--trials` (4), fresh workspace "
             f"and MLflow store each, run one after the other in this script. Previous code: commit "
             f"`{legacy_commit}` checked out into a temporary git worktree and put first on PYTHONPATH.", "",
             "| code path | wall time | results |", "|---|---|---|",
             f"| previous: one Tuner per (method, dataset), sequential | {old['wall']:.1f} s (rc {old['rc']}) | "
             f"{old['done']} |",
             f"| this: one search over every unit | {new['wall']:.1f} s (rc {new['rc']}) | {new['done']} |", "",
             f"**Ratio: {ratio:.2f}** of the previous wall time (target ≤ 0.50).", ""]
    return lines


def section_c(new: dict, workspace: Path) -> list[str]:
    lines = new["lines"]
    search_start = first(lines, "[search] ") or 0.0
    done_at = first(lines, "[done]") or new["wall"]
    spans = unit_timings(workspace)
    first_unit = min(s["start"] for s in spans)
    last_unit = max(s["end"] for s in spans)
    busy = sum(s["end"] - s["start"] for s in spans)
    slots = 2
    pairs = int(next(line for _, line in lines if " (method, dataset) searches" in line).split()[1])
    search_wall = done_at - search_start
    overhead = search_wall - busy / slots
    fixed = search_wall - (last_unit - first_unit)
    return ["## C. Start-up cost", "",
            f"From A's run of this code: {pairs} (method, dataset) searches, {len(spans)} units, {slots} CPU slots.",
            "",
            "| quantity | seconds |", "|---|---|",
            f"| time before the search (Ray start, corpus scan, feature cache hits/extraction, planning) | "
            f"{search_start:.1f} |",
            f"| search phase (first `[search]` line to `[done]`) | {search_wall:.1f} |",
            f"| units' busy time, summed | {busy:.1f} |",
            f"| fixed per-run cost of the search (search phase minus the span from first unit start to last unit "
            f"end: Tune start-up, final evaluations, MLflow) | {fixed:.1f} |",
            f"| search-phase overhead (search phase − busy / slots) | {overhead:.1f} |",
            f"| **amortised overhead per (method, dataset)** (overhead / {pairs}) | **{overhead / pairs:.2f}** |", ""]


# ---- B -----------------------------------------------------------------------------------------------------------
def section_b(tmp: Path, features: Path, data_root: Path) -> list[str]:
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.local_cluster import local_cluster

    work = tmp / "cluster"
    work.mkdir()
    with local_cluster(workers=2, cpus_per_node=1) as cluster:
        result = run_all(work, data_root, REPO, ["--address", cluster.address, "--feature-store", str(features)])
    spans = unit_timings(work / "ws")
    share, busy, span = utilisation(spans, 3)
    nodes = len({s["node"] for s in spans})
    return ["## B. Slot utilisation on a local 3-raylet cluster", "",
            "Head + 2 worker raylets on this machine (`ray start --block`, 1 logical CPU each: 3 slots on 2 "
            f"physical cores), `harness run --all --address ...` with A's stored features; rc {result['rc']}, "
            f"{result['done']}", "",
            "| units | nodes used | busy unit-seconds | span first start → last end | utilisation |",
            "|---|---|---|---|---|",
            f"| {len(spans)} | {nodes} | {busy:.1f} | {span:.1f} s | **{share:.1%}** (target ≥ 85 %) |", ""]


# ---- D -----------------------------------------------------------------------------------------------------------
MEMORY_PROBE = r"""
import json, pickle, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
import ray
from fixtures.search_jobs import Recorder, make_job
from harness.runtime import init_ray
from harness.config import Settings
from harness.search import Search, SearchOptions
from methods import MultimodalData
n, rng = int(sys.argv[3]), np.random.default_rng(0)
labels = np.arange(n) % 4
speakers = np.array([f"s{i % 40}" for i in range(n)])
pooled = {m: (rng.normal(size=(n, d)) + labels[:, None] * 0.1).astype(np.float32)
          for m, d in (("audio", 88), ("video", 64), ("text", 384))}
data = MultimodalData(ids=[f"c{i}" for i in range(n)], classes=["a", "b", "c", "d"], pooled=pooled,
                      labels=labels, groups={"speaker": speakers})
size = len(pickle.dumps(data))
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
init_ray(Settings(num_cpus=2))
jobs = [make_job("audio-xgboost", data, 2), make_job("late-average-xgboost", data, 1)]
started = time.perf_counter()
recorder = Recorder()
Search(jobs, {"toy": data}, SearchOptions(sys.argv[1]), recorder).run()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"bytes": size, "rss_data_kb": rss_data, "rss_peak_kb": peak,
                  "units": sum(len(j.units()) for j in jobs), "seconds": time.perf_counter() - started,
                  "failures": recorder.failures}))
"""


def section_d(tmp: Path) -> list[str]:
    probe = tmp / "memory_probe.py"
    probe.write_text(MEMORY_PROBE)
    rows = []
    for n in (200, 10_000):
        _, lines, rc = timed_lines([str(BIN / "python"), str(probe), str(tmp / f"memstore-{n}"), str(REPO / "tests"),
                                    str(n)])
        result = json.loads(next(line for _, line in reversed(lines) if line.startswith("{")))
        rows.append(f"| {n:,} | {result['bytes'] / 1e6:.1f} MB | {result['rss_data_kb'] / 1024:.0f} MB | "
                    f"{result['rss_peak_kb'] / 1024:.0f} MB | {result['units']} | {result['seconds']:.1f} s, rc {rc}, "
                    f"failures {result['failures'] or 'none'} |")
    return ["## D. Driver memory with a 10,000-clip dataset", "",
            "In-memory datasets (audio 88-d, video 64-d, text 384-d pooled vectors, 40 speakers, generated here), "
            "searched by audio-xgboost (2 configurations) and late-average-xgboost (1), 4 folds; each dataset is "
            "`ray.put` once and every unit reads that one object. The 200-clip row is the driver's fixed "
            "footprint (Ray, Tune, the method libraries); the difference is what the data costs the driver.", "",
            "| clips | dataset, pickled | driver peak RSS after building it | driver peak RSS after the search | "
            "units | search |", "|---|---|---|---|---|---|", *rows, ""]


# ---- E -----------------------------------------------------------------------------------------------------------
def section_e(tmp: Path) -> list[str]:
    if not (SHARED / "emodb").exists():
        return ["## E. EmoDB", "", f"Skipped: {SHARED / 'emodb'} is absent.", ""]
    work = tmp / "emodb"
    work.mkdir()
    base = [str(BIN / "python"), "-m", "harness.cli", "run", "--dataset", "emodb", "--data-dir",
            f"emodb={SHARED / 'emodb'}", "--method", "audio-svm", "--method", "audio-xgboost", "--speaker-norm",
            "--workspace", str(work / "ws"), "--tracking-uri", f"sqlite:///{work}/mlruns.db", "--no-report",
            "--num-cpus", "2"]
    rows = []
    for refit in ("auto", "never"):
        wall, lines, rc = timed_lines([*base, "--refit", refit], cwd=work)
        for _, line in lines:
            if line.startswith("[result]"):
                rows.append((refit, line.removeprefix("[result] "), wall))
    reference = sklearn_reference(work / "ws")
    lines = ["## E. EmoDB: the harness against a plain scikit-learn reference on the same features", "",
             "EmoDB from ../shared/data (535 clips, 10 speakers), eGeMAPS vectors from the harness's feature store, "
             "per-speaker z-scoring (`--speaker-norm`), 4 sampled configurations per method, leave-one-speaker-out "
             "test folds (the card's protocol: each fold also holds out one validation speaker).", "",
             "| what | test UAR (mean ± std over folds) |", "|---|---|"]
    for refit, text, _ in rows:
        what = "refit on train+validation (default)" if refit == "auto" else "validated models, no refit"
        lines.append(f"| harness `{text.split(':')[0]}`, {what} | {text.split(': ', 1)[1].removeprefix('test ')} |")
    for name, (mean, std) in reference.items():
        lines.append(f"| reference {name}: GroupKFold(10) by speaker, StandardScaler, default hyperparameters | "
                     f"UAR {mean:.3f} ± {std:.3f} |")
    return [*lines, ""]


def sklearn_reference(workspace: Path) -> dict[str, tuple[float, float]]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from harness.config import Settings
    from harness.datasets import get_dataset
    from harness.features.runner import load_features
    from harness.features.store import FeatureStore
    from harness.normalize import per_speaker_zscore

    settings = Settings(workspace=workspace, data_dirs={"emodb": SHARED / "emodb"})
    manifest = get_dataset("emodb").scan(settings.data_dir("emodb"))
    stored, _ = load_features(manifest, "egemaps", FeatureStore(settings.feature_store_uri()))
    rows = [stored.index()[c] for c in manifest.ids]
    speakers = manifest.table["speaker"].astype(str).to_numpy()
    x = per_speaker_zscore(stored.pooled[rows], speakers)
    y = manifest.table["label"].to_numpy()
    scores = {}
    for name, model in (("SVC (RBF, C=1)", SVC()), ("LogisticRegression", LogisticRegression(max_iter=2000))):
        folds = [balanced_accuracy_score(y[test], make_pipeline(StandardScaler(), model).fit(x[train], y[train])
                                         .predict(x[test]))
                 for train, test in GroupKFold(n_splits=10).split(x, y, speakers)]
        scores[name] = (float(np.mean(folds)), float(np.std(folds)))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="ABCDE")
    parser.add_argument("--legacy-commit", default=LEGACY_COMMIT)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.relative_to(REPO)})")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="take section A's two runs from a folder an earlier `--keep` run left (their logs carry "
                             "each line's time), instead of running them again")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (section A's runs, their MLflow stores and the corpus)")
    args = parser.parse_args()
    started = time.perf_counter()
    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="search-bench-"))
    body: list[str] = []
    try:
        new = None
        if "A" in args.sections or "B" in args.sections or "C" in args.sections:
            lines, new = section_a(tmp, args.legacy_commit, reuse=args.reuse is not None)
            body += lines if "A" in args.sections else []
        if "B" in args.sections:
            body += section_b(tmp, tmp / "new" / "ws" / "features", tmp / "datasets")
        if "C" in args.sections and new is not None:
            body += section_c(new, tmp / "new" / "ws")
        if "D" in args.sections:
            body += section_d(tmp)
        if "E" in args.sections:
            body += section_e(tmp)
    finally:
        if not args.keep and args.reuse is None:
            shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    header = ["# Benchmark: the one distributed search", "",
              f"Output of `.venv/bin/python benchmarks/search.py --sections {args.sections}` "
              f"({time.perf_counter() - started:.0f} s in all).", "",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{resource.getpagesize() * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python "
              f"{platform.python_version()}, no GPU; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
              f"{load[2]:.1f}.", ""]
    args.out.write_text("\n".join(header + body))
    if args.keep:
        print(f"kept: {tmp}")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
