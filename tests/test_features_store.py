"""The feature store: round trip, atomic shards (a crash leaves nothing trusted), failures, blobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.crash import DiesBeforeRename

from harness.features.base import Features
from harness.features.store import FeatureStore


def _features(n: int, dim: int = 3) -> list[Features]:
    return [Features(sequence=np.full((i + 1, dim), i, np.float32), pooled=np.full(dim, i, np.float32))
            for i in range(n)]


def test_round_trip_with_failures(tmp_path: Path) -> None:
    store = FeatureStore(str(tmp_path))
    entry = store.entry("ds", "ex", "k1")
    store.write_shard(entry, ["a", "b"], _features(2), [("c", "decode", "MediaError: c.mp4: broken")])
    store.write_shard(entry, ["d"], _features(1), [])
    loaded = store.load(entry)
    assert sorted(loaded.ids) == ["a", "b", "d"]
    index = loaded.index()
    assert loaded.sequences[index["b"]].shape == (2, 3) and loaded.pooled.shape == (3, 3)
    assert loaded.failures.to_dict("records") == [{"clip_id": "c", "stage": "decode",
                                                   "error": "MediaError: c.mp4: broken"}]
    assert store.processed_ids(entry) == {"a", "b", "c", "d"}


def test_crash_mid_write_leaves_no_trusted_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore(str(tmp_path))
    entry = store.entry("ds", "ex", "k1")
    store.write_shard(entry, ["a"], _features(1), [])

    monkeypatch.setattr(store, "fs", DiesBeforeRename(store.fs))
    with pytest.raises(KeyboardInterrupt):
        store.write_shard(entry, ["b", "c"], _features(2), [])
    shards = tmp_path / "ds" / "ex" / "k1" / "shards"
    assert len(list(shards.iterdir())) == 1  # an interrupt removes its temporary file (issue 20)
    (shards / ".tmp-0123").write_bytes(b"half a shard")  # what a SIGKILL mid-write leaves
    assert store.processed_ids(entry) == {"a"}  # the half-written shard is not trusted
    assert store.load(entry).ids == ["a"]


def test_truncated_shard_is_never_produced_by_rename(tmp_path: Path) -> None:
    """Every visible shard is complete: it loads, and its ids match what was written."""
    store = FeatureStore(str(tmp_path))
    entry = store.entry("ds", "ex", "k")
    path = store.write_shard(entry, [f"c{i}" for i in range(5)], _features(5), [])
    assert Path(path).name.startswith("shard-") and len(store.load(entry).ids) == 5


def test_blobs_and_entries(tmp_path: Path) -> None:
    store = FeatureStore(str(tmp_path))
    assert store.read_blob("face-crops", "x.npz") is None
    store.write_blob("face-crops", "x.npz", b"abc")
    assert store.read_blob("face-crops", "x.npz") == b"abc"
    entry = store.entry("ds", "ex", "k")
    store.write_spec(entry, {"dataset": "ds", "extractor": "ex"})
    assert [(e["dataset"], e["extractor"], e["shards"]) for e in store.entries()] == [("ds", "ex", 0)]


def test_uri_root(tmp_path: Path) -> None:
    store = FeatureStore(f"file://{tmp_path}")
    entry = store.entry("ds", "ex", "k")
    store.write_shard(entry, ["a"], _features(1), [])
    assert FeatureStore(str(tmp_path)).load(FeatureStore(str(tmp_path)).entry("ds", "ex", "k")).ids == ["a"]
