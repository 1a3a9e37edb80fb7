"""Storage a cluster can share: node-local paths refused on a multi-host cluster, the unit store on S3."""

from __future__ import annotations

import pytest
from fixtures.search_jobs import Recorder, make_job, toy_data

from harness import runtime
from harness.config import Settings
from harness.search import Search, SearchOptions, UnitStore


def test_multi_host_cluster_refuses_node_local_storage(monkeypatch, tmp_path) -> None:
    settings = Settings(workspace=tmp_path)
    monkeypatch.setattr(runtime, "cluster_hosts", lambda: {"10.0.0.1"})
    runtime.check_shared_storage(settings)  # one host: every raylet reads this machine's disk
    monkeypatch.setattr(runtime, "cluster_hosts", lambda: {"10.0.0.1", "10.0.0.2"})
    with pytest.raises(runtime.StorageError, match=r"tune_storage is .*--tune-storage s3://"):
        runtime.check_shared_storage(settings)
    shared_tune = settings.with_(tune_storage="s3://bucket/tune")
    with pytest.raises(runtime.StorageError, match=r"feature_store is .*--feature-store s3://"):
        runtime.check_shared_storage(shared_tune)
    runtime.check_shared_storage(shared_tune.with_(feature_store="s3://bucket/features"))
    monkeypatch.setenv("HARNESS_SHARED_FILESYSTEM", "1")  # a path mounted on every host, declared so
    runtime.check_shared_storage(settings)


def test_search_with_tune_storage_on_s3(s3_root: str) -> None:
    """Tune's experiment state and the unit store on an S3 URI (local moto server); Ray starts after the
    endpoint is set, so its workers inherit it."""
    import ray

    tune_uri = s3_root.rsplit("/", 1)[0] + "/tune"
    data = toy_data()
    job = make_job("audio-svm", data, 2)
    recorder = Recorder()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        Search([job], {"toy": data}, SearchOptions(tune_uri), recorder).run()
    finally:
        ray.shutdown()
    assert not recorder.failures and job.label in recorder.outcomes
    store = UnitStore(tune_uri)
    assert all(store.load(job.unit_key(c, f.name)) is not None for c in range(2) for f in job.folds)
