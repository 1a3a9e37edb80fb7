"""The user's path from a launched cluster to the leaderboard, on Ray's fake multi-node provider (cluster-local.yaml).

What runs, in order, all with token authentication (one token made on "the user's machine", given as a file):
  1. the head, started by cluster-local.yaml's own head commands (MLflow server, then `ray start --head
     --autoscaling-config=cluster-local.yaml`): no worker yet, no GPU anywhere;
  2. `harness run` of a small suite with a neural and a classical method, from a shell on the head (what
     `ray exec cluster.yaml '...'` gives), tracking to the head's MLflow server;
  3. the autoscaler launches CPU workers for extraction and classical units and a GPU-type worker because neural
     units ask for a GPU share (cluster_gpu_capacity reads the GPU node type from the autoscaler's config);
  4. each unit's node is looked up in Ray's node table: neural units ran on the GPU-type node, classical units on
     workers, none on the head;
  5. the MLflow server holds the parent and the trial children of both methods; `harness report` renders from it;
  6. the cluster is stopped (its process group only: never `ray stop`).
`ray up` / `ray down` themselves cannot drive the fake provider (see tests/fixtures/fake_cluster.py).
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fixtures.fake_cluster import GCS_PORT, MLFLOW_PORT, busy_ports, fake_cluster

pytestmark = pytest.mark.slow

HARNESS = str(Path(sys.executable).parent / "harness")
NEURAL, CLASSICAL = "neural-audio", "audio-svm"
TRIALS = 2


def _mlflow_runs(base: str) -> list[dict]:
    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    experiments = post("experiments/search", {"max_results": 100}).get("experiments", [])
    ids = [e["experiment_id"] for e in experiments]
    return post("runs/search", {"experiment_ids": ids, "max_results": 1000}).get("runs", [])


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _units(workspace: Path) -> list[dict]:
    folder = workspace / "tune" / "_cache" / "units"
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".tmp-"):
            continue
        payload = pickle.loads(path.read_bytes())  # written by this run of the harness
        if "timing" in payload:
            found.append(payload)
    return found


@pytest.mark.skipif(bool(busy_ports()), reason=f"ports {busy_ports()} are taken on this machine: the fake cluster's "
                                              f"head listens on 6379 (where launched nodes look for it), 8265, 5000")
@pytest.mark.timeout(900)
def test_launched_cluster_autoscales_cpu_and_gpu_workers_and_fills_the_leaderboard(tmp_path, small_synthetic):
    workspace = tmp_path / "ws"
    with fake_cluster(tmp_path, tmp_path / "head.log") as cluster:
        nodes = cluster.nodes()
        assert [n["id"] for n in nodes] == ["f" * 51 + "00000"]  # the head alone: no worker, no GPU
        assert "GPU" not in nodes[0]["resources"] and "CPU" not in nodes[0]["resources"]

        run = cluster.run([HARNESS, "run", "--address", f"127.0.0.1:{GCS_PORT}", "--dataset", "synthetic",
                           "--data-dir", f"synthetic={small_synthetic}", "--method", NEURAL, "--method", CLASSICAL,
                           "--trials", str(TRIALS), "--max-epochs", "2", "--workspace", str(workspace),
                           "--tracking-uri", f"http://127.0.0.1:{MLFLOW_PORT}", "--no-report"], timeout=720)
        assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
        assert cluster.token.read_text() not in run.stdout + run.stderr  # the token is never logged

        # 3-4: who ran where. Node types from Ray's node table: the GPU type declares GPU, the head has no CPU.
        types = {}
        for node in cluster.nodes():
            resources = node["resources"]
            types[node["id"]] = ("gpu_worker" if resources.get("GPU") else
                                 "cpu_worker" if resources.get("CPU") else "head")
        # Each unit records the node type the autoscaler gave its node (RAY_NODE_TYPE_NAME); the node table's
        # resources say the same for the nodes still alive (idle workers leave after a minute).
        placed = [(u["timing"].get("node_type"), u["timing"]["node"], bool(u.get("gpu_ids")))
                  for u in _units(workspace)]
        assert all(recorded for recorded, _, _ in placed), placed
        assert all(recorded == types[node] for recorded, node, _ in placed if types.get(node, "head") != "head")
        by_type = {}
        for recorded, _, _ in placed:
            by_type[recorded] = by_type.get(recorded, 0) + 1
        (tmp_path / "placement.json").write_text(json.dumps({"units_per_node_type": by_type}))
        neural = [(recorded, gpu) for recorded, _, gpu in placed if gpu]
        classical = [recorded for recorded, _, gpu in placed if not gpu]
        assert neural and all(t == ("gpu_worker", True) for t in neural), by_type
        assert classical and "head" not in classical and "cpu_worker" in classical, by_type
        log = cluster.monitor_log()
        assert re.search(r"Adding 1 node\(s\) of type gpu_worker", log)
        assert re.search(r"Adding \d+ node\(s\) of type cpu_worker", log)

        # 5: the head's MLflow server holds parents and trial children; the leaderboard renders from it.
        runs = _mlflow_runs(f"http://127.0.0.1:{MLFLOW_PORT}")
        parents = {_tags(r).get("method") for r in runs if _tags(r).get("harness.role") == "parent"
                   and r["info"]["status"] == "FINISHED"}
        children = [r for r in runs if _tags(r).get("harness.role") == "trial"]
        assert parents == {NEURAL, CLASSICAL}
        assert {_tags(r).get("method") for r in children} == {NEURAL, CLASSICAL}
        report = cluster.run([HARNESS, "report", "--tracking-uri", f"http://127.0.0.1:{MLFLOW_PORT}",
                              "--workspace", str(workspace), "--out", str(tmp_path / "reports")], timeout=300)
        assert report.returncode == 0, report.stderr[-3000:]
        page = next((tmp_path / "reports").rglob("*.md")).read_text()
        assert NEURAL in page and CLASSICAL in page
        cluster_scores = {_tags(r).get("method"): {m["key"]: m["value"] for m in r["data"].get("metrics", [])}
                          for r in runs if _tags(r).get("harness.role") == "parent"}
        session = cluster.session

    # The leaderboard means what a local run's means: the classical method, run locally with the same seed on the
    # same features, scores the same on every headline metric.
    local = tmp_path / "local"
    args = [HARNESS, "run", "--num-cpus", "2", "--dataset", "synthetic", "--data-dir", f"synthetic={small_synthetic}",
            "--method", CLASSICAL, "--trials", str(TRIALS), "--workspace", str(local / "ws"),
            "--feature-store", str(workspace / "features"), "--tracking-uri", f"sqlite:///{local}/mlruns.db",
            "--no-report"]
    env = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_")}
    assert subprocess.run(args, env={**env, "RAY_ADDRESS": "local"}, capture_output=True, timeout=600).returncode == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{local}/mlruns.db")
    experiment = client.get_experiment_by_name("mer-benchmark")
    (local_parent,) = [r for r in client.search_runs([experiment.experiment_id])
                       if r.data.tags.get("harness.role") == "parent"]
    for metric in ("test_uar_mean", "test_accuracy_mean", "test_weighted_f1_mean"):
        assert cluster_scores[CLASSICAL][metric] == pytest.approx(local_parent.data.metrics[metric], abs=1e-12)
    left = subprocess.run(["ps", "-eo", "pgid="], capture_output=True, text=True).stdout.split()
    assert str(session) not in left  # the cluster is down: nothing of its process group is left
