"""The run-time environment of a command: the one place that starts Ray, quiets libraries and prints progress.

Every command that needs Ray (run, extract, e2e) calls `init_ray`, so a cluster address, CPU count and quiet
logging are handled once. `check_shared_storage` stops a multi-host run before any work when a storage setting
points at one machine's disk, which the other hosts cannot read.

The console (`--verbose` off, the default) shows the harness's own lines and one `Progress` per stage. Ray's own
output (its loggers, its C++ lines such as `core_worker.cc:...`, the `(raylet)` messages it relays) goes to
`<workspace>/logs/ray.log` with one pointer line; Python warnings go to `<workspace>/logs/warnings.log` likewise.
Nothing is dropped: a failed unit or clip is reported by the harness itself (search and extraction record each
error), and the log files keep Ray's account of it. `--verbose` shows all of it on the console, workers' output too.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.config import Settings

VERBOSE_ENV = "HARNESS_VERBOSE"  # "1": Ray's own lines on the console (inherited by workers and subprocesses)


class StorageError(RuntimeError):
    """A storage setting other cluster hosts cannot reach; the message names the setting and the fix."""


def set_verbose(verbose: bool) -> None:
    """`--verbose`: show Ray's and the libraries' own lines instead of writing them to the workspace's logs.

    Without it, MLflow's notes on creating a tracking store's tables (before Ray, and so before
    `divert_ray_output`) are not shown either: the store is made as asked, and the note says nothing more.
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


_BARS: list = []  # the terminal progress bars now shown; `log` prints above them instead of through them


def log(message: str) -> None:
    """One line of the harness's own account on stdout (above any progress bar, which stays at the bottom)."""
    if _BARS:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stdout)
        sys.stdout.flush()
    else:
        print(message, flush=True)


class Progress:
    """One stage's progress on stderr: a tqdm bar with rate and ETA on a terminal; in a log file (stderr not a
    terminal) a line at most every LINE_INTERVAL seconds and one at the end, not one per block or trial (MELD's
    text extraction once printed 601 lines).

    `[tag] label: done/total unit (rate unit/s, about Ns left; extra)`: extraction (clips), the search (units),
    each stage the same shape, so a log file can be read (and grepped) one way.
    """

    LINE_INTERVAL = 10.0  # seconds between progress lines in a log file

    def __init__(self, tag: str, label: str, total: int, unit: str, enabled: bool = True, initial: int = 0) -> None:
        """`initial`: done before this run (stored by an earlier one); it counts as done but not in the rate."""
        self.tag, self.label, self.total, self.unit, self.enabled = tag, label, total, unit, enabled
        self.done = self.initial = initial
        self.extra = ""
        self.printed: tuple[int, str] | None = None  # what the last log-file line said
        self.started = self.last_line = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=f"[{tag}] {label}", unit=f" {unit}",
                            file=sys.stderr, dynamic_ncols=True)
            _BARS.append(self.bar)

    def update(self, n: int) -> None:
        """`n` more done."""
        self.set(self.done + n, self.extra)

    def set(self, done: int, extra: str = "") -> None:
        """`done` of the total are done now; `extra` is shown beside (results finished, failures)."""
        step, self.done = done - self.done, done
        changed, self.extra = extra != self.extra, extra
        if self.bar is not None:
            if changed:
                self.bar.set_postfix_str(extra, refresh=False)
            self.bar.update(step)
            return
        if not self.enabled or self.printed == (self.done, self.extra):
            return
        now = time.perf_counter()
        first_at_end = self.done >= self.total and (self.printed is None or self.printed[0] < self.total)
        if now - self.last_line >= self.LINE_INTERVAL or first_at_end:
            self._print(now)

    def _print(self, now: float) -> None:
        self.last_line, self.printed = now, (self.done, self.extra)
        print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        rate = (self.done - self.initial) / max(now - self.started, 1e-9)
        if rate > 0:
            speed = f"{rate:.1f} {self.unit}/s"
        else:  # nothing finished in this run: all done by an earlier one (reused), or still waiting on the first
            speed = "all done before this run" if self.done >= self.total else \
                f"{now - self.started:.0f}s, none finished yet"
        left = f", about {(self.total - self.done) / rate:.0f}s left" if rate > 0 and self.done < self.total else ""
        extra = f"; {self.extra}" if self.extra else ""
        return f"[{self.tag}] {self.label}: {self.done}/{self.total} {self.unit} ({speed}{left}{extra})"

    def close(self) -> None:
        """The end: the bar closes; a log file gets the final state if its last line did not say it."""
        if self.bar is not None:
            self.bar.close()
            _BARS.remove(self.bar)
            self.bar = None
        elif self.enabled and self.printed not in (None, (self.done, self.extra)):
            self._print(time.perf_counter())


def route_warnings(log_file: Path) -> None:
    """Python warnings that reach the driver go to `log_file`, and the console gets one line pointing there.

    Warnings the harness understands are handled where they arise (a bounded solver, an empty part); what is
    left is a library's business a researcher may want to read later, not in the middle of progress output.
    Installed as soon as a command knows its workspace (`harness.cli.common.settings_from_args`), so warnings
    before Ray starts (SQLAlchemy's, from the MLflow store check) are routed too; a second call for the same file
    (`init_ray`) keeps the first, and so its single pointer line.
    """
    import warnings

    if _routed.get("warnings") == (log_file, warnings.showwarning):
        return
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
    _routed["warnings"] = (log_file, show)


_routed: dict[str, tuple[Path, object]] = {}  # the warnings file and the function `route_warnings` installed


def quiet_libraries() -> None:
    """Our own one-line progress replaces Tune's tables (MLflow's transfer bars are turned off where MLflow is
    called, in `harness.track`); Ctrl-C reaches us directly (Tune's own SIGINT handler would turn it into a
    half-finished result grid)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    for name in ("ray.data", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)


# Loggers whose console lines are Ray's (or its tools') account, not the harness's: Tune's "callbacks.on_step_end
# took 1.3 s", Ray Data's "Progress bars disabled", the token and start-up notices, MLflow's store migrations.
RAY_LOGGERS = ("ray", "ray.data", "ray.tune", "ray.train", "ray.air", "mlflow", "alembic")
# Lines in Ray's own formats, as its C++ core (`[2026-12-06 17:44:55,196 E 7697 7697] core_worker.cc:2465: ...`)
# and its Python loggers (`2026-12-06 17:45:41,041\tWARNING util.py:212 -- ...`) write them to the driver's stderr.
# A fatal C++ line (F) is never hidden: the process is about to abort, and that line says why.
RAY_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWE] \d+ \d+\] "
                      r"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\t(DEBUG|INFO|WARNING|ERROR)\s"
                      r"|^\*\*\* SIGTERM received|^\(raylet\)")
_RAY_LOG_TOLD = "[ray] Ray's own messages are written to {path} (--verbose shows them here)"
_diverted: dict[str, object] = {}  # what is diverted already (a second init_ray call changes nothing)


def divert_ray_output(log_file: Path) -> None:
    """Unless `--verbose`: Ray's lines go to `log_file`, the console keeps the harness's own, with one pointer.

    Three ways Ray writes to a driver's console, each diverted where it starts:
    - its Python loggers (`RAY_LOGGERS`): their console handlers are silenced and a file handler takes everything;
    - the `(raylet)` messages its error listener relays (a worker killed, an actor's restart): `ray._private.worker.
      print_to_stdstream` is replaced, in this process, by a writer to `log_file`;
    - its C++ core's lines, written to file descriptor 2 below Python: that descriptor becomes a pipe read by a
      small filter process, which writes every line to `log_file` and passes to the real stderr each line that is
      not in Ray's formats (`RAY_LINE`). Python's own `sys.stderr` (progress bars, tracebacks) keeps the real one,
      so a terminal is still a terminal. Done only when `sys.stderr` is the process's own (not a test's capture).
    """
    if is_verbose():
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = _diverted.get("handler")
    if handler is None:  # the first call: one pointer line, whatever Ray says later (it always says something)
        print(_RAY_LOG_TOLD.format(path=log_file), file=sys.stderr, flush=True)
        handler = _diverted["handler"] = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for existing in logger.handlers:
            if isinstance(existing, logging.StreamHandler) and not isinstance(existing, logging.FileHandler):
                existing.setLevel(logging.CRITICAL + 1)
        top = name in ("ray", "mlflow", "alembic") or not logger.propagate  # records reach it by no parent
        if top and handler not in logger.handlers:
            logger.addHandler(handler)
    if "relay" not in _diverted:
        _diverted["relay"] = _divert_relayed(log_file)
    if "native" not in _diverted and sys.stderr is not None and sys.stderr is sys.__stderr__:
        _diverted["native"] = _divert_native_stderr(log_file)


def _divert_relayed(log_file: Path):
    """The `(raylet)` lines Ray's error listener prints (log_to_driver is off, so nothing else uses this path)."""
    import ray._private.worker as ray_worker

    def relay(data: dict, ignore_prefix: bool) -> None:  # Ray's signature
        with open(log_file, "a", encoding="utf-8") as out:
            for line in data.get("lines", []):
                out.write(f"({data.get('pid', '?')}) {line}\n")

    ray_worker.print_to_stdstream = relay
    return relay


_FILTER = """
import re, sys
pattern, path = re.compile(sys.argv[1]), sys.argv[2]
with open(path, "a", encoding="utf-8", buffering=1) as out, open(0, encoding="utf-8", errors="replace") as lines:
    for line in lines:
        out.write(line)
        if not pattern.match(line):
            sys.stderr.write(line)
            sys.stderr.flush()
"""


def _divert_native_stderr(log_file: Path) -> subprocess.Popen:
    """File descriptor 2 through the filter process (see `divert_ray_output`); sys.stderr keeps the real one."""
    sys.stderr.flush()
    real = os.dup(2)
    filter_process = subprocess.Popen(
        [sys.executable, "-c", _FILTER, RAY_LINE.pattern, str(log_file)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=real, close_fds=True, start_new_session=True)
    os.dup2(filter_process.stdin.fileno(), 2)
    filter_process.stdin.close()  # fd 2 holds the pipe now; the filter ends when every holder has closed it
    sys.stderr = sys.__stderr__ = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                                            errors=sys.stderr.errors)
    return filter_process


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
    divert_ray_output(Path(settings.workspace) / "logs" / "ray.log")
    to_driver = is_verbose()  # workers' own output: on the console with --verbose, else in Ray's session logs
    if settings.ray_address and settings.ray_address != "local":  # RAY_ADDRESS=local: a new local instance
        require_cluster_token(settings.ray_address)
        try:
            ray.init(address=settings.ray_address, log_to_driver=to_driver)
        except (ConnectionError, RuntimeError) as error:
            if not _is_auth_failure(error):
                raise
            raise SystemExit(f"harness: the Ray cluster at {settings.ray_address} refused this driver's token "
                             f"(from {token_source()}): set RAY_AUTH_TOKEN_PATH to the token file the cluster was "
                             f"started with ({AUTH_DOC})") from None
    else:
        # Ray starts its workers at niceness 15 (worker_niceness), below every ordinary process: on a machine
        # shared with other jobs the extraction actors and units then get the CPU last (one block of 16 clips per
        # minute where a plain loop beside them did 7 clips/s; benchmarks/resample.md). A local instance's workers
        # run at the driver's priority instead, as any process the user starts would.
        ray.init(address="local", num_cpus=settings.num_cpus, include_dashboard=False, log_to_driver=to_driver,
                 _system_config={"worker_niceness": 0})
    from harness.interrupt import sigterm_as_interrupt

    sigterm_as_interrupt()  # ray.init replaced the command's handler: SIGTERM stops a run as Ctrl-C does
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    divert_ray_output(Path(settings.workspace) / "logs" / "ray.log")  # loggers Ray set up while starting


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
