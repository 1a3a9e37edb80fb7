"""Extracting one (dataset, extractor) pair on Ray Data, exactly once per clip, resumably.

The manifest rows not yet in the store become a Ray Dataset; `map_batches` with an actor class decodes and
encodes each block (the model is loaded once per actor) and writes the block's shard itself, so a killed run
loses at most the blocks in flight. Failures (undecodable media, silent audio, empty transcript) are stored in
the shard like features, so they are reported and not retried on every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.features.base import ClipInput, build_extractor
from harness.features.store import FeatureStore, StoredFeatures
from harness.manifest import Manifest
from harness.media import MediaError, load_audio, load_frames


@dataclass
class ExtractionResult:
    dataset: str
    extractor: str
    key: str
    location: str
    n_clips: int
    n_extracted_now: int
    n_failed: int
    seconds: float
    cached: bool

    def summary(self) -> str:
        if self.cached:
            return (f"[features] {self.dataset}/{self.extractor}: cache hit, {self.n_clips} clips reused "
                    f"({self.n_failed} failed) from {self.location}")
        rate = self.n_extracted_now / self.seconds if self.seconds > 0 else float("nan")
        return (f"[features] {self.dataset}/{self.extractor}: extracted {self.n_extracted_now} clips in "
                f"{self.seconds:.1f}s ({rate:.1f} clips/s), {self.n_failed} failed, stored at {self.location}")


def decode_clip(row: dict[str, Any], modality: str, extractor) -> ClipInput:
    """Decode what the extractor's modality needs; raises MediaError/ValueError naming the file."""
    clip = ClipInput(clip_id=str(row["clip_id"]))
    if modality == "audio":
        source = row.get("audio_path") or row.get("video_path")
        if not source:
            raise MediaError("the manifest names no audio or video file for this clip")
        clip.audio = load_audio(source, extractor.sample_rate)
        if float(np.max(np.abs(clip.audio))) == 0.0:
            raise MediaError(f"{source}: audio is silent (every sample is zero)")
    elif modality == "video":
        if not row.get("video_path"):
            raise MediaError("the manifest names no video file for this clip")
        clip.frames, clip.fps = load_frames(row["video_path"], extractor.fps, extractor.max_frames)
    elif modality == "text":
        clip.text = row.get("text") or ""
        if not str(clip.text).strip():
            raise ValueError("the manifest has no transcript for this clip")
    return clip


class ExtractBlock:
    """Ray Data actor: set up the extractor once, then extract and store each block it is given."""

    def __init__(self, extractor_name: str, config: dict[str, Any], store_root: str, entry: str) -> None:
        self.extractor = build_extractor(extractor_name, config)
        self.extractor.setup()
        self.store = FeatureStore(store_root)
        self.entry = entry

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, features, failures = [], [], []
        rows = pd.DataFrame(batch).to_dict("records")
        for row in rows:
            clip_id = str(row["clip_id"])
            stage = "decode"
            try:
                clip = decode_clip(row, self.extractor.modality, self.extractor)
                stage = "extract"
                features.append(self.extractor.extract(clip))
                ids.append(clip_id)
            except Exception as error:  # every failure is recorded with its stage, never dropped
                failures.append((clip_id, stage, f"{type(error).__name__}: {error}"))
        self.store.write_shard(self.entry, ids, features, failures)
        return {"n_ok": np.array([len(ids)]), "n_failed": np.array([len(failures)])}


def _media_rows(manifest: Manifest, todo: set[str]) -> pd.DataFrame:
    table = manifest.table[manifest.table["clip_id"].isin(todo)]
    rows = pd.DataFrame({"clip_id": table["clip_id"].astype(str)})
    for column in ("audio_path", "video_path"):
        rows[column] = [str(p) if (p := manifest.resolve(v)) else "" for v in table[column]]
    rows["text"] = table["text"].fillna("").astype(str).values
    return rows.reset_index(drop=True)


def extract(manifest: Manifest, extractor_name: str, store: FeatureStore, config: dict[str, Any] | None = None,
            batch_size: int = 32, concurrency: int | None = None, num_gpus: float | None = None,
            verbose: bool = True) -> ExtractionResult:
    """Extract the clips of `manifest` that the store lacks; return where the features are and what happened."""
    extractor = build_extractor(extractor_name, config)
    key = extractor.cache_key(manifest.fingerprint())
    entry = store.entry(manifest.dataset, extractor_name, key)
    store.write_spec(entry, {"dataset": manifest.dataset, "extractor": extractor_name, "config": extractor.config,
                             "version": extractor.version, "weights": extractor.weights_identity(),
                             "manifest": manifest.fingerprint()})
    todo = set(manifest.ids) - store.processed_ids(entry)
    started = time.perf_counter()
    n_now = 0
    if todo:
        n_now = _run_ray(manifest, extractor_name, extractor.config, store, entry, todo, batch_size,
                         concurrency, num_gpus, verbose)
    stored = store.load(entry)
    result = ExtractionResult(manifest.dataset, extractor_name, key,
                              store.describe(manifest.dataset, extractor_name, key),
                              len(stored.ids), n_now, len(stored.failures),
                              time.perf_counter() - started, cached=not todo)
    if verbose:
        print(result.summary(), flush=True)
    return result


def _run_ray(manifest: Manifest, extractor_name: str, config: dict[str, Any], store: FeatureStore, entry: str,
             todo: set[str], batch_size: int, concurrency: int | None, num_gpus: float | None,
             verbose: bool) -> int:
    import ray

    rows = _media_rows(manifest, todo)
    gpus = num_gpus if num_gpus is not None else (1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0)
    workers = concurrency or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)))
    # One in-memory block per batch: no upstream read or repartition tasks, which would compete with the actor
    # pool for the same CPUs (on a small machine that is a deadlock, not just a slowdown).
    blocks = [rows.iloc[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    dataset = ray.data.from_pandas(blocks)
    results = dataset.map_batches(
        ExtractBlock,
        fn_constructor_kwargs={"extractor_name": extractor_name, "config": config,
                               "store_root": store.root, "entry": entry},
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers), num_gpus=gpus, num_cpus=0 if gpus else 1,
    )
    done = 0
    started = time.perf_counter()
    for summary in results.iter_rows():
        done += int(summary["n_ok"]) + int(summary["n_failed"])
        if verbose:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"[features] {manifest.dataset}/{extractor_name}: {done}/{len(rows)} clips ({rate:.1f} clips/s)",
                  flush=True)
    return done


def load_features(manifest: Manifest, extractor_name: str, store: FeatureStore,
                  config: dict[str, Any] | None = None) -> tuple[StoredFeatures, str]:
    """The stored features for a manifest (extract first); returns them with their cache key."""
    extractor = build_extractor(extractor_name, config)
    key = extractor.cache_key(manifest.fingerprint())
    return store.load(store.entry(manifest.dataset, extractor_name, key)), key
