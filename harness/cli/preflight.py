"""Checks of the environment before a run starts Ray, each failure one line with the fix (issue 20).

Why here: each of these used to surface after Ray had started, as a 17-190 line traceback, or not at all (an
unreachable `gs://` store hung for minutes, a dead tracking server gave 247 s of silence). Checked, in order:
the workspace is writable, remote storage answers within `STORAGE_TIMEOUT_S`, the tracking store can be read
within `TRACKING_TIMEOUT_S`, the experiment is not deleted, and no other live driver holds it (the lease of
`harness.track`; released when the run ends, by any path but SIGKILL, after which it is stale and does not block).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from harness.cli.common import UsageError
from harness.config import Settings

STORAGE_TIMEOUT_S = 20.0
TRACKING_TIMEOUT_S = 30.0
T = TypeVar("T")


def _within(seconds: float, what: str, fix: str, call: Callable[[], T]) -> T:
    """`call()`, or a UsageError when it raises or takes longer than `seconds`. It runs in a daemon thread, so a
    call that never returns (an unreachable `gs://` endpoint) neither blocks the check nor the process's exit."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name=f"preflight: {what}", daemon=True)
    thread.start()
    thread.join(None if seconds == float("inf") else seconds)
    if thread.is_alive():
        raise UsageError(f"{what} did not answer within {seconds:.0f} s; {fix}")
    error = outcome.get("error")
    if isinstance(error, UsageError):
        raise error
    if error is not None:
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        raise UsageError(f"{what} cannot be used ({reason}); {fix}") from None
    return outcome["value"]


def check_workspace(workspace: Path) -> None:
    """The workspace (manifests, features, unit store) can be created and written."""
    probe = Path(workspace) / f".tmp-probe-{uuid.uuid4().hex}"
    try:
        Path(workspace).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"probe")
    except OSError as error:
        raise UsageError(f"workspace {workspace} is not writable ({error.strerror or error}); free space or fix "
                         "its permissions, or give --workspace DIR (env HARNESS_WORKSPACE)") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def check_storage(name: str, flag: str, uri: str) -> None:
    """A remote store (`s3://`, `gs://`, ...) is reachable and answers in time; local paths are the workspace's."""
    if "://" not in uri or uri.startswith("file://"):
        return

    def probe() -> None:
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(uri)
        filesystem.get_file_info(path)

    _within(STORAGE_TIMEOUT_S, f"{name} {uri}", f"check the network and credentials, or give {flag} with a local "
                                               "path", probe)


def open_experiment(settings: Settings) -> str:
    """The experiment's id, after checking that the tracking store can be read and the experiment is not deleted."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a dead server: seconds, not minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

    from harness import track

    track.load_mlflow()  # before any clock starts: on a loaded machine the import takes seconds

    def find() -> Any:
        return track.find_experiment(settings.tracking_uri, settings.experiment)

    # A server may not answer: bounded. A local store (sqlite, files) answers or raises, but creating a new one runs
    # its schema migrations, which can take longer than any fixed bound on a loaded machine: not bounded.
    remote = settings.tracking_uri.split(":", 1)[0] in ("http", "https", "databricks")
    found = _within(TRACKING_TIMEOUT_S if remote else float("inf"), f"tracking store {settings.tracking_uri}",
                    "start the tracking server, restore or move the store file, or give --tracking-uri URI", find)
    if found is not None and found.lifecycle_stage == "deleted":
        raise UsageError(f"experiment {settings.experiment!r} was deleted (e.g. in the MLflow UI); restore it "
                         f"with `mlflow experiments restore --experiment-id {found.experiment_id}` or give "
                         "--experiment NAME")
    return track.use_experiment(settings.tracking_uri, settings.experiment)


@contextmanager
def preflight(settings: Settings) -> Iterator[str]:
    """Run every check, hold the experiment's lease while the body runs, give it back on every exit path. Taken
    by every command that writes to the experiment: `harness run`, `harness e2e`, `harness robustness`."""
    from harness import track

    check_workspace(settings.workspace)
    check_storage("feature_store", "--feature-store", settings.feature_store_uri())
    check_storage("tune_storage", "--tune-storage", settings.tune_storage_uri())
    experiment_id = open_experiment(settings)
    try:
        lease = track.acquire_lease(experiment_id, settings.experiment, " ".join(["harness", *sys.argv[1:]]))
    except track.LeaseHeld as error:
        raise UsageError(str(error)) from None
    try:
        yield experiment_id
    finally:
        track.release_lease(experiment_id, lease)
