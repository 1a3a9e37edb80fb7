"""Readers: turn a corpus as distributed into raw records (fields + media paths), one registry entry per kind.

A reader knows only where a corpus keeps its metadata (file names, CSV rows, IEMOCAP evaluation files). Turning
records into a manifest (label maps, targets, joins, media checks) is the card's job (`harness.datasets.cards`),
so every reader gets the same treatment and a new file-name-labelled corpus needs a card, not code.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from harness.registry import Registry

MEDIA_ROLES: tuple[str, ...] = ("audio", "video", "silent_video")


class CardError(ValueError):
    """A dataset card that breaks the schema; the message names the card file, the field and the fix."""


@dataclass
class Record:
    """One raw item: its fields (strings), its media (role -> path relative to the root) and where it came from."""

    fields: dict[str, str]
    media: dict[str, str] = field(default_factory=dict)
    source: str = ""


@dataclass
class ReadResult:
    records: list[Record]
    problems: list[tuple[str, str]]  # (path, reason): could not become a record, or a note on one that did
    rejected: int = 0  # files or rows the reader saw that did not become records (the scan's loss)


class Reader:
    """Base class: `read(root)` scans the disk; `field_names()` lets the card check its templates at load."""

    kind: str = ""

    def __init__(self, config: dict[str, Any], where: str) -> None:
        self.config = config
        self.where = where

    def field_names(self) -> set[str] | None:
        """Fields every record has (None when only known at read time, e.g. CSV columns)."""
        return None

    def read(self, root: Path) -> ReadResult:
        raise NotImplementedError


_READERS: Registry[type[Reader]] = Registry("reader")


def register_reader(cls: type[Reader]) -> type[Reader]:
    return _READERS.add(cls.kind, cls)


def build_reader(config: dict[str, Any], where: str) -> Reader:
    kind = config.get("kind")
    if kind not in _READERS:
        raise CardError(f"{where}.kind: unknown reader {kind!r}; use one of {_READERS.names()}")
    return _READERS.get(kind)(config, where)


def expect(config: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, required: bool = True,
           default: Any = None) -> Any:
    """Typed access to one card field; errors name the field and what it should be."""
    if key not in config or config[key] is None:
        if required:
            raise CardError(f"{where}.{key}: missing (required)")
        return default
    value = config[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CardError(f"{where}.{key}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def reject_unknown(config: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise CardError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def outside_root(root: Path, relative: str) -> str | None:
    """Why a media path taken from corpus data would leave the corpus root, or None when it stays inside.

    Scanning must never let a corpus (a downloaded archive, a CSV) turn a file elsewhere on the machine into a
    clip: `harness data verify` and the feature extractors decode whatever the manifest names. So a path that
    comes from corpus data is refused when it is absolute or has a `..` component (a CSV field such as a crafted
    `Dialogue_ID` can put one into a templated path): it must name a place under the root by its own spelling.

    Symlinks are not refused. A symlink inside the data tree was made by the user (`harness data fetch`
    extracts archives with Python's `tarfile` data filter and a zip-slip check, so an archive cannot plant one
    that leaves the root): `datasets/emodb/wav -> /data/emodb/wav` is how a researcher keeps 500 MB out of a
    checkout. Such a link is followed, and the manifest records where it leads (`resolved_location`).
    """
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute() or Path(relative).is_absolute() or re.match(r"^[A-Za-z]:", relative):
        return f"absolute media path {relative!r}: media must lie inside the corpus root {root}"
    if ".." in path.parts:
        return f"media path {relative!r} climbs out with '..': media must lie inside the corpus root {root}"
    return None


def resolved_location(root: Path, relative: str) -> str | None:
    """Where a media path really is when a symlink under the root leads elsewhere; None when it does not.

    The manifest keeps the path relative to the root (so caches survive moving the corpus) and records this
    real location beside it, so verification, checksums and cache keys see the file that is read.
    """
    real = (root / relative).resolve()
    return None if real == root.resolve() / relative else str(real)


def compile_pattern(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise CardError(f"{where}: invalid regular expression {pattern!r} ({error})") from None


@register_reader
class FilenameReader(Reader):
    """Labels live in file names: `files` lists globs with a media role, `pattern` is a regex whose named groups
    become fields; it must match the whole path relative to the root, without the extension."""

    kind = "filename"
    _allowed = ("kind", "files", "pattern")

    def __init__(self, config: dict[str, Any], where: str) -> None:
        super().__init__(config, where)
        reject_unknown(config, self._allowed, where)
        self.files: list[tuple[str, str]] = []
        for i, spec in enumerate(expect(config, "files", list, where)):
            at = f"{where}.files[{i}]"
            if not isinstance(spec, dict):
                raise CardError(f"{at}: expected a mapping with glob and role")
            reject_unknown(spec, ("glob", "role"), at)
            role = expect(spec, "role", str, at)
            if role not in MEDIA_ROLES:
                raise CardError(f"{at}.role: {role!r} is not one of {list(MEDIA_ROLES)}")
            self.files.append((expect(spec, "glob", str, at), role))
        self.pattern = compile_pattern(expect(config, "pattern", str, where), f"{where}.pattern")

    def field_names(self) -> set[str]:
        return set(self.pattern.groupindex)

    def role_of(self, relative: str) -> str | None:
        path = PurePosixPath(relative)
        return next((role for glob, role in self.files if path.match(glob)), None)

    def parse(self, relative: str, role: str) -> Record | tuple[str, str]:
        """A record for one file, or (path, reason) when its name does not fit the pattern."""
        stem = str(PurePosixPath(relative).with_suffix(""))
        match = self.pattern.fullmatch(stem)
        if match is None:
            return relative, f"file name does not match the card's pattern {self.pattern.pattern!r}"
        return Record({k: v for k, v in match.groupdict().items() if v is not None}, {role: relative}, relative)

    def read_paths(self, paths: Iterable[str]) -> ReadResult:
        """Parse relative paths without touching the disk (e.g. a published file inventory); paths that leave
        the root lexically (absolute, `..`) are problems."""
        records, problems = [], []
        for relative in paths:
            path = PurePosixPath(relative)
            if path.is_absolute() or ".." in path.parts:
                problems.append((relative, "media path leaves the corpus root (absolute or '..'); not a clip"))
                continue
            role = self.role_of(relative)
            if role is None:
                problems.append((relative, f"matches none of the card's globs {[g for g, _ in self.files]}"))
                continue
            parsed = self.parse(relative, role)
            (records if isinstance(parsed, Record) else problems).append(parsed)
        return ReadResult(records, problems, rejected=len(problems))

    def read(self, root: Path) -> ReadResult:
        seen: dict[str, str] = {}
        records, problems = [], []
        for glob, role in self.files:
            # the glob's matches lie under the root by their spelling; symlinked folders are followed
            for path in sorted(root.glob(glob)):
                if path.is_file():
                    seen.setdefault(path.relative_to(root).as_posix(), role)
        for relative, role in seen.items():
            parsed = self.parse(relative, role)
            (records if isinstance(parsed, Record) else problems).append(parsed)
        return ReadResult(records, problems, rejected=len(problems))


def read_text_table(path: Path, encodings: list[str]) -> tuple[pd.DataFrame, str | None]:
    """A CSV as strings. Tries the card's encodings in order; returns the table and a note when it fell back.

    Text decoded as UTF-8 can still hold C1 control characters (U+0080-U+009F): Windows-1252 punctuation that
    was mis-decoded upstream (MELD's `\\x92` apostrophes). They are mapped back to the characters they stand for.
    """
    raw = path.read_bytes()
    for i, encoding in enumerate(encodings):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        note = None if i == 0 else f"not valid {encodings[0]}; decoded as {encoding}"
        fixed = _fix_c1(text)
        if fixed != text:
            note = (note + "; " if note else "") + "Windows-1252 control characters repaired"
        table = pd.read_csv(io.StringIO(fixed), dtype=str, keep_default_na=False)
        return table, note
    raise UnicodeDecodeError(encodings[-1], raw, 0, 1, f"{path}: none of the encodings {encodings} decode it")


_C1 = re.compile("[\u0080-\u009f]")


def _fix_c1(text: str) -> str:
    def repair(match: re.Match[str]) -> str:
        try:
            return bytes([ord(match.group())]).decode("cp1252")
        except UnicodeDecodeError:
            return " "

    return _C1.sub(repair, text)


@register_reader
class CsvReader(Reader):
    """Labels live in CSV tables: one entry per table (file, optional split, media path templates over columns).

    Media templates are formatted with the row's columns; whether the file exists is checked by the card.
    """

    kind = "csv"
    _allowed = ("kind", "tables", "encodings")

    def __init__(self, config: dict[str, Any], where: str) -> None:
        super().__init__(config, where)
        reject_unknown(config, self._allowed, where)
        self.encodings = expect(config, "encodings", list, where, required=False, default=["utf-8", "cp1252"])
        self.tables = expect(config, "tables", list, where)
        for i, table in enumerate(self.tables):
            at = f"{where}.tables[{i}]"
            if not isinstance(table, dict):
                raise CardError(f"{at}: expected a mapping with file, split, media")
            reject_unknown(table, ("file", "split", "media"), at)
            expect(table, "file", str, at)
            expect(table, "split", str, at, required=False)
            for role in expect(table, "media", dict, at, required=False, default={}):
                if role not in MEDIA_ROLES:
                    raise CardError(f"{at}.media: {role!r} is not one of {list(MEDIA_ROLES)}")

    def read(self, root: Path) -> ReadResult:
        records: list[Record] = []
        problems: list[tuple[str, str]] = []
        rejected = 0
        for table_spec in self.tables:
            name = table_spec["file"]
            path = root / name
            if not path.exists():
                split = table_spec.get("split")
                problems.append((name, "table missing" + (f": no {split!r} clips" if split else "")))
                continue
            table, note = read_text_table(path, self.encodings)
            if note:
                problems.append((name, f"read with repairs ({note}); clips kept"))
            for index, row in enumerate(table.to_dict("records")):
                fields = {str(k): str(v) for k, v in row.items()}
                if table_spec.get("split"):
                    fields["split"] = table_spec["split"]
                try:
                    media = {role: template.format_map(fields)
                             for role, template in table_spec.get("media", {}).items()}
                except KeyError as error:
                    raise CardError(f"{self.where}.tables: media template names column {error} which "
                                    f"{name} lacks; columns are {list(table.columns)}") from None
                source = f"{name}:{index + 2}"
                escapes = [reason for path in media.values() if (reason := outside_root(root, path))]
                if escapes:  # a crafted row: none of it becomes a clip
                    problems.append((source, f"row rejected: {escapes[0]}"))
                    rejected += 1
                    continue
                records.append(Record(fields, media, source))
        return ReadResult(records, problems, rejected)

