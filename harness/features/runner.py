"""Extracting one (dataset, extractor) pair on Ray Data, exactly once per clip, resumably.

The manifest rows not yet in the store become a Ray Dataset of in-memory blocks, longest clips first. An actor
pool encodes each block (`EncodeBlock`: the model is loaded once per actor) and writes the block's shard itself,
so a killed run loses at most the blocks in flight and the next run extracts only what no complete shard holds.
Failures (undecodable media, silent audio, no face, empty transcript) are stored in the shard like features, so
they are reported and not retried forever.

Where decoding runs is a resource decision (`plan_resources`); how a clip is decoded lives in
`harness.features.decode`. When the actors hold GPUs, CPU tasks decode (`decode_batch`) so the GPUs never wait
on a decoder. When the actors run on CPUs they already occupy every core, so a separate decode stage adds
serialisation and scheduling but no parallelism: each actor decodes its own block (measured in
benchmarks/extraction.md).

The same decode/encode code also runs as a plain loop in this process (`executor="local"`): the sequential
baseline of the benchmark, and a debugging aid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.features.base import ClipInput, ExtractorRef, extractor_names
from harness.features.decode import decode_batch, decode_clip, decode_or_error, error_text, longest_first, media_rows
from harness.features.store import FeatureStore, StoredFeatures
from harness.manifest import Manifest
from harness.runtime import Progress

# Moved to harness.features.decode; kept importable from here for callers outside harness/features/.
_media_rows = media_rows
__all__ = ["EXECUTORS", "ExtractionResult", "EncodeBlock", "extract", "load_features", "plan_resources",
           "decode_clip", "longest_first", "format_failures"]

EXECUTORS = ("ray", "local")
DECODE_PLACEMENTS = ("auto", "tasks", "actors")
DECODE_CPUS = 0.25  # logical CPUs per decode task: small, so decode tasks always fit next to the actor pool
TASKS_IN_FLIGHT_PER_ACTOR = 2  # one block computing, one prefetched; more only queues blocks behind a busy actor


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
    stored: StoredFeatures  # everything the entry holds after this call, so callers need not read it again

    @property
    def failures(self) -> pd.DataFrame:
        """clip_id, stage, error for every failed clip of the entry."""
        return self.stored.failures

    def summary(self) -> str:
        if self.cached:
            return (f"[features] {self.dataset}/{self.extractor}: cache hit, {self.n_clips} clips reused "
                    f"({self.n_failed} failed) from {self.location}")
        rate = self.n_extracted_now / self.seconds if self.seconds > 0 else float("nan")
        return (f"[features] {self.dataset}/{self.extractor}: extracted {self.n_extracted_now} clips in "
                f"{self.seconds:.1f}s ({rate:.1f} clips/s), {self.n_failed} failed, stored at {self.location}")


class EncodeBlock:
    """Ray Data actor: set up the extractor once, then encode and store each block it is given.

    decode=False: the block holds `decode_batch` output (payloads or decode errors).
    decode=True:  the block holds manifest rows, decoded here in the same process (no serialisation hop).
    """

    def __init__(self, extractor: ExtractorRef, store_root: str, entry: str, decode: bool = False) -> None:
        self.extractor = extractor.build()
        self.store = FeatureStore(store_root)
        self.extractor.cache = self.store  # intermediate results (face crops) live next to the features
        self.extractor.setup()
        self.entry = entry
        self.decode = decode

    def _clips(self, batch: pd.DataFrame) -> list[tuple[str, ClipInput | str]]:
        if self.decode:
            return [(str(row["clip_id"]), decode_or_error(row, self.extractor)) for row in batch.to_dict("records")]
        return [(str(clip_id), str(error) if error else ClipInput.from_bytes(payload))
                for clip_id, payload, error in zip(batch["clip_id"], batch["payload"], batch["error"], strict=True)]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ids, features, failures, decoded = [], [], [], []
        for clip_id, clip in self._clips(batch):
            if isinstance(clip, str):
                failures.append((clip_id, "decode", clip))
            else:
                decoded.append((clip_id, clip))
        # the whole block at once: batched encoders (text) encode it in a few model calls
        results = self.extractor.extract_batch([clip for _, clip in decoded]) if decoded else []
        for (clip_id, _), result in zip(decoded, results, strict=True):
            if isinstance(result, Exception):  # recorded with its stage, never dropped
                failures.append((clip_id, "extract", error_text(result)))
            else:
                features.append(result)
                ids.append(clip_id)
        self.store.write_shard(self.entry, ids, features, failures)
        return pd.DataFrame({"n_ok": [len(ids)], "n_failed": [len(failures)]})


def extract(manifest: Manifest, extractor: str | ExtractorRef, store: FeatureStore,
            config: dict[str, Any] | None = None,
            batch_size: int = 16, concurrency: int | None = None, num_gpus: float | None = None,
            verbose: bool = True, executor: str = "ray", decode: str = "auto") -> ExtractionResult:
    """Extract the clips of `manifest` that the store lacks; return where the features are and what happened.

    extractor:   an ExtractorRef, or a name with its options in `config` (the older loose pair, still accepted).

    batch_size:  clips per block (= per shard); small enough that a killed run loses little.
    concurrency: encode actors (default: one per GPU, else the CPUs minus the decode reserve).
    executor:    "ray" (default) or "local" (a sequential loop in this process, same store and failures).
    decode:      where Ray decodes: "tasks" (CPU tasks feeding the actors), "actors" (each actor decodes its
                 own block), or "auto" (tasks when the actors hold GPUs, actors otherwise).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if decode not in DECODE_PLACEMENTS:
        raise ValueError(f"decode must be one of {DECODE_PLACEMENTS}, got {decode!r}")
    ref = ExtractorRef.of(extractor, config)
    extractor_name = ref.name
    if ref.is_imported:
        return _imported_result(manifest, extractor_name, store, verbose)
    extractor = ref.build()
    fingerprint = manifest.fingerprint()
    key = extractor.cache_key(fingerprint)
    entry = store.entry(manifest.dataset, extractor_name, key)
    store.write_spec(entry, {"dataset": manifest.dataset, "extractor": extractor_name, "config": extractor.config,
                             "version": extractor.version, "weights": extractor.weights_identity(),
                             "manifest": fingerprint})
    todo = set(manifest.ids) - store.processed_ids(entry)
    started = time.perf_counter()
    n_now = 0
    if todo:
        extractor.check_weights()
        rows = media_rows(manifest, todo)
        progress = Progress("features", f"{manifest.dataset}/{extractor_name}", len(rows), "clips", verbose)
        try:
            run = _run_local if executor == "local" else _run_ray
            n_now = run(rows, ExtractorRef(extractor_name, extractor.config), store, entry, batch_size,
                        concurrency, num_gpus, decode, progress)
        finally:
            progress.close()
    stored = store.load(entry)
    result = ExtractionResult(manifest.dataset, extractor_name, key,
                              store.describe(manifest.dataset, extractor_name, key),
                              len(stored.ids), n_now, len(stored.failures),
                              time.perf_counter() - started, cached=not todo, stored=stored)
    if verbose:
        print(result.summary(), flush=True)
        if len(stored.failures):
            print(format_failures(stored.failures), flush=True)
    return result


def format_failures(failures: pd.DataFrame, limit: int = 20) -> str:
    """The failures table as text (first `limit` rows and a count of the rest)."""
    lines = [f"  {len(failures)} clip(s) failed:", "  clip_id | stage | error"]
    for row in failures.head(limit).itertuples(index=False):
        lines.append(f"  {row.clip_id} | {row.stage} | {row.error}")
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more (StoredFeatures.failures has them all)")
    return "\n".join(lines)


def _blocks(rows: pd.DataFrame, batch_size: int) -> list[pd.DataFrame]:
    return [rows.iloc[i:i + batch_size].reset_index(drop=True) for i in range(0, len(rows), batch_size)]


def _run_local(rows: pd.DataFrame, extractor: ExtractorRef, store: FeatureStore, entry: str, batch_size: int,
               concurrency: int | None, num_gpus: float | None, decode: str, progress: Progress) -> int:
    encoder = EncodeBlock(extractor, store.root, entry, decode=True)
    done = 0
    for block in _blocks(rows, batch_size):
        counts = encoder(block)
        n = int(counts["n_ok"].sum() + counts["n_failed"].sum())
        done += n
        progress.update(n)
    return done


@dataclass(frozen=True)
class ResourcePlan:
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    decode_in_tasks: bool


def plan_resources(cpus: float, gpus: float, concurrency: int | None, num_gpus: float | None,
                   decode: str = "auto") -> ResourcePlan:
    """How many encode actors, what each holds, and whether CPU tasks decode for them.

    GPU actors: one per GPU by default, and CPU tasks decode so the GPUs are fed while CPUs decode.
    CPU actors: one per CPU by default, each decoding its own block; the actors already hold every core, so
    decode tasks would only add a serialisation hop. Whenever decode tasks run, the actors leave them a
    reserve: an actor pool that holds every CPU starves the tasks feeding it, a deadlock on a small machine.
    """
    per_gpu = num_gpus if num_gpus is not None else (1.0 if gpus > 0 else 0.0)
    in_tasks = decode == "tasks" or (decode == "auto" and per_gpu > 0)
    actors = concurrency or (max(1, int(gpus / per_gpu)) if per_gpu > 0 else max(1, int(cpus)))
    available = max(cpus - 2 * DECODE_CPUS, DECODE_CPUS) if in_tasks else cpus
    return ResourcePlan(actors, min(1.0, available / actors), per_gpu, in_tasks)


def _run_ray(rows: pd.DataFrame, extractor: ExtractorRef, store: FeatureStore, entry: str, batch_size: int,
             concurrency: int | None, num_gpus: float | None, decode: str, progress: Progress) -> int:
    import ray

    if not ray.is_initialized():  # a library call without a command: the one start-up path, from env settings
        from harness.config import Settings
        from harness.runtime import init_ray

        init_ray(Settings.from_env())
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts clips, Ray's counts blocks per operator
    resources = ray.cluster_resources()
    plan = plan_resources(resources.get("CPU", 1.0), resources.get("GPU", 0.0), concurrency, num_gpus, decode)
    # In-memory blocks of batch_size rows, in `longest_first` order. from_items starts no tasks (from_pandas
    # runs a metadata task per block: about a second of start-up on a small machine).
    n_blocks = -(-len(rows) // batch_size)
    dataset = ray.data.from_items(rows.to_dict("records"), override_num_blocks=n_blocks)
    if plan.decode_in_tasks:
        dataset = dataset.map_batches(decode_batch, batch_format="pandas", batch_size=None,
                                      fn_kwargs={"extractor": extractor},
                                      num_cpus=DECODE_CPUS)
    pool = ray.data.ActorPoolStrategy(size=plan.actors, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT_PER_ACTOR)
    counts = dataset.map_batches(
        # a batch is one block (batch_size rows); Ray Data requires the size spelled out for GPU actors
        EncodeBlock, batch_format="pandas", batch_size=batch_size if plan.gpus_per_actor > 0 else None,
        fn_constructor_kwargs={"extractor": extractor, "store_root": store.root,
                               "entry": entry, "decode": not plan.decode_in_tasks},
        compute=pool,
        num_cpus=plan.cpus_per_actor, num_gpus=plan.gpus_per_actor,
    )
    done = 0
    for batch in counts.iter_batches(batch_format="pandas", batch_size=None):
        n = int(batch["n_ok"].sum() + batch["n_failed"].sum())
        done += n
        progress.update(n)
    return done


def _imported(manifest: Manifest, name: str, store: FeatureStore) -> tuple[str, str]:
    from harness.features.imports import find_imported

    found = find_imported(manifest, name, store)
    if found is None:
        raise KeyError(f"{name!r} is neither an extractor ({', '.join(extractor_names())}) nor imported "
                       f"features of {manifest.dataset} in {store.root}; import a table with `harness features "
                       f"import --dataset {manifest.dataset} --name {name} FILE`")
    return found


def _imported_result(manifest: Manifest, name: str, store: FeatureStore, verbose: bool) -> ExtractionResult:
    """Imported features are never extracted: a cache hit on the stored import, or a clear error."""
    entry, key = _imported(manifest, name, store)
    stored = store.load(entry)
    result = ExtractionResult(manifest.dataset, name, key, store.describe(manifest.dataset, name, key),
                              len(stored.ids), 0, len(stored.failures), 0.0, cached=True, stored=stored)
    if verbose:
        print(result.summary(), flush=True)
    return result


def load_features(manifest: Manifest, extractor: str | ExtractorRef, store: FeatureStore,
                  config: dict[str, Any] | None = None) -> tuple[StoredFeatures, str]:
    """The stored features for a manifest (extract first, or import); returns them with their cache key."""
    ref = ExtractorRef.of(extractor, config)
    if ref.is_imported:
        entry, key = _imported(manifest, ref.name, store)
        return store.load(entry), key
    key = ref.cache_key(manifest.fingerprint())
    return store.load(store.entry(manifest.dataset, ref.name, key)), key
