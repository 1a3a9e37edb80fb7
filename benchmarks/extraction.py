"""Feature-extraction throughput: a sequential loop vs Ray with 1 and 2 encode workers, and the cached re-run.

For each corpus (the synthetic one; EmoDB from ../shared/data/emodb when present) and each extractor (eGeMAPS,
a CPU extractor; a small random-init wav2vec2, a transformer extractor) it measures, in one process and one
Ray session so the ratios compare like with like:
  sequential  `extract(..., executor="local")`: decode + encode in a plain loop in this process
  process-pool-2  that loop in 2 spawned processes, each on every other clip (no Ray: the machine's ceiling)
  ray-1/ray-2 `extract(..., concurrency=n)`: n encode actors that decode their own blocks (the CPU default;
              actor start-up included)
  ray-2 decode tasks  the same with CPU decode tasks feeding the 2 actors (the layout used for GPU actors)
  cached      the ray-2 run repeated: every clip is in the store, nothing is extracted
with the peak resident memory of this process plus all its descendants (the Ray processes) during each run,
and the time from the call to the first stored shard (start-up plus one block).

Usage: .venv/bin/python benchmarks/extraction.py [--out benchmarks/extraction.md] [--only synthetic]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
def emodb_manifest(root: Path):
    """EmoDB as its dataset card reads it."""
    from harness.datasets import get_dataset

    return get_dataset("emodb").scan(root)


def synthetic_manifest(workdir: Path):
    from harness.datasets.synthetic import generate, scan

    generate(workdir / "synthetic")
    return scan(workdir / "synthetic")


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants (Linux /proc), keeps the maximum."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def _tree_rss() -> int:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    ppid = int(stat.rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        total, stack = 0, [os.getpid()]
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _first_shard(location: str, since: float) -> float | None:
    """Wall-clock time at which the entry's first shard written at or after `since` landed; None if none was."""
    times = [p.stat().st_mtime for p in Path(location, "shards").glob("shard-*.npz") if p.stat().st_mtime >= since]
    return min(times) if times else None


def _figures(n_clips: int, seconds: float, peak_bytes: int, failed: int, cached: bool, wall_start: float,
             first_shards: list[float | None]) -> dict:
    landed = [t for t in first_shards if t is not None]
    return {"seconds": seconds, "clips_per_s": n_clips / seconds, "peak_mb": peak_bytes / 2**20, "failed": failed,
            "cached": cached, "first_shard_s": min(landed) - wall_start if landed else None}


def measure(manifest, extractor: str, config: dict, store_root: Path, **kwargs) -> dict:
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    with PeakMemory() as memory:
        wall_start, started = time.time(), time.perf_counter()
        result = extract(manifest, extractor, FeatureStore(str(store_root)), config, verbose=False, **kwargs)
        seconds = time.perf_counter() - started
    return _figures(len(manifest), seconds, memory.peak, result.n_failed, result.cached, wall_start,
                    [_first_shard(result.location, wall_start)])


def _extract_part(args: tuple) -> tuple[int, str]:
    """One process-pool worker: the sequential loop on its share of the clips, into its own store entry."""
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    manifest, extractor, config, store_root = args
    result = extract(manifest, extractor, FeatureStore(str(store_root)), config, verbose=False, executor="local")
    return result.n_failed, result.location


def _one_thread_per_process(threads: int) -> None:
    """Pool initializer: the intra-op threads each process may use, as Ray sets them for a 1-CPU actor.

    Without it every process starts one torch/BLAS thread per core and the pool oversubscribes the machine.
    """
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)


def measure_process_pool(manifest, extractor: str, config: dict, store_root: Path, processes: int) -> dict:
    """The sequential loop in `processes` spawned processes, each on every n-th clip: no Ray, this machine's ceiling.

    Start-up (spawning, imports, model load) is included, as it is for Ray.
    """
    from dataclasses import replace
    from multiprocessing import get_context

    from harness.features.runner import _media_rows

    order = _media_rows(manifest, set(manifest.ids))["clip_id"].tolist()  # longest clip first, as Ray gets them
    parts = [replace(manifest, table=manifest.table.set_index("clip_id").loc[order[i::processes]].reset_index())
             for i in range(processes)]
    with PeakMemory() as memory:
        wall_start, started = time.time(), time.perf_counter()
        threads = max(1, (os.cpu_count() or 1) // processes)
        with get_context("spawn").Pool(processes, initializer=_one_thread_per_process, initargs=(threads,)) as pool:
            results = pool.map(_extract_part, [(part, extractor, config, store_root) for part in parts])
        seconds = time.perf_counter() - started
    return _figures(len(manifest), seconds, memory.peak, sum(failed for failed, _ in results), False, wall_start,
                    [_first_shard(location, wall_start) for _, location in results])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "extraction.md"))
    parser.add_argument("--only", default=None, help="run one corpus: synthetic or emodb")
    args = parser.parse_args()

    import ray

    from harness.features.weights.random_init import speech_checkpoint

    workdir = Path(tempfile.mkdtemp(prefix="extraction-bench-"))
    wav2vec2 = speech_checkpoint("wav2vec2", workdir / "wav2vec2-small", size="small")
    extractors = [("egemaps", {}), ("wav2vec2", {"checkpoint": str(wav2vec2)})]
    corpora = {"synthetic": lambda: synthetic_manifest(workdir)}
    if (SHARED_DATA / "emodb" / "wav").is_dir():
        corpora["emodb"] = lambda: emodb_manifest(SHARED_DATA / "emodb")
    if args.only:
        corpora = {args.only: corpora[args.only]}

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    loads = [load_average()]
    rows = []
    for corpus, build in corpora.items():
        manifest = build()
        for name, config in extractors:
            runs = {}
            runs["sequential"] = measure(manifest, name, config, workdir / f"{corpus}-{name}-seq",
                                         executor="local")
            runs["process-pool-2"] = measure_process_pool(manifest, name, config, workdir / f"{corpus}-{name}-pp",
                                                          processes=2)
            runs["ray-1"] = measure(manifest, name, config, workdir / f"{corpus}-{name}-r1", concurrency=1)
            runs["ray-2"] = measure(manifest, name, config, workdir / f"{corpus}-{name}-r2", concurrency=2)
            runs["ray-2 decode tasks"] = measure(manifest, name, config, workdir / f"{corpus}-{name}-r2t",
                                                 concurrency=2, decode="tasks")
            runs["cached"] = measure(manifest, name, config, workdir / f"{corpus}-{name}-r2", concurrency=2)
            loads.append(load_average())
            seq = runs["sequential"]["seconds"]
            for mode, r in runs.items():
                rows.append({"corpus": corpus, "clips": len(manifest), "extractor": name, "mode": mode,
                             "seconds": round(r["seconds"], 2), "clips/s": round(r["clips_per_s"], 1),
                             "vs sequential": f"{seq / r['seconds']:.2f}x" if mode != "cached" else
                             f"{100 * r['seconds'] / runs['ray-2']['seconds']:.1f}% of ray-2",
                             "first shard s": "-" if r["first_shard_s"] is None else round(r["first_shard_s"], 2),
                             "peak MB": round(r["peak_mb"]), "failed": r["failed"]})
            print(pd.DataFrame(rows[-len(runs):]).to_string(index=False), flush=True)
    ray.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)
    write_report(Path(args.out), pd.DataFrame(rows), loads)


def target_lines(table: pd.DataFrame) -> list[str]:
    """The issue's targets, checked against this run's rows (eGeMAPS ray-2 >= 1.7x; cached < 5% of the first run)."""
    lines = []
    for (corpus, extractor), runs in table.groupby(["corpus", "extractor"], sort=False):
        by_mode = runs.set_index("mode")
        ratio = by_mode.loc["sequential", "seconds"] / by_mode.loc["ray-2", "seconds"]
        cached = 100 * by_mode.loc["cached", "seconds"] / by_mode.loc["ray-2", "seconds"]
        speed = (f"ray-2 is {ratio:.2f}x the sequential loop"
                 + (f" (target >= 1.7x: {'met' if ratio >= 1.7 else 'NOT met'})" if extractor == "egemaps" else ""))
        lines.append(f"- {corpus} / {extractor}: {speed}; the cached re-run takes {cached:.1f}% of the first run "
                     f"(target < 5%: {'met' if cached < 5 else 'NOT met'}).")
    return lines


def write_report(path: Path, table: pd.DataFrame, loads: list[str]) -> None:
    header = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    text = f"""# Feature-extraction benchmark

Command: `.venv/bin/python benchmarks/extraction.py` (from the repository root); this file is its output.

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()},
no GPU. Load average (1/5/15 min) before and after each corpus x extractor: {' -> '.join(loads)}
(a load near 1-2 is this benchmark itself; higher values mean other jobs shared the 2 cores).

Modes, all in one process and one Ray session (`ray.init` excluded from every time):
- `sequential`: decode + encode in a plain loop in this process (`executor="local"`).
- `process-pool-2`: the same loop in 2 spawned processes (`multiprocessing`, no Ray), each on every other
  clip: what 2 cores give with the least machinery, start-up included; the ceiling for the Ray rows.
- `ray-N`: a Ray Data pipeline with N encode actors that decode their own blocks (the CPU default), actor
  start-up and model loading included.
- `ray-2 decode tasks`: the same with CPU decode tasks feeding the 2 actors (`decode="tasks"`, the GPU layout).
- `cached`: the ray-2 run repeated; every clip is already stored.

`first shard s` is the time from the call to the first stored shard: start-up plus one block of 16 clips.
Peak MB is the summed RSS of the driver and all Ray processes. wav2vec2 is a random-init "small" checkpoint
(4 layers x 256 with the real 7-layer convolutional front end), saved with `save_pretrained` and loaded by
local path.

{chr(10).join(header + body)}

Against the targets:
{chr(10).join(target_lines(table))}

How to read it: `process-pool-2` is what 2 processes give with the least machinery, so the gap between it and
`ray-2` is what Ray costs here: actor processes that start Ray's runtime before the extractor's imports and
model load (see `first shard s`), Ray Data's executor in the driver, and Ray's daemons sharing the 2 cores.
That cost is mostly fixed: a large share of a job of a few seconds (the synthetic corpus), a small one of a
corpus of hundreds of clips. wav2vec2 on CPU does not speed up with 2 workers of either kind: the sequential
loop already uses both cores through torch's intra-op threads, while each worker gets one thread (as Ray
gives a 1-CPU actor) and pays the torch import and model load itself. Ray's gain is GPUs and nodes.

GPU figures: not measured. This task was not lent a GPU machine (the `device` tool reported
`can_start_another: false`), so wav2vec2-base-sized GPU clips/s and GPU utilisation are not recorded.
"""
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
