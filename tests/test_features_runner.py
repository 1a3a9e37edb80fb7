"""Extraction on Ray: cache miss then hit, resume after an interrupted run, the failures table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from harness.datasets.synthetic import EMOTIONS, SyntheticConfig, generate, scan
from harness.features.base import ExtractorRef
from harness.features.runner import extract, load_features, longest_first, plan_resources
from harness.features.store import FeatureStore
from harness.manifest import Manifest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=2, clips_per_emotion=2))  # 16 clips
    return root


@pytest.fixture(scope="module")
def broken(corpus: Path, tmp_path_factory) -> Manifest:
    """The corpus plus a corrupt MP4, a silent WAV and an empty WAV."""
    root = tmp_path_factory.mktemp("broken")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    sf.write(str(root / "silent.wav"), np.zeros(16_000, np.float32), 16_000)
    sf.write(str(root / "empty.wav"), np.zeros(0, np.float32), 16_000)
    table = scan(corpus).table.copy()
    table["audio_path"] = [str(corpus / p) for p in table["audio_path"]]
    table["video_path"] = [str(corpus / p) for p in table["video_path"]]
    extra = pd.DataFrame([
        {"clip_id": "corrupt", "speaker": "x", "label": "happy", "video_path": "corrupt.mp4", "text": "hi"},
        {"clip_id": "silent", "speaker": "x", "label": "sad", "audio_path": "silent.wav", "text": "hi"},
        {"clip_id": "empty", "speaker": "x", "label": "sad", "audio_path": "empty.wav", "text": "hi"},
    ])
    return Manifest("broken", root, list(EMOTIONS), pd.concat([table, extra], ignore_index=True))


def test_plan_resources_decodes_in_cpu_actors_and_in_tasks_for_gpu_actors() -> None:
    cpu_only = plan_resources(2.0, 0.0, None, None)
    assert (cpu_only.actors, cpu_only.cpus_per_actor, cpu_only.gpus_per_actor) == (2, 1.0, 0.0)
    assert not cpu_only.decode_in_tasks  # the actors hold every core: they decode their own blocks
    gpu = plan_resources(16.0, 2.0, None, None)
    assert (gpu.actors, gpu.gpus_per_actor, gpu.decode_in_tasks) == (2, 1.0, True)
    forced = plan_resources(2.0, 0.0, None, None, decode="tasks")
    assert forced.decode_in_tasks and forced.actors * forced.cpus_per_actor <= 2.0 - 0.25  # room for decoders
    assert plan_resources(2.0, 0.0, 4, None).cpus_per_actor == 0.5  # more actors than CPUs share them


def test_cache_miss_then_hit_and_local_equals_ray(ray_session, corpus: Path, tmp_path: Path) -> None:
    manifest = scan(corpus)
    store = FeatureStore(str(tmp_path))
    first = extract(manifest, "egemaps", store, batch_size=4, verbose=False)
    assert not first.cached and first.n_extracted_now == 16 and first.n_clips == 16 and first.n_failed == 0
    assert len(list(Path(first.location, "shards").glob("shard-*.npz"))) == 4  # one shard per block
    second = extract(manifest, "egemaps", store, batch_size=4, verbose=False)
    assert second.cached and second.n_extracted_now == 0 and "cache hit" in second.summary()
    local = extract(manifest, "egemaps", FeatureStore(str(tmp_path / "local")), executor="local", verbose=False)
    ray_features, key = load_features(manifest, "egemaps", store)
    local_features, local_key = load_features(manifest, "egemaps", FeatureStore(str(tmp_path / "local")))
    assert key == local_key == first.key and local.n_clips == 16
    order = local_features.index()
    np.testing.assert_allclose(ray_features.pooled,
                               local_features.pooled[[order[i] for i in ray_features.ids]], rtol=1e-5)
    changed = extract(manifest, "egemaps", store, config={"sample_rate": 8000}, executor="local", verbose=False)
    assert not changed.cached and changed.key != first.key  # a config change is a cache miss
    # The GPU layout (CPU decode tasks feeding the actors) stores the same features as actors that decode.
    tasks_store = FeatureStore(str(tmp_path / "tasks"))
    tasks = extract(manifest, "egemaps", tasks_store, batch_size=4, decode="tasks", verbose=False)
    assert tasks.n_clips == 16 and tasks.key == first.key
    tasks_features, _ = load_features(manifest, "egemaps", tasks_store)
    np.testing.assert_allclose(tasks_features.pooled,
                               local_features.pooled[[order[i] for i in tasks_features.ids]], rtol=1e-5)
    with pytest.raises(ValueError, match="decode must be one of"):
        extract(manifest, "egemaps", store, decode="gpu", verbose=False)


def test_rows_are_scheduled_longest_clip_first(tmp_path: Path) -> None:
    for name, seconds in (("short", 1), ("long", 3), ("mid", 2)):
        sf.write(str(tmp_path / f"{name}.wav"), np.ones(16_000 * seconds, np.float32), 16_000)
    rows = pd.DataFrame({"clip_id": ["short", "long", "mid", "seg-a", "seg-b"],
                         "audio_path": [str(tmp_path / f"{n}.wav") for n in ("short", "long", "mid")] + ["", ""],
                         "video_path": ["", "", "", "x.avi", "x.avi"],
                         "video_start": [None, None, None, 0.0, 5.0], "video_end": [None, None, None, 1.0, 9.0]})
    assert longest_first(rows.iloc[:3])["clip_id"].tolist() == ["long", "mid", "short"]
    assert longest_first(rows.iloc[3:])["clip_id"].tolist() == ["seg-b", "seg-a"]  # segments by their length


def test_resume_extracts_only_missing_clips(ray_session, corpus: Path, tmp_path: Path) -> None:
    manifest = scan(corpus)
    store = FeatureStore(str(tmp_path))
    half = Manifest(manifest.dataset, manifest.root, manifest.classes, manifest.table.iloc[:6])
    done = extract(half, "logmel", store, executor="local", batch_size=3, verbose=False)
    # pretend the interrupted run was the full manifest: move its shards under the full manifest's key
    full_key = ExtractorRef("logmel").cache_key(manifest.fingerprint())
    target = Path(store.entry(manifest.dataset, "logmel", full_key)) / "shards"
    target.mkdir(parents=True)
    for shard in Path(done.location, "shards").iterdir():
        shard.rename(target / shard.name)
    (target / ".tmp-leftover").write_bytes(b"half a shard")  # what a killed writer leaves behind
    resumed = extract(manifest, "logmel", store, batch_size=4, verbose=False)
    assert resumed.n_extracted_now == 10 and resumed.n_clips == 16
    stored, _ = load_features(manifest, "logmel", store)
    assert sorted(stored.ids) == sorted(manifest.ids) and len(stored.ids) == len(set(stored.ids))


def test_failures_table(ray_session, broken: Manifest, tmp_path: Path, capsys) -> None:
    store = FeatureStore(str(tmp_path))
    result = extract(broken, "egemaps", store, batch_size=8)
    failures = result.failures.set_index("clip_id")
    assert result.n_clips == 16 and result.n_failed == 3
    assert set(failures.index) == {"corrupt", "silent", "empty"}
    assert (failures["stage"] == "decode").all()
    assert "corrupt.mp4" in failures.loc["corrupt", "error"]
    assert "silent" in failures.loc["silent", "error"] and "empty" in failures.loc["empty", "error"]
    assert "3 clip(s) failed" in capsys.readouterr().out
    frames = extract(broken, "frame-grid", store, batch_size=8, verbose=False)
    assert set(frames.failures["clip_id"]) == {"corrupt", "silent", "empty"}  # the WAV-only clips have no video
    assert "no video file" in frames.failures.set_index("clip_id").loc["silent", "error"]
    again = extract(broken, "egemaps", store, batch_size=8, verbose=False)
    assert again.cached and again.n_failed == 3  # failures are stored, not retried on every run


KILL_SCRIPT = """
import sys
from pathlib import Path
import ray
from harness.datasets.synthetic import scan
from harness.features.runner import extract
from harness.features.store import FeatureStore

ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
extract(scan(Path(sys.argv[1])), "spectrogram-snippets", FeatureStore(sys.argv[2]), {"weights": "random"},
        batch_size=1, verbose=False)
"""


@pytest.mark.slow
def test_killed_run_resumes_and_stores_every_clip_once(corpus: Path, tmp_path: Path) -> None:
    """A run interrupted (SIGINT) midway leaves complete shards only; the rerun stores each clip exactly once."""
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    repo = str(Path(__file__).resolve().parents[1])
    command = [sys.executable, str(script), str(corpus), str(tmp_path / "store")]
    env = {**os.environ, "PYTHONPATH": repo}
    process = subprocess.Popen(command, cwd=repo, env=env)
    shards = tmp_path / "store" / "synthetic" / "spectrogram-snippets"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(shards.glob("*/shards/shard-*.npz"))) < 3:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    partial = len(list(shards.glob("*/shards/shard-*.npz")))
    assert 3 <= partial < 16, "the run should have been interrupted midway"
    subprocess.run(command, cwd=repo, env=env, check=True, timeout=300)
    entry = next(shards.glob("*"))
    stored = FeatureStore(str(tmp_path / "store")).load(str(entry))
    assert sorted(stored.ids) == sorted(scan(corpus).ids)
    n_rows = sum(len(np.load(p)["ids"]) for p in entry.glob("shards/shard-*.npz"))
    assert n_rows == 16  # exactly once: no clip was stored twice


def _encode_actor_pids() -> list[int]:
    """Processes of the Ray Data encode actors (Ray titles them after the actor class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"EncodeBlock" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_killed_worker_process_is_replaced_and_every_clip_is_stored_once(ray_session, corpus: Path,
                                                                          tmp_path: Path) -> None:
    """SIGKILL an encode actor mid-run: Ray restarts it, its block is retried, no clip is lost or doubled."""
    import threading

    store = FeatureStore(str(tmp_path))
    shards = tmp_path / "synthetic" / "spectrogram-snippets"
    killed: list[tuple[int, int]] = []

    def kill_one_actor_midway() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            done = len(list(shards.glob("*/shards/shard-*.npz")))
            if done >= 3 and (pids := _encode_actor_pids()):
                os.kill(pids[0], signal.SIGKILL)
                killed.append((pids[0], done))
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_one_actor_midway, daemon=True)
    watcher.start()
    result = extract(scan(corpus), "spectrogram-snippets", store, {"weights": "random"}, batch_size=1,
                     verbose=False)
    watcher.join()
    assert killed and killed[0][1] < 16, "an actor should have been killed while blocks were left"
    assert result.n_clips == 16 and result.n_failed == 0
    entry = next(shards.glob("*"))
    n_rows = sum(len(np.load(p)["ids"]) for p in entry.glob("shards/shard-*.npz"))
    assert n_rows == 16 and sorted(result.stored.ids) == sorted(scan(corpus).ids)
