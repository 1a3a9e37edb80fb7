"""What the harness refuses, and that each refusal is one line before any work (issue 20; docs/refusals.md)."""

from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.names import MAX_YAML_BYTES, BadName, check_name, short

RUN = ["run", "--dataset", "synthetic", "--method", "audio-svm", "--no-report"]
# Python's default filters hide DeprecationWarnings outside __main__; pytest shows them, and SQLAlchemy's one from the
# first MLflow store a process opens would add harness.runtime's pointer line to whichever refusal opens it first.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _refused(capsys, argv: list[str]) -> str:
    """Run `harness ARGV`; it must stop with exit status 2 and exactly one line on stderr, which is returned."""
    capsys.readouterr()  # what the test's own set-up printed
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("harness "), err
    return err


YAML_BOMB = "\n".join([
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
    *[f"{n}: &{n} [{','.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)],
    "trials: *i",
])


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys) -> None:
    """433 bytes of anchors expand to 10^9 elements: once 106 s and 5.2 GB, then MemoryError."""
    config = tmp_path / "bomb.yaml"
    config.write_text(YAML_BOMB)
    started = time.perf_counter()
    err = _refused(capsys, [*RUN, "--config", str(config)])
    assert time.perf_counter() - started < 5 and "aliases" in err and "line 2" in err


def test_large_and_non_utf8_settings_files_are_refused(tmp_path, capsys) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_YAML_BYTES + "\ntrials: 2\n")
    assert "the limit is" in _refused(capsys, [*RUN, "--config", str(big)])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"experiment: \"caf\xe9\"\n")
    assert "not UTF-8" in _refused(capsys, [*RUN, "--config", str(latin)])


@pytest.mark.parametrize(("flags", "says"), [
    (["--trials", "10000000"], "trials must be <= 1000"),
    (["--time-budget", "nan"], "finite"),
    (["--time-budget", "inf"], "finite"),
    (["--seed", "-1"], "seed must be in"),
    (["--experiment", ""], "experiment ''"),
    (["--experiment", "../up"], "experiment '../up'"),
    (["--target", "synthetic=x' onerror='alert(1)"], "targets.synthetic"),
    (["--protocol", "synthetic=../../p"], "protocols.synthetic"),
])
def test_unbounded_or_hostile_flags_are_refused(capsys, flags, says) -> None:
    assert says in _refused(capsys, [*RUN, *flags])


def test_error_messages_quote_a_bounded_part_of_the_input(tmp_path, capsys) -> None:
    config = tmp_path / "long.yaml"
    config.write_text("trials: [" + ", ".join(["1"] * 100_000) + "]\n")
    assert len(_refused(capsys, [*RUN, "--config", str(config)])) < 400
    assert len(short("x" * 10**6)) < 80 and len(short(list(range(10**6)))) < 80


def test_the_name_rule() -> None:
    for good in ("emodb", "high-intensity", "a1"):
        assert check_name("target", good) == good
    for bad in ("", "-a", "A", "a/b", "..", "a b", "x' onerror='alert(1)", "<script>", "a" * 65, None, 3):
        with pytest.raises(BadName):
            check_name("target", bad)


REPO = Path(__file__).resolve().parents[1]


def _parse_changed_card(tmp_path, change) -> None:
    """Parse crema-d's card with `change(data)` applied, written under tmp_path (file name = card name)."""
    import yaml

    from harness.datasets.cards import parse_card

    data = yaml.safe_load((REPO / "datasets" / "crema-d.yaml").read_text())
    change(data)
    path = tmp_path / "crema-d.yaml"
    path.write_text(yaml.safe_dump(data))
    parse_card(path)


@pytest.mark.parametrize("hostile", ["x' onerror='alert(document.domain)", "../../../../pwn-target", "A"])
@pytest.mark.parametrize("where", ["targets", "protocols"])
def test_card_target_and_protocol_names_follow_the_name_rule(tmp_path, where, hostile) -> None:
    from harness.datasets.readers import CardError

    def change(data: dict) -> None:
        named = data.setdefault(where, {})
        named[hostile] = copy.deepcopy(next(iter(named.values())) if named else data["protocol"])

    with pytest.raises(CardError, match=f"card.{where}"):
        _parse_changed_card(tmp_path, change)


def test_a_card_alias_bomb_is_refused_at_once(tmp_path) -> None:
    from harness.datasets.cards import parse_card
    from harness.datasets.readers import CardError

    card = tmp_path / "bomb.yaml"
    card.write_text(YAML_BOMB.replace("trials:", "classes:"))
    started = time.perf_counter()
    with pytest.raises(CardError, match="aliases"):
        parse_card(card)
    assert time.perf_counter() - started < 5


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory):
    from harness.datasets.synthetic import SyntheticConfig, generate, scan

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=2, clips_per_emotion=1))  # 8 clips
    return scan(root)


@pytest.mark.parametrize("name", ["../../../../escaped", "", "a/b", "Caps"])
def test_an_import_name_that_is_not_a_name_is_refused_before_anything_is_written(small_manifest, tmp_path,
                                                                                  name) -> None:
    import numpy as np

    from harness.features.imports import import_features
    from harness.features.store import FeatureStore

    np.savez(tmp_path / "ok.npz", clip_id=np.array(small_manifest.ids), pooled=np.zeros((8, 2)))
    store_root = tmp_path / "store"
    with pytest.raises(BadName, match="--name"):
        import_features(small_manifest, name, tmp_path / "ok.npz", FeatureStore(str(store_root)))
    assert not store_root.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz"]


@pytest.mark.parametrize(("arrays", "says"), [
    ({"pooled": "zeros-d0"}, "dimension 0"),
    ({"pooled": "strings"}, "numeric"),
])
def test_imported_arrays_must_be_numeric_with_at_least_one_dimension(small_manifest, tmp_path, arrays,
                                                                     says) -> None:
    import numpy as np

    from harness.features.imports import ImportFormatError, import_features
    from harness.features.store import FeatureStore

    values = {"zeros-d0": np.zeros((8, 0), np.float32), "strings": np.full((8, 3), "1.0")}
    np.savez(tmp_path / "f.npz", clip_id=np.array(small_manifest.ids), pooled=values[arrays["pooled"]])
    with pytest.raises(ImportFormatError, match=says):
        import_features(small_manifest, "mine", tmp_path / "f.npz", FeatureStore(str(tmp_path / "store")))


def test_a_failed_store_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    """A full disk mid-write once left `shards/.tmp-*` behind."""
    from harness.features.store import FeatureStore

    store = FeatureStore(str(tmp_path / "store"))

    class FullDisk:
        """The store's file system, except that every write fails after 10 bytes."""

        def __init__(self, fs) -> None:
            self.fs = fs

        def __getattr__(self, name: str):
            return getattr(self.fs, name)

        @contextlib.contextmanager
        def open_output_stream(self, path: str):
            with self.fs.open_output_stream(path) as stream:
                stream.write(b"0123456789")
                raise OSError(28, "No space left on device")
                yield stream

    monkeypatch.setattr(store, "fs", FullDisk(store.fs))
    with pytest.raises(OSError, match="No space"):
        store.write_blob("faces", "clip-1", b"x" * 100)
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


def _where(tmp_path) -> list[str]:
    return ["--workspace", str(tmp_path / "ws"), "--tracking-uri", f"sqlite:///{tmp_path}/mlruns.db"]


def test_an_unwritable_workspace_is_one_line_before_ray(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    err = _refused(capsys, [*RUN, "--workspace", str(tmp_path / "file" / "ws"),
                            "--tracking-uri", f"sqlite:///{tmp_path}/mlruns.db"])
    assert "is not writable" in err and "--workspace" in err


def test_a_corrupt_tracking_store_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "mlruns.db").write_bytes(b"this is not a database" * 100)
    err = _refused(capsys, [*RUN, *_where(tmp_path)])
    assert "tracking store" in err and "--tracking-uri" in err


def test_an_unreachable_store_is_one_line_within_the_timeout(tmp_path, capsys, monkeypatch) -> None:
    from harness.cli import preflight

    monkeypatch.setattr(preflight, "STORAGE_TIMEOUT_S", 3.0)
    started = time.perf_counter()
    err = _refused(capsys, [*RUN, *_where(tmp_path), "--feature-store", "gs://no-such-bucket-harness/x"])
    assert time.perf_counter() - started < 30 and "feature_store gs://" in err and "--feature-store" in err


def test_a_deleted_experiment_is_one_line_with_the_fix(tmp_path, capsys) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns.db")
    client = mlflow.MlflowClient()
    client.delete_experiment(client.create_experiment("gone"))
    err = _refused(capsys, [*RUN, *_where(tmp_path), "--experiment", "gone"])
    assert "was deleted" in err and "mlflow experiments restore" in err


def test_one_driver_per_experiment_and_a_stale_lease_does_not_block(tmp_path, capsys) -> None:
    import json
    import os
    import socket
    import subprocess
    import sys

    import mlflow

    from harness import track
    from harness.cli.preflight import preflight
    from harness.config import Settings

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    experiment_id = track.use_experiment(uri, "shared")
    other = {"pid": os.getppid(), "host": socket.gethostname(), "since": time.time(), "command": "harness run X",
             "token": "t"}
    mlflow.MlflowClient().set_experiment_tag(experiment_id, track.LEASE_TAG, json.dumps(other))
    err = _refused(capsys, [*RUN, *_where(tmp_path), "--experiment", "shared"])
    assert f"pid {os.getppid()}" in err and "harness run X" in err and "--experiment NAME" in err

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {**other, "pid": int(dead.stdout)}  # a SIGKILLed driver's lease: its process is gone
    mlflow.MlflowClient().set_experiment_tag(experiment_id, track.LEASE_TAG, json.dumps(stale))
    settings = Settings(workspace=tmp_path / "ws", tracking_uri=uri, experiment="shared")
    with preflight(settings):
        held = json.loads(mlflow.MlflowClient().get_experiment(experiment_id).tags[track.LEASE_TAG])
        assert held["pid"] == os.getpid()
        with pytest.raises(track.LeaseHeld):  # what a second driver on this host would get
            _second_driver(experiment_id)
    assert mlflow.MlflowClient().get_experiment(experiment_id).tags[track.LEASE_TAG] == ""  # given back


def _second_driver(experiment_id: str) -> None:
    """acquire_lease as another live process on this host would call it (pid: our parent's)."""
    import os

    from harness import track

    real = os.getpid
    try:
        os.getpid = os.getppid  # type: ignore[assignment]
        track.acquire_lease(experiment_id, "shared", "second")
    finally:
        os.getpid = real  # type: ignore[assignment]


@pytest.mark.parametrize(("option", "says"), [
    ("logmel.n_mels=0", "n_mels must be an integer >= 1, got 0"),
    ("logmel.n_fft=-512", "n_fft must be an integer >= 1, got -512"),
    ("logmel.hop_ms=0", "hop_ms must be a number > 0, got 0"),
    ("frame-grid.fps=NaN", "fps must be a finite number"),
    ("frame-grid.max_frames=0", "max_frames must be an integer >= 1, got 0"),
])
def test_non_positive_extractor_sizes_are_refused_before_any_extraction(capsys, tmp_path, option, says) -> None:
    assert says in _refused(capsys, [*RUN, *_where(tmp_path), "--extractor-config", option])


def test_a_dead_tracking_server_is_one_line_in_seconds(tmp_path, capsys, monkeypatch) -> None:
    """A dead server once gave 247 s of silence, then a traceback."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    started = time.perf_counter()
    err = _refused(capsys, [*RUN, "--workspace", str(tmp_path / "ws"), "--tracking-uri", "http://127.0.0.1:9"])
    assert time.perf_counter() - started < 40 and "tracking store http://127.0.0.1:9" in err


# ---- harness e2e and harness robustness take the same preflight and lease as harness run ------------------------
WRITERS = {"e2e": ["e2e", "--dataset", "synthetic"], "robustness": ["robustness", "--missing"]}


def _no_ray(monkeypatch) -> None:
    """Starting Ray fails the test: a refusal must come before it."""
    from harness import runtime

    def refuse(*args, **kwargs):
        raise AssertionError("Ray started before the refusal")

    monkeypatch.setattr(runtime, "init_ray", refuse)


def _lease(uri: str, experiment: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient().get_experiment_by_name(experiment).tags.get("harness.driver", "")


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_held_lease_refuses_e2e_and_robustness_in_one_line_before_ray(tmp_path, capsys, monkeypatch,
                                                                        command) -> None:
    """Both write into the experiment `harness run` drives; a second driver used to have its RUNNING parents
    marked KILLED by the other's start. Held by a live process (our parent), the lease refuses them."""
    import json
    import os
    import socket

    import mlflow

    from harness import track

    _no_ray(monkeypatch)
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    experiment_id = track.use_experiment(uri, "shared")
    other = json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": time.time(),
                        "command": "harness run X", "token": "t"})
    mlflow.MlflowClient().set_experiment_tag(experiment_id, track.LEASE_TAG, other)
    err = _refused(capsys, [*WRITERS[command], *_where(tmp_path), "--experiment", "shared"])
    assert err.startswith(f"harness {command}: error: experiment 'shared' is in use by another harness command")
    assert f"pid {os.getppid()}" in err and "harness run X" in err and "--experiment NAME" in err
    assert _lease(uri, "shared") == other  # the holder's lease is left as it was


@pytest.mark.parametrize("command", sorted(WRITERS))
@pytest.mark.parametrize(("ending", "status"), [("returns", 0), ("refuses", 2), ("is terminated", 143)])
def test_e2e_and_robustness_hold_the_lease_while_they_run_and_give_it_back_on_every_exit(
        tmp_path, capsys, monkeypatch, command, ending, status) -> None:
    """The engine is replaced by one that checks the lease is this process's, then returns, raises the
    command's one-line refusal, or is stopped by SIGTERM (`Terminated`, as `harness.interrupt` raises it)."""
    import json
    import os

    from harness.corpus import CorpusNotFound
    from harness.e2e import commands as e2e_engine
    from harness.interrupt import Terminated
    from harness.robustness import run as robustness_engine

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    held: list[dict] = []

    def engine(settings, options):
        held.append(json.loads(_lease(uri, settings.experiment)))
        if ending == "refuses":
            raise (e2e_engine.E2EError if command == "e2e" else CorpusNotFound)("no such corpus; give --data-dir")
        if ending == "is terminated":
            raise Terminated()
        return e2e_engine.E2EReport() if command == "e2e" else robustness_engine.RobustnessReport()

    monkeypatch.setattr(e2e_engine if command == "e2e" else robustness_engine, "run", engine)
    assert main([*WRITERS[command], *_where(tmp_path), "--experiment", "mine"]) == status
    assert len(held) == 1 and held[0]["pid"] == os.getpid() and held[0]["command"].startswith("harness ")
    assert _lease(uri, "mine") == ""  # given back


def test_a_preflight_failure_refuses_e2e_and_robustness_before_ray(tmp_path, capsys, monkeypatch) -> None:
    """The same checks as `harness run`: here a deleted experiment and an unwritable workspace."""
    import mlflow

    _no_ray(monkeypatch)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns.db")
    client = mlflow.MlflowClient()
    client.delete_experiment(client.create_experiment("gone"))
    (tmp_path / "file").write_text("not a folder")
    for argv in WRITERS.values():
        assert "was deleted" in _refused(capsys, [*argv, *_where(tmp_path), "--experiment", "gone"])
        err = _refused(capsys, [*argv, "--workspace", str(tmp_path / "file" / "ws"),
                                "--tracking-uri", f"sqlite:///{tmp_path}/mlruns.db"])
        assert "is not writable" in err and "--workspace" in err


@pytest.mark.parametrize("stored", ["accuracy", None])
def test_an_e2e_checkpoint_it_cannot_resume_is_one_line_naming_it_and_the_fix(
        tmp_path, capsys, monkeypatch, small_synthetic, stored) -> None:
    """A checkpoint whose best epoch was chosen by another measure (EarlyStoppingStateError) or a folder that is
    no checkpoint (FileNotFoundError) used to end in a traceback after Ray started and the MLflow run was created;
    now one line naming the folder and the fix, before clips are decoded, Ray starts or a run is logged."""
    import mlflow
    import torch

    from harness.e2e import clips
    from harness.e2e.train import STATE_FILE
    from methods.neural.early_stopping import EarlyStopping

    _no_ray(monkeypatch)
    monkeypatch.setattr(clips, "build_clip_cache", lambda *a, **k: pytest.fail("clips decoded before the refusal"))
    folder = tmp_path / "checkpoint_000001"
    folder.mkdir()
    if stored:
        torch.save({"epoch": 0, "early_stopping": EarlyStopping(3, stored).state_dict()}, folder / STATE_FILE)
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    err = _refused(capsys, ["e2e", "--dataset", "synthetic", "--data-dir", f"synthetic={small_synthetic}",
                            *_where(tmp_path), "--resume", str(folder)])
    assert err.startswith(f"harness e2e: error: --resume {folder}: ")
    if stored:
        assert "by validation accuracy, this run selects by uar" in err
        assert "--preset paper selects by accuracy, the default by uar" in err and "--run-name" in err
    else:
        assert "not an end-to-end checkpoint" in err and "--resume alone" in err
    mlflow.set_tracking_uri(uri)
    assert mlflow.search_runs(experiment_names=["mer-benchmark"], output_format="list") == []
    assert _lease(uri, "mer-benchmark") == ""
