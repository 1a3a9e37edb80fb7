"""SIGTERM as Ctrl-C: what `timeout`, Docker and job schedulers send stops a run the way Ctrl-C does.

Why: `ray.init` installs its own SIGTERM handlers (exit at once, after killing the local node), so a terminated
run used to abort with exit status 134 and a stack dump, and cleanup code (temporary files, the experiment
lease, closing the store) never ran. `sigterm_as_interrupt` makes SIGTERM raise `Terminated`, a
`KeyboardInterrupt`, so the same `finally` blocks and the same one-line message run; the command line exits
with 143 (128 + 15), as a shell reports a process ended by SIGTERM. It is installed when a command starts and
again right after Ray starts (which replaced it).
"""

from __future__ import annotations

import signal
import threading

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


_received: list[int] = []  # the signal that stopped this process, once one has


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled wherever Ctrl-C is."""


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup it started
    _received.append(signum)
    raise Terminated()


def was_terminated(stop: BaseException) -> bool:
    """Whether `stop` (a KeyboardInterrupt) came from SIGTERM; libraries (Ray Tune) may re-raise a plain one."""
    return isinstance(stop, Terminated) or signal.SIGTERM in _received


def sigterm_as_interrupt() -> None:
    """Make SIGTERM raise `Terminated` in the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
