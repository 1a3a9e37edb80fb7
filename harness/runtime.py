"""The run-time environment of a command: the one place that starts Ray, quiets libraries and prints progress.

Every command that needs Ray (run, extract, e2e) calls `init_ray`, so a cluster address, CPU count and quiet
logging are handled once. `check_shared_storage` stops a multi-host run before any work when a storage setting
points at one machine's disk, which the other hosts cannot read.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from harness.config import Settings


class StorageError(RuntimeError):
    """A storage setting other cluster hosts cannot reach; the message names the setting and the fix."""


def log(message: str) -> None:
    print(message, flush=True)


def route_warnings(log_file: Path) -> None:
    """Python warnings that reach the driver go to `log_file`, and the console gets one line pointing there.

    Warnings the harness understands are handled where they arise (a bounded solver, an empty part); what is
    left is a library's business a researcher may want to read later, not in the middle of progress output.
    """
    import sys
    import warnings

    told = False

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        nonlocal told
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8") as out:
            out.write(warnings.formatwarning(message, category, filename, lineno, line))
        if not told:
            told = True
            print(f"[warnings] library warnings are written to {log_file}", file=sys.stderr, flush=True)

    warnings.showwarning = show


def quiet_libraries() -> None:
    """Our own one-line progress replaces Tune's tables and MLflow's progress bars; Ctrl-C reaches us directly
    (Tune's own SIGINT handler would turn it into a half-finished result grid)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("ray.data", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)


AUTH_DOC = "docs/cluster.md, section Authentication"


def token_source() -> str | None:
    """Where Ray's driver will read the cluster's token from, in Ray's own order (RAY_AUTH_TOKEN, the file named
    by RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token), or None when there is none. Never the token itself."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    try:
        return str(path) if path.read_text().strip() else None
    except OSError:
        return None


def require_cluster_token(address: str) -> None:
    """A driver attaching to a cluster uses token authentication (Ray's RAY_AUTH_MODE=token), or stops here with
    one line naming the fix: a cluster without it runs code for anyone who reaches its ports, and a driver without
    the token would otherwise fail inside Ray with a long InvalidAuthToken traceback."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode not in ("", "token"):
        raise SystemExit(f"harness: RAY_AUTH_MODE={mode} is refused for the cluster at {address}: its nodes and this "
                         f"driver run with RAY_AUTH_MODE=token; unset RAY_AUTH_MODE ({AUTH_DOC})")
    if token_source() is None:
        named = os.environ.get("RAY_AUTH_TOKEN_PATH")
        where = f"RAY_AUTH_TOKEN_PATH={named} names no readable, non-empty file" if named else "no token was found"
        raise SystemExit(f"harness: the Ray cluster at {address} needs its authentication token and {where}: set "
                         f"RAY_AUTH_TOKEN_PATH to the token file the cluster was started with ({AUTH_DOC})")
    if mode != "token":
        os.environ["RAY_AUTH_MODE"] = "token"  # inherited by our subprocesses
        # Ray's C++ side read RAY_AUTH_MODE when Ray was imported; re-read it, as Ray's own token setup does.
        from ray._raylet import Config

        Config.initialize("")


def _is_auth_failure(error: BaseException | None) -> bool:
    """Ray reports a refused token as a ConnectionError/RuntimeError whose cause is its AuthenticationError."""
    from ray.exceptions import AuthenticationError

    while error is not None:
        if isinstance(error, AuthenticationError) or "InvalidAuthToken" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def init_ray(settings: Settings) -> None:
    """Attach to `settings.ray_address` with the cluster's token, or start a local instance with
    `settings.num_cpus` CPUs (Ray gives a new local instance token authentication by itself)."""
    import ray

    quiet_libraries()
    route_warnings(Path(settings.workspace) / "logs" / "warnings.log")
    if ray.is_initialized():
        return
    if settings.ray_address and settings.ray_address != "local":  # RAY_ADDRESS=local: a new local instance
        require_cluster_token(settings.ray_address)
        try:
            ray.init(address=settings.ray_address, log_to_driver=False)
        except (ConnectionError, RuntimeError) as error:
            if not _is_auth_failure(error):
                raise
            raise SystemExit(f"harness: the Ray cluster at {settings.ray_address} refused this driver's token "
                             f"(from {token_source()}): set RAY_AUTH_TOKEN_PATH to the token file the cluster was "
                             f"started with ({AUTH_DOC})") from None
    else:
        ray.init(address="local", num_cpus=settings.num_cpus, include_dashboard=False, log_to_driver=False)
    from harness.interrupt import sigterm_as_interrupt

    sigterm_as_interrupt()  # ray.init replaced the command's handler: SIGTERM stops a run as Ctrl-C does
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False


def cluster_gpu_capacity() -> tuple[float, str]:
    """(GPUs, where that number comes from): the most GPUs the attached cluster can provide, not only those up now.

    An autoscaling cluster may have no GPU node at the moment a search starts (cluster.yaml's gpu_worker has
    min_workers 0): neural units must still ask for a GPU share, so the autoscaler sees their demand and launches a
    GPU node, which they then run on. In order: GPUs of live nodes; Ray's cluster config in the GCS (autoscaler v2
    keeps the node types there); the autoscaling config the head's monitor was started with (`ray up` writes it to
    ~/ray_bootstrap_config.yaml, `ray start --autoscaling-config` names it), read when this driver runs on the head,
    as the `ray exec` path of docs/cluster.md does."""
    import ray

    live = float(ray.cluster_resources().get("GPU", 0))
    if live > 0:
        return live, "live nodes"
    try:
        from ray._private.state import state

        maximum = (state.get_max_resources_from_cluster_config() or {}).get("GPU", 0)
    except Exception:  # a Ray without that call, or a GCS that cannot answer: fall through
        maximum = 0
    if maximum:
        return float(maximum), "the autoscaler's cluster config"
    gpus = node_type_gpus(_monitor_autoscaling_config(ray.get_runtime_context().gcs_address) or {})
    if gpus > 0:
        return gpus, "the autoscaler's node types"
    return 0.0, "no GPU node and no GPU node type"


def node_type_gpus(config: dict) -> float:
    """The most GPUs an autoscaling config's worker types can bring up together (GPU per node x max_workers)."""
    types = config.get("available_node_types") or {}
    return sum(float((t.get("resources") or {}).get("GPU", 0)) * int(t.get("max_workers", 0))
               for t in types.values())


def _monitor_autoscaling_config(gcs_address: str) -> dict | None:
    """The autoscaling config of the cluster at `gcs_address`, from its monitor process on this host (the head)."""
    import yaml

    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:  # a process that ended, or one we may not read
            continue
        if not any(a.endswith("autoscaler/_private/monitor.py") for a in args):
            continue
        flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
        if flags.get("gcs-address", "").rsplit(":", 1)[-1] != gcs_address.rsplit(":", 1)[-1]:
            continue  # another cluster's monitor on this machine
        path = flags.get("autoscaling-config")
        try:
            # a relative path is the monitor's, relative to its working directory
            return yaml.safe_load((cmdline.parent / "cwd" / Path(path).expanduser()).read_text()) if path else None
        except (OSError, yaml.YAMLError):
            return None
    return None


def cluster_hosts() -> set[str]:
    """IP addresses of the hosts with a live Ray node (several raylets on one machine count once)."""
    import ray

    return {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}


def is_node_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def check_shared_storage(settings: Settings) -> None:
    """Multi-host runs need storage every host reaches: stop before any work when a setting is a local path."""
    hosts = cluster_hosts()
    if len(hosts) <= 1:
        return
    for name, flag, uri in (("tune_storage", "--tune-storage", settings.tune_storage_uri()),
                            ("feature_store", "--feature-store", settings.feature_store_uri())):
        if is_node_local(uri) and os.environ.get("HARNESS_SHARED_FILESYSTEM") != "1":
            raise StorageError(
                f"{name} is {uri}, a path on this machine ({socket.gethostname()}), but the cluster spans "
                f"{len(hosts)} hosts that cannot read it. Give {flag} s3://BUCKET/PREFIX (or gs://...), or, if "
                f"that path is a file system mounted on every host, set HARNESS_SHARED_FILESYSTEM=1.")
