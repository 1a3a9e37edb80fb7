"""Atomic file writes: write to a temporary name in the same directory, then rename.

A rename within one directory is atomic on POSIX, so a reader sees either the old file, the complete new file,
or nothing: an interrupted run never leaves a half-written file under a name that a later run would trust.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on clean exit rename it to `path`, on error delete it.

    The temporary file is not created here: the writer creates it, so its mode follows the process umask like
    any other file (a workspace shared by a group stays group-readable). `tempfile.mkstemp` would create it
    owner-only (0600), and the rename would keep that mode. The name is unique (a random UUID) all the same.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}{target.suffix}"
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def is_temporary(path: Path) -> bool:
    """True for leftovers of an interrupted atomic write; these are never read as data."""
    return path.name.startswith(TEMP_PREFIX)
