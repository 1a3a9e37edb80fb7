"""Search throughput on a launched, autoscaling cluster (cluster-local.yaml: Ray's fake multi-node provider, up to 4
workers, token authentication), written to benchmarks/cluster_throughput.md.

One run of the user's path (the head from cluster-local.yaml's own commands, then `harness run` from a shell on the
head, as tests/test_cluster_launch.py does), measured from the logs Ray and the harness write anyway:
  time to the first unit   head start -> `ray start --head` returned -> the autoscaler's first launch decision ->
                           first worker raylet up -> first unit running
  scale-up latency         per launched node: the autoscaler's decision ("Queue N new nodes for launch") -> the
                           node's raylet started -> the node's first unit started
  slot utilisation         busy unit-seconds over the slot-seconds the cluster offered, from the first unit's start
                           to the last unit's end; slots = the CPUs of the workers alive at each moment (every
                           unit takes 1 CPU), and, as in benchmarks/search.md (79.3 % on 3 fixed loopback raylets),
                           over the largest slot count for the whole span
  where the idle slot-seconds went: slots that no pending unit could take before the last unit started (work that
                           could not be placed: neural units need the GPU node's share, nodes that joined late),
                           the drain after the last unit started, and the turnaround between one unit's end and the
                           next unit's start on the same node (Tune's per-trial cost).

Usage: .venv/bin/python benchmarks/cluster_throughput.py [--out benchmarks/cluster_throughput.md]
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
HARNESS = str(Path(sys.executable).parent / "harness")
CLASSICAL = ["audio-svm", "audio-xgboost", "audio-mlp"]
NEURAL = ["neural-audio"]
TRIALS, EPOCHS = 4, 3
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
RAYLET_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def _time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def launch_decisions(monitor: str) -> list[tuple[float, int]]:
    """(time, nodes) of each autoscaler decision to launch nodes."""
    found = []
    for line in monitor.splitlines():
        match = STAMP.match(line)
        queued = re.search(r"Queue (\d+) new nodes for launch", line)
        if match and queued:
            found.append((_time(match.group(1)), int(queued.group(1))))
    return found


def terminations(monitor: str) -> dict[str, float]:
    ends = {}
    for line in monitor.splitlines():
        match, node = STAMP.match(line), re.search(r"NodeProvider: (f{51}\d{5}): Terminating node", line)
        if match and node:
            ends[node.group(1)] = _time(match.group(1))
    return ends


def raylet_starts(logs: Path) -> dict[str, float]:
    """Node id -> the time its raylet wrote its first log line (the node process is up)."""
    starts = {}
    for path in logs.glob("raylet*.out"):
        text = path.read_text(errors="replace")
        node, first = re.search(r"(f{51}\d{5})", text), RAYLET_STAMP.match(text)
        if node and first:
            starts[node.group(1)] = _time(first.group(1))
    return starts


def unit_spans(workspace: Path) -> list[dict]:
    spans = []
    for path in (workspace / "tune" / "_cache" / "units").iterdir():
        if not path.name.startswith(".tmp-"):
            payload = pickle.loads(path.read_bytes())  # written by this benchmark's own run
            if "timing" in payload:
                spans.append({**payload["timing"], "gpu": bool(payload.get("gpu_ids"))})
    return spans


def slot_seconds(nodes: dict[str, dict], start: float, end: float, step: float = 0.1) -> tuple[float, float]:
    """(slot-seconds offered by the live workers over [start, end], the largest slot count in that span)."""
    total, largest, t = 0.0, 0, start
    while t < end:
        live = sum(n["cpus"] for n in nodes.values() if n["up"] <= t < n["down"])
        total += live * min(step, end - t)
        largest = max(largest, live)
        t += step
    return total, largest


def idle_breakdown(spans: list[dict], nodes: dict[str, dict], step: float = 0.1) -> dict[str, float]:
    """Idle slot-seconds before the last unit started (nothing placeable) and after it (the drain)."""
    first, end = min(s["start"] for s in spans), max(s["end"] for s in spans)
    last_start = max(s["start"] for s in spans)
    before = after = 0.0
    t = first
    while t < end:
        live = sum(n["cpus"] for n in nodes.values() if n["up"] <= t < n["down"])
        running = sum(1 for s in spans if s["start"] <= t < s["end"])
        idle = max(0, live - running) * min(step, end - t)
        if t < last_start:
            before += idle
        else:
            after += idle
        t += step
    return {"before_last_start": before, "drain": after}


def timeline(spans: list[dict], nodes: dict[str, dict], width: float = 5.0) -> list[str]:
    """Rows of a table: per `width` seconds of the search, the live slots and the mean units running (classical and
    neural): where the idle slot-seconds sit in time."""
    first, end = min(s["start"] for s in spans), max(s["end"] for s in spans)
    rows, t = [], first
    while t < end:
        stop = min(t + width, end)
        samples = [t + k * 0.1 for k in range(max(1, int((stop - t) / 0.1)))]
        live = sum(sum(n["cpus"] for n in nodes.values() if n["up"] <= x < n["down"]) for x in samples) / len(samples)
        running = {kind: sum(sum(1 for s in spans if s["gpu"] == kind and s["start"] <= x < s["end"]) for x in samples)
                   / len(samples) for kind in (False, True)}
        started = sum(1 for s in spans if t <= s["start"] < stop)
        rows.append(f"| {t - first:.0f}-{stop - first:.0f} | {live:.1f} | {running[False]:.1f} | {running[True]:.1f} | "
                    f"{started} |")
        t = stop
    return rows


def turnarounds(spans: list[dict]) -> list[float]:
    """Per node, the gap between a unit's end and the next unit's start there (greedy slot pairing)."""
    gaps = []
    for node in {s["node"] for s in spans}:
        ends = sorted(s["end"] for s in spans if s["node"] == node)
        for start in sorted(s["start"] for s in spans if s["node"] == node):
            earlier = [e for e in ends if e <= start]
            if earlier:
                gaps.append(start - earlier[-1])
                ends.remove(earlier[-1])
    return gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "cluster_throughput.md"))
    args = parser.parse_args()

    from fixtures.fake_cluster import GCS_PORT, MLFLOW_PORT, busy_ports, fake_cluster

    from harness.datasets.synthetic import SyntheticConfig, generate

    if busy_ports():
        print(f"cluster_throughput: ports {busy_ports()} are taken; the fake cluster needs 6379, 8265 and 5000",
              file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="cluster-throughput-"))
    corpus = scratch / "synthetic"
    generate(corpus, SyntheticConfig())
    workspace = scratch / "ws"
    load_before = os.getloadavg()
    with fake_cluster(scratch, scratch / "head.log") as cluster:
        methods = [a for m in CLASSICAL + NEURAL for a in ("--method", m)]
        driver_start = time.time()
        run = cluster.run([HARNESS, "run", "--address", f"127.0.0.1:{GCS_PORT}", "--dataset", "synthetic",
                           "--data-dir", f"synthetic={corpus}", *methods, "--trials", str(TRIALS),
                           "--max-epochs", str(EPOCHS), "--workspace", str(workspace),
                           "--tracking-uri", f"http://127.0.0.1:{MLFLOW_PORT}", "--no-report"], timeout=3000)
        driver_end = time.time()
        if run.returncode != 0:
            print((run.stdout + run.stderr)[-5000:], file=sys.stderr)
            return 1
        node_table = cluster.nodes()
        monitor = cluster.monitor_log()
        logs = cluster.session_dir() / "logs"
        starts, ends = raylet_starts(logs), terminations(monitor)
        started, head_up = cluster.started, cluster.head_up
    load_after = os.getloadavg()

    nodes = {}
    for node in node_table:
        cpus = int(node["resources"].get("CPU", 0))
        if cpus and node["id"] in starts:  # a worker (the head has no CPU slot)
            nodes[node["id"]] = {"cpus": cpus, "gpu": bool(node["resources"].get("GPU")), "up": starts[node["id"]],
                                 "down": ends.get(node["id"], float("inf"))}
    spans = unit_spans(workspace)
    first_unit, last_end = min(s["start"] for s in spans), max(s["end"] for s in spans)
    busy = sum(s["end"] - s["start"] for s in spans)
    offered, largest = slot_seconds(nodes, first_unit, last_end)
    fixed = largest * (last_end - first_unit)
    idle = idle_breakdown(spans, nodes)
    gaps = turnarounds(spans)
    decisions = launch_decisions(monitor)

    def mean(neural: bool) -> float:
        durations = [s["end"] - s["start"] for s in spans if s["gpu"] == neural]
        return sum(durations) / len(durations) if durations else float("nan")

    first_node_up = min(n["up"] for n in nodes.values())

    rows = []
    ordered = sorted(nodes.items(), key=lambda item: item[1]["up"])
    queue = [t for t, count in decisions for _ in range(count)]
    for (node_id, node), decided in zip(ordered, queue, strict=False):
        mine = [s["start"] for s in spans if s["node"] == node_id]
        rows.append(f"| {node_id[-5:]} | {'gpu_worker' if node['gpu'] else 'cpu_worker'} | {node['cpus']} | "
                    f"{node['up'] - decided:.1f} | "
                    f"{(min(mine) - decided) if mine else float('nan'):.1f} | {len(mine)} |")
    neural_units = sum(1 for s in spans if s["gpu"])
    lines = [
        "# Search throughput on a launched, autoscaling cluster (fake multi-node provider)", "",
        f"Measured by `benchmarks/cluster_throughput.py` on {platform.node()} ({os.cpu_count()} cores, shared with "
        f"other work: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after), Ray 2.60, token "
        f"authentication on. The cluster: `cluster-local.yaml` (head with no slots; up to 3 `cpu_worker` of 2 CPUs "
        f"and 1 `gpu_worker` of 2 CPUs + 1 logical GPU, all raylets on this machine), started from zero workers. "
        f"The run: `harness run` from the head, {', '.join(CLASSICAL + NEURAL)} on the built-in corpus, "
        f"{TRIALS} configurations x 4 folds each ({len(spans)} units, {neural_units} neural at 0.25 GPU), "
        f"neural units capped at {EPOCHS} epochs; driver wall time {driver_end - driver_start:.0f} s.", "",
        "## Time to the first unit", "",
        "| step | seconds after the head's commands started |", "|---|---|",
        f"| `ray start --head` returned (MLflow server and head up) | {head_up - started:.1f} |",
        f"| driver started (`harness run`) | {driver_start - started:.1f} |",
        f"| autoscaler's first launch decision | {decisions[0][0] - started:.1f} |" if decisions else "| - | - |",
        f"| first worker raylet up | {first_node_up - started:.1f} |",
        f"| first unit running (after feature extraction on the first workers) | {first_unit - started:.1f} |",
        "", "## Scale-up latency per launched worker", "",
        "Decision: the autoscaler's `Queue N new nodes for launch`; node up: its raylet's first log line; first "
        "unit: the first unit that started on it (units start only after extraction, so the first workers' "
        "figure includes extraction).", "",
        "| node | type | CPUs | decision -> node up, s | decision -> its first unit, s | units run there |",
        "|---|---|---|---|---|---|", *rows, "",
        "## Slot utilisation over the search", "",
        "| measure | value |", "|---|---|",
        f"| search span (first unit start -> last unit end) | {last_end - first_unit:.1f} s |",
        f"| busy unit-seconds | {busy:.1f} |",
        f"| slot-seconds offered by the live workers | {offered:.1f} |",
        f"| **utilisation, live slots** (target >= 85 %) | **{100 * busy / offered:.1f} %** |",
        f"| utilisation over the largest slot count ({largest}) for the whole span, as benchmarks/search.md | "
        f"{100 * busy / fixed:.1f} % |",
        f"| idle slot-seconds before the last unit started | {idle['before_last_start']:.1f} |",
        f"| idle slot-seconds in the drain (after the last unit started) | {idle['drain']:.1f} |",
        f"| turnaround between units on a node: median, total | "
        f"{sorted(gaps)[len(gaps) // 2] if gaps else float('nan'):.2f} s, {sum(gaps):.1f} s |",
        f"| mean unit duration: classical, neural | {mean(False):.1f} s, {mean(True):.1f} s |",
        "", "## Timeline of the search", "",
        "| seconds into the search | live slots | classical units running | neural units running | units started |",
        "|---|---|---|---|---|", *timeline(spans, nodes), "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
