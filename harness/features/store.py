"""The feature store: one directory per (dataset, extractor, cache key), one NPZ shard per extracted block.

Layout: `<root>/<dataset>/<extractor>/<key>/spec.json` and `shards/shard-<digest>.npz`. Each shard holds the
clips of one block, both the extracted ones (ids, pooled, concatenated sequences with offsets) and the failed
ones (id, stage, error). A shard is written under a temporary name and renamed, so a run killed midway leaves
only complete shards plus temporary leftovers that are never read; re-running extracts exactly the clips that
no complete shard holds. `root` is a local path or any URI pyarrow understands (e.g. `s3://bucket/features`).
NPZ files are read with `allow_pickle=False`.

On S3, which has no rename, the protocol still holds: pyarrow's `move` of an object is a server-side copy to the final
key followed by a delete of the temporary key, and S3 creates an object in one step (a GET or LIST never sees a
partial one), so a shard key is either absent or complete; a run killed between upload and copy leaves a
temporary object, which is never listed as a shard. Directories on S3 are only empty marker objects. The endpoint
and credentials come from the AWS environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...) or from the URI's
query (`s3://bucket/features?endpoint_override=http://host:port&scheme=http`), which every worker reuses as is.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.atomic import TEMP_PREFIX
from harness.hashing import stable_hash

FAILURE_COLUMNS = ["clip_id", "stage", "error"]


@dataclass
class StoredFeatures:
    """Everything a store entry holds, keyed by clip id."""

    ids: list[str]
    pooled: np.ndarray  # [N, D]
    sequences: list[np.ndarray]  # N arrays [T_i, D]
    failures: pd.DataFrame  # clip_id, stage, error

    def index(self) -> dict[str, int]:
        return {clip_id: i for i, clip_id in enumerate(self.ids)}


def _filesystem(uri: str):
    from pyarrow import fs

    if "://" in uri:
        return fs.FileSystem.from_uri(uri)
    from pathlib import Path

    return fs.LocalFileSystem(), str(Path(uri).resolve())


class FeatureStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, self.base = _filesystem(root)

    # ---- paths -------------------------------------------------------------------------------------
    def entry(self, dataset: str, extractor: str, key: str) -> str:
        return f"{self.base}/{dataset}/{extractor}/{key}"

    def describe(self, dataset: str, extractor: str, key: str) -> str:
        """Human-readable location (the URI the user configured, not pyarrow's internal path).

        A URI's query (S3 connection options) stays at the end, so the location is itself a valid URI.
        """
        uri = "://" in self.root and "?" in self.root
        root, query = self.root.split("?", 1) if uri else (self.root, "")
        return f"{root.rstrip('/')}/{dataset}/{extractor}/{key}" + (f"?{query}" if query else "")

    def _shard_paths(self, entry: str) -> list[str]:
        from pyarrow import fs

        selector = fs.FileSelector(f"{entry}/shards", allow_not_found=True)
        return sorted(info.path for info in self.fs.get_file_info(selector)
                      if info.type == fs.FileType.File and info.base_name.endswith(".npz")
                      and not info.base_name.startswith(TEMP_PREFIX))

    # ---- writing -----------------------------------------------------------------------------------
    def write_spec(self, entry: str, spec: dict[str, Any]) -> None:
        self._atomic_write(f"{entry}/spec.json", json.dumps(spec, indent=2, sort_keys=True).encode())

    def write_shard(self, entry: str, ids: list[str], features: list[Any],
                    failures: list[tuple[str, str, str]]) -> str:
        """Store one block atomically; `features[i]` has `.sequence` [T, D] and `.pooled` [D] for `ids[i]`."""
        if ids:
            pooled = np.stack([f.pooled for f in features]).astype(np.float32)
            lengths = np.array([len(f.sequence) for f in features], dtype=np.int64)
            sequence = np.concatenate([f.sequence for f in features]).astype(np.float32)
        else:
            pooled = np.zeros((0, 0), np.float32)
            lengths = np.zeros(0, np.int64)
            sequence = np.zeros((0, 0), np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, ids=np.array(ids, dtype=str), pooled=pooled,
                 offsets=np.concatenate([[0], np.cumsum(lengths)]), sequence=sequence,
                 failed_ids=np.array([f[0] for f in failures], dtype=str),
                 failed_stage=np.array([f[1] for f in failures], dtype=str),
                 failed_error=np.array([f[2] for f in failures], dtype=str))
        digest = stable_hash(sorted(ids) + sorted(f[0] for f in failures))
        path = f"{entry}/shards/shard-{digest}.npz"
        self._atomic_write(path, buffer.getvalue())
        return path

    def _atomic_write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)
            self.fs.move(tmp, path)
        except BaseException:  # a full disk, Ctrl-C, SIGTERM: no temporary object is left behind
            with contextlib.suppress(Exception):
                self.fs.delete_file(tmp)
            raise

    # ---- intermediate caches (face crops) ----------------------------------------------------------
    def write_blob(self, namespace: str, key: str, data: bytes) -> None:
        """Store an intermediate result (e.g. one clip's face crops) atomically under `_cache/<namespace>`."""
        self._atomic_write(f"{self.base}/_cache/{namespace}/{key}", data)

    def read_blob(self, namespace: str, key: str) -> bytes | None:
        from pyarrow import fs

        path = f"{self.base}/_cache/{namespace}/{key}"
        if self.fs.get_file_info(path).type != fs.FileType.File:
            return None
        with self.fs.open_input_file(path) as stream:
            return stream.read()

    def entries(self) -> list[dict[str, Any]]:
        """Every stored (dataset, extractor, key) with its spec: what `harness features list` shows."""
        from pyarrow import fs

        found = []
        for info in self.fs.get_file_info(fs.FileSelector(self.base, recursive=True, allow_not_found=True)):
            if info.type == fs.FileType.File and info.base_name == "spec.json":
                entry = info.path.rsplit("/", 1)[0]
                with self.fs.open_input_file(info.path) as stream:
                    spec = json.loads(stream.read())
                found.append({"entry": entry, "shards": len(self._shard_paths(entry)), **spec})
        return found

    # ---- reading -----------------------------------------------------------------------------------
    def _read_shard(self, path: str) -> dict[str, np.ndarray]:
        with self.fs.open_input_file(path) as stream:
            data = stream.read()
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def processed_ids(self, entry: str) -> set[str]:
        """Clips that a complete shard holds, extracted or failed: these are not extracted again."""
        done: set[str] = set()
        for path in self._shard_paths(entry):
            shard = self._read_shard(path)
            done.update(shard["ids"].tolist())
            done.update(shard["failed_ids"].tolist())
        return done

    def load(self, entry: str) -> StoredFeatures:
        ids: list[str] = []
        pooled: list[np.ndarray] = []
        sequences: list[np.ndarray] = []
        failures: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for path in self._shard_paths(entry):
            shard = self._read_shard(path)
            offsets = shard["offsets"]
            for i, clip_id in enumerate(shard["ids"].tolist()):
                if clip_id in seen:  # two shards for one clip only after a race; the first one wins
                    continue
                seen.add(clip_id)
                ids.append(clip_id)
                pooled.append(shard["pooled"][i])
                sequences.append(shard["sequence"][offsets[i]:offsets[i + 1]])
            failures.extend(zip(shard["failed_ids"].tolist(), shard["failed_stage"].tolist(),
                                shard["failed_error"].tolist(), strict=True))
        dim = pooled[0].shape[0] if pooled else 0
        return StoredFeatures(
            ids=ids,
            pooled=np.stack(pooled) if pooled else np.zeros((0, dim), np.float32),
            sequences=sequences,
            failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS),
        )
