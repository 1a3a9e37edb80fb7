"""GPU workers from zero: neural units ask for a GPU share when the cluster's autoscaler can launch GPU nodes, not only
when a GPU node is up at the moment the search starts (cluster.yaml's gpu_worker has min_workers 0).

The slow test in test_cluster_launch.py shows the whole chain on a launched cluster (a GPU-type node launched for
the neural units, which run there); these check the parts: the node-type arithmetic on both cluster files, finding
the autoscaler's config through the head's monitor process, and the search's resource request.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_both_cluster_files_can_bring_up_gpus_from_zero():
    from harness.runtime import node_type_gpus

    for name, expected in (("cluster.yaml", 4.0), ("cluster-local.yaml", 1.0)):
        config = yaml.safe_load((REPO / name).read_text())
        assert config["available_node_types"]["gpu_worker"]["min_workers"] == 0, name
        assert node_type_gpus(config) == expected, name
    assert node_type_gpus({"available_node_types": {"cpu_worker": {"resources": {"CPU": 16}, "max_workers": 8}}}) == 0


@pytest.fixture
def fake_monitor(tmp_path):
    """A process whose command line is a Ray monitor's, started in a folder holding its (relative) config."""
    (tmp_path / "cluster-local.yaml").write_text((REPO / "cluster-local.yaml").read_text())
    args = [sys.executable, "-c", "import time; time.sleep(60)",
            "/x/ray/autoscaler/_private/monitor.py", "--logs-dir=/tmp/none",
            "--gcs-address=192.0.2.77:16380", "--autoscaling-config=cluster-local.yaml"]
    process = subprocess.Popen(args, cwd=tmp_path)
    time.sleep(0.2)
    yield
    process.kill()
    process.wait()


def test_the_autoscalers_config_is_read_from_the_heads_monitor_of_this_cluster_only(fake_monitor):
    from harness.runtime import _monitor_autoscaling_config

    config = _monitor_autoscaling_config("192.0.2.77:16380")
    assert config is not None and config["cluster_name"] == "mer-harness-local"  # relative to the monitor's cwd
    assert _monitor_autoscaling_config("192.0.2.77:16381") is None  # another cluster's address: not this one


def test_neural_units_request_a_gpu_share_when_only_the_autoscaler_can_provide_gpus(monkeypatch):
    """A search on a cluster with no GPU node up but a GPU node type: neural units request {CPU: 1, GPU: share},
    so Tune's pending placement groups are the demand the autoscaler launches a GPU node for."""
    from fixtures.search_jobs import make_job, toy_data

    import harness.search as search

    data = toy_data()
    neural, classical = make_job("neural-audio", data, 1), make_job("audio-svm", data, 1)
    monkeypatch.setattr(search, "cluster_gpu_capacity", lambda: (1.0, "the autoscaler's node types"))
    engine = search.Search([neural, classical], {"toy": data}, search.SearchOptions("/tmp/unused", gpus_per_trial=0.5),
                           listener=None)
    engine._cluster_gpus, engine._gpu_source = search.cluster_gpu_capacity()
    assert engine._resources(neural) == {"CPU": 1, "GPU": 0.5}
    assert engine._resources(classical) == {"CPU": 1}
    engine._cluster_gpus = 0.0  # no GPU node and no GPU node type: neural units run on CPUs
    assert engine._resources(neural) == {"CPU": 1}
