"""The feature store on an S3 URI, against a real S3 protocol server (moto) bound to 127.0.0.1.

Nothing leaves the machine: the endpoint is the local moto server, the credentials are dummies set only for the
duration of each test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.crash import DiesBeforeRename
from fixtures.s3 import BUCKET

from harness.features.base import Features
from harness.features.store import FeatureStore

pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")

def _features(n: int, dim: int = 3) -> list[Features]:
    return [Features(sequence=np.full((i + 1, dim), i, np.float32), pooled=np.full(dim, i, np.float32))
            for i in range(n)]


def _keys(store: FeatureStore) -> list[str]:
    from pyarrow import fs

    return [info.path for info in store.fs.get_file_info(fs.FileSelector(store.base, recursive=True))
            if info.type == fs.FileType.File]


def test_round_trip_and_listing(s3_root: str) -> None:
    store = FeatureStore(s3_root)
    assert store.base == f"{BUCKET}/features"
    entry = store.entry("ds", "ex", "k1")
    store.write_spec(entry, {"dataset": "ds", "extractor": "ex"})
    store.write_shard(entry, ["a", "b"], _features(2), [("c", "decode", "MediaError: c.mp4: broken")])
    store.write_shard(entry, ["d"], _features(1), [])
    loaded = FeatureStore(s3_root).load(entry)  # a second client sees exactly what the first wrote
    assert sorted(loaded.ids) == ["a", "b", "d"] and loaded.pooled.shape == (3, 3)
    assert loaded.sequences[loaded.index()["b"]].shape == (2, 3)
    assert loaded.failures.to_dict("records") == [{"clip_id": "c", "stage": "decode",
                                                   "error": "MediaError: c.mp4: broken"}]
    assert store.processed_ids(entry) == {"a", "b", "c", "d"}
    assert [(e["dataset"], e["extractor"], e["shards"]) for e in store.entries()] == [("ds", "ex", 2)]
    assert store.describe("ds", "ex", "k1") == f"{s3_root}/ds/ex/k1"
    store.write_blob("face-crops", "clip.npz", b"crops")
    assert store.read_blob("face-crops", "clip.npz") == b"crops" and store.read_blob("face-crops", "x") is None
    assert not any(Path(key).name.startswith(".tmp-") for key in _keys(store))  # no temporary object is left


def test_endpoint_in_the_uri_query(s3_root: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AWS_ENDPOINT_URL, the URI itself carries the endpoint; locations keep the query at the end."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    root = f"{s3_root}?endpoint_override={s3_endpoint}&scheme=http"
    store = FeatureStore(root)
    entry = store.entry("ds", "ex", "k1")
    store.write_shard(entry, ["a"], _features(1), [])
    assert FeatureStore(root).processed_ids(entry) == {"a"}
    assert store.describe("ds", "ex", "k1") == f"{s3_root}/ds/ex/k1?endpoint_override={s3_endpoint}&scheme=http"


def test_temporary_objects_are_never_shards(s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer interrupted after uploading its temporary object removes it; one killed outright (SIGKILL) leaves
    it behind, and nothing left behind is read as a shard."""
    store = FeatureStore(s3_root)
    entry = store.entry("ds", "ex", "k1")
    store.write_shard(entry, ["a"], _features(1), [])

    monkeypatch.setattr(store, "fs", DiesBeforeRename(store.fs))
    with pytest.raises(KeyboardInterrupt):
        store.write_shard(entry, ["b", "c"], _features(2), [])
    shards = [key for key in _keys(store) if "/shards/" in key]
    assert len(shards) == 1 and not Path(shards[0]).name.startswith(".tmp-")  # the interrupt removed its object
    with store.fs.open_output_stream(f"{Path(shards[0]).parent}/.tmp-0123") as leftover:  # what a SIGKILL leaves
        leftover.write(b"half a shard")
    assert store.processed_ids(entry) == {"a"}
    assert FeatureStore(s3_root).load(entry).ids == ["a"]


def test_extract_to_s3_then_cache_hit(s3_root: str, tmp_path: Path) -> None:
    from harness.datasets.synthetic import SyntheticConfig, generate, scan
    from harness.features.runner import extract

    generate(tmp_path / "corpus", SyntheticConfig(n_speakers=2, clips_per_emotion=1))
    manifest = scan(tmp_path / "corpus")
    store = FeatureStore(s3_root)
    first = extract(manifest, "frame-grid", store, executor="local", verbose=False)
    assert not first.cached and first.n_failed == 0 and first.n_extracted_now == first.n_clips == len(manifest.ids)
    assert first.location.startswith(f"{s3_root}/")
    second = extract(manifest, "frame-grid", FeatureStore(s3_root), executor="local", verbose=False)
    assert second.cached and second.n_extracted_now == 0 and second.key == first.key
    stored = FeatureStore(s3_root).load(store.entry(manifest.dataset, "frame-grid", first.key))
    assert sorted(stored.ids) == sorted(manifest.ids) and np.isfinite(stored.pooled).all()
