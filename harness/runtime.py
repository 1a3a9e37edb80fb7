"""The run-time environment of a command: the one place that starts Ray, quiets libraries and prints progress.

Every command that needs Ray (run, extract, e2e) calls `init_ray`, so a cluster address, CPU count and quiet
logging are handled once. `check_shared_storage` stops a multi-host run before any work when a storage setting
points at one machine's disk, which the other hosts cannot read.
"""

from __future__ import annotations

import logging
import os
import socket

from harness.config import Settings


class StorageError(RuntimeError):
    """A storage setting other cluster hosts cannot reach; the message names the setting and the fix."""


def log(message: str) -> None:
    print(message, flush=True)


def quiet_libraries() -> None:
    """Our own one-line progress replaces Tune's tables and MLflow's progress bars; Ctrl-C reaches us directly
    (Tune's own SIGINT handler would turn it into a half-finished result grid)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("ray.data", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)


def init_ray(settings: Settings) -> None:
    """Attach to `settings.ray_address`, or start a local instance with `settings.num_cpus` CPUs."""
    import ray

    quiet_libraries()
    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=settings.num_cpus, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False


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
