"""Fetching a corpus with a public URL: resumable download, checksum, safe extraction.

Downloads go to `<data dir>/.downloads/<archive>.part` and are renamed only once complete (and, where the card
knows it, once the SHA-256 matches), so an interrupted fetch resumes with an HTTP Range request and a finished
archive is never fetched twice. Extraction refuses members that would land outside the data folder.
"""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import atomic
from harness.datasets import DatasetSpec

DOWNLOADS = ".downloads"


class FetchError(RuntimeError):
    """A corpus that cannot be fetched, or a download that failed its checks; the message says what to do."""


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None,
             log: Callable[[str], None] = print, chunk_size: int = 1 << 20) -> Path:
    """Download `url` to `dest`, resuming a previous partial download; check size and SHA-256 when known."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = offset > 0 and response.status == 206
            if offset and not resumed:
                log(f"[fetch] {url}: server ignored the resume request; starting over")
            log(f"[fetch] {url} -> {dest}" + (f" (resuming at byte {offset})" if resumed else ""))
            with open(part, "ab" if resumed else "wb") as handle:
                while block := response.read(chunk_size):
                    handle.write(block)
    except urllib.error.HTTPError as error:
        if error.code != 416:  # 416: the partial file is already complete
            raise FetchError(f"{url}: HTTP {error.code} {error.reason}; check the URL or try again") from error
    except urllib.error.URLError as error:
        raise FetchError(f"{url}: {error.reason}; check the network (the partial download is kept in {part} "
                         "and resumes next time)") from error
    if size is not None and part.stat().st_size != size:
        raise FetchError(f"{url}: got {part.stat().st_size} bytes, expected {size}; run the fetch again to "
                         f"resume, or delete {part} to start over")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            bad = part.with_name(dest.name + ".bad")
            part.replace(bad)
            raise FetchError(f"{url}: SHA-256 {actual} does not match the card's {sha256}; the file was moved to "
                             f"{bad}. Fetch again; if it persists, the archive changed upstream: update the card")
    part.replace(dest)
    return dest


def _inside(root: Path, member: str) -> bool:
    target = (root / member).resolve()
    return target == root or root in target.parents


def extract(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive into `into`, refusing absolute paths, `..` and links leaving it."""
    into = Path(into).resolve()
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            unsafe = [n for n in handle.namelist() if not _inside(into, n)]
            if unsafe:
                raise FetchError(f"{archive}: refusing to extract paths outside {into}: {unsafe[:3]}")
            handle.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as handle:
            handle.extractall(into, filter="data")
    else:
        raise FetchError(f"{archive}: neither a zip nor a tar archive; delete it and fetch again")


def public_archives(spec: DatasetSpec) -> list[dict[str, Any]]:
    return [a for a in spec.obtain.get("archives", []) if a.get("url")]


def fetch(spec: DatasetSpec, root: Path, mirror: str | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Download and extract every public archive the card lists into `root`; returns the archives.

    mirror: a base URL to fetch `<mirror>/<archive name>` from instead of the card's URLs.
    """
    archives = public_archives(spec)
    if not archives:
        how = spec.obtain.get("instructions", "").strip() or f"see {spec.homepage or spec.source}"
        raise FetchError(f"{spec.name} has no public download URL. {how}")
    root = Path(root)
    fetched = []
    for archive in archives:
        url = f"{mirror.rstrip('/')}/{archive['name']}" if mirror else archive["url"]
        path = download(url, root / DOWNLOADS / archive["name"], archive.get("sha256"), archive.get("size"), log)
        marker = path.with_name(path.name + ".extracted")
        if archive.get("extract", True) and not marker.exists():
            log(f"[fetch] extracting {path.name} into {root}")
            extract(path, root)
            atomic.write_text(marker, sha256_of(path) + "\n")
        fetched.append(path)
    return fetched
