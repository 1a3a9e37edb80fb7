"""Dataset cards: one YAML file per corpus in `datasets/`, validated at load and turned into a `DatasetSpec`.

A card says what the corpus is (citation, licence, where to get it), how it is laid out, and how a reader's raw
records become manifest rows: `joins` add columns from side tables (demographics, perception votes), `derive`
maps codes to names (an unknown code is a problem, never a guess), and templates (`clip_id`, `speaker`,
`label`, `text`, `session`, `split`, `columns`) are Python format strings over the fields. Files that share a
clip id are one clip (RAVDESS's wav and mp4 of one take). Labels outside the target's classes are excluded and
counted; missing media leave the clip in place for the modalities that are there and are reported.

Cards ship with the package: they live in the repository's top-level `datasets/` folder (the layout the project
keeps: one card per corpus next to where corpora are put), and `harness/cards` is a relative symlink to it, so
`importlib.resources.files("harness") / "cards"` finds them in a checkout, an editable install, and a wheel
(setuptools copies the linked `*.yaml` files into `harness/cards/` as package data; corpora in `datasets/<name>/`
are never packaged). Cards are also read from every folder in `HARNESS_CARDS` (os.pathsep-separated); a card's
`name` must be its file name without `.yaml`.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from harness.datasets import DatasetSpec, mark_broken, register_dataset
from harness.datasets import iemocap as _iemocap  # noqa: F401  (registers the `iemocap` reader)
from harness.datasets.card_schema import LabelMap, ProtocolChoice, validate_card
from harness.datasets.readers import (
    CardError,
    Reader,
    ReadResult,
    Record,
    build_reader,
    compile_pattern,
    read_text_table,
    resolved_location,
)
from harness.manifest import Manifest
from harness.names import InputError, load_yaml
from harness.protocols import FoldFileError, ProtocolSpec, check_file_folds_name, get_protocol

CARD_DIRS_ENV = "HARNESS_CARDS"
_OPTIONAL = ("audio_path", "video_path", "text", "session", "split", "audio_resolved", "video_resolved")


def shipped_card_dir() -> Path:
    """The cards installed with the package (package data `harness/cards/*.yaml`), resolved, so that in a
    checkout errors name the file the user edits (`datasets/emodb.yaml`), not the link."""
    from importlib.resources import files

    folder = files("harness") / "cards"
    if not isinstance(folder, Path) or not folder.is_dir():
        raise CardError(f"the dataset cards are missing from the installed package ({folder}); reinstall "
                        f"mer-harness, or point {CARD_DIRS_ENV} at a folder of cards")
    return folder.resolve()


def default_card_dirs() -> list[Path]:
    """The shipped cards, then each folder in HARNESS_CARDS (whose cards override shipped ones by name)."""
    dirs = [shipped_card_dir()]
    extra = os.environ.get(CARD_DIRS_ENV, "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


def _template_fields(template: str, where: str) -> set[str]:
    try:
        return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as error:
        raise CardError(f"{where}: invalid template {template!r} ({error})") from None


def _fmt(template: str, fields: dict[str, str], where: str) -> str:
    try:
        return template.format_map(fields)
    except KeyError as error:
        raise CardError(f"{where}: template {template!r} names {error}, which is not a field; fields are "
                        f"{sorted(fields)}") from None


@dataclass(frozen=True)
class Join:
    """Columns from a side table (CSV under the root): the row whose `key` column equals formatted `lookup`.

    required: whether the table's absence is a problem (an absent optional table leaves its columns empty).
    """

    file: str
    key: str
    lookup: str
    columns: dict[str, str]
    required: bool


@dataclass(frozen=True)
class Derived:
    """A field computed from another: `values` (exact code -> name) or `match` (regex -> name, first wins)."""

    source: str
    values: dict[str, str] | None
    match: list[tuple[re.Pattern[str], str]] | None

    def apply(self, value: str) -> str | None:
        if self.values is not None:
            return self.values.get(value)
        assert self.match is not None
        return next((name for pattern, name in self.match if pattern.search(value)), None)


@dataclass(frozen=True)
class Target:
    """What `label` means: a template over the fields, an optional value map, and the classes kept."""

    label: str
    values: dict[str, str] | None
    classes: tuple[str, ...]
    description: str = ""


@dataclass
class Card:
    path: Path
    data: dict[str, Any]
    reader: Reader
    joins: list[Join]
    derive: dict[str, Derived]
    targets: dict[str, Target]  # "default" first
    templates: dict[str, str]  # clip_id, speaker, text, session, split
    columns: dict[str, str]

    @property
    def name(self) -> str:
        return self.data["name"]

    # ---- scanning -----------------------------------------------------------------------------------
    def is_present(self, root: Path) -> bool:
        """Cheap: any of the card's `present` paths (globs allowed) exists under the root."""
        root = Path(root)
        if not root.is_dir():
            return False
        return any(next(iter(root.glob(p)), None) is not None for p in self.data["present"])

    def scan(self, root: Path, target: str | None = None) -> Manifest:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name}: data folder {root} does not exist; obtain the corpus "
                                    f"(`harness data list` says how) or point --data-dir / HARNESS_DATA_"
                                    f"{self.name.upper().replace('-', '_')} at it")
        return self.build(root, self.reader.read(root), target)

    def manifest_from_paths(self, root: Path, paths: list[str], target: str | None = None) -> Manifest:
        """A manifest from a file inventory (relative paths), without touching the disk for media."""
        read = getattr(self.reader, "read_paths", None)
        if read is None:
            raise CardError(f"{self.path}: reader {self.reader.kind!r} cannot parse a bare file inventory")
        return self.build(Path(root), read(paths), target, check_media=False)

    def build(self, root: Path, read: ReadResult, target: str | None = None, check_media: bool = True) -> Manifest:
        name = target or "default"
        if name not in self.targets:
            raise KeyError(f"{self.name}: unknown target {target!r}; the card defines {list(self.targets)}")
        chosen = self.targets[name]
        problems = list(read.problems)
        lookups = self._load_joins(root, problems)
        clips: dict[str, dict[str, Any]] = {}
        lost = read.rejected
        for record in read.records:
            row = self._row(record, chosen, lookups, problems)
            if row is None:
                lost += 1
                continue
            existing = clips.get(row["clip_id"])
            if existing is None:
                clips[row["clip_id"]] = row
                continue
            for role, path in row["_media"].items():
                if role in existing["_media"]:
                    problems.append((path, f"a second {role} file for clip {row['clip_id']} (kept "
                                           f"{existing['_media'][role]})"))
                else:
                    existing["_media"][role] = path
        kept, excluded = [], Counter()
        for row in clips.values():
            if row["label"] not in chosen.classes:
                excluded[row["label"]] += 1
            else:
                kept.append(row)
        for label, count in sorted(excluded.items()):
            problems.append((f"({count} clips)", f"label {label!r} is not among the {name} target's classes "
                                                 f"(excluded by design)"))
        if check_media:
            self._check_media(root, kept, problems)
            _record_links(root, kept)
        table = pd.DataFrame([self._finish(row) for row in kept])
        if table.empty:
            table = pd.DataFrame(columns=["clip_id", "label", "speaker"])
        for column in _OPTIONAL:  # None (not NaN) marks an absent medium, transcript, session or split
            if column in table:
                table[column] = pd.Series([v if isinstance(v, str) else None for v in table[column]],
                                          index=table.index, dtype=object)
        dataset = self.name if name == "default" else f"{self.name}@{name}"
        counts = {"items": len(read.records) + read.rejected, "lost": lost, "excluded": sum(excluded.values())}
        return Manifest(dataset, root, list(chosen.classes), table,
                        pd.DataFrame(problems, columns=["path", "reason"]), scan_counts=counts)

    def _load_joins(self, root: Path, problems: list[tuple[str, str]]) -> list[dict[str, dict[str, str]] | None]:
        lookups: list[dict[str, dict[str, str]] | None] = []
        for join in self.joins:
            path = root / join.file
            if not path.exists():
                if join.required:
                    problems.append((join.file, "side table missing; its columns are empty"))
                lookups.append(None)
                continue
            table, note = read_text_table(path, ["utf-8", "cp1252"])
            if note:
                problems.append((join.file, f"read with repairs ({note})"))
            missing = [c for c in [join.key, *join.columns] if c not in table.columns]
            if missing:
                raise CardError(f"{self.path}: joins: {join.file} lacks columns {missing}; it has "
                                f"{list(table.columns)}")
            lookups.append({str(r[join.key]): r for r in table.to_dict("records")})
        return lookups

    def _row(self, record: Record, target: Target, lookups: list, problems: list) -> dict[str, Any] | None:
        fields = dict(record.fields)
        for join, lookup in zip(self.joins, lookups, strict=True):
            found = None
            if lookup is not None:
                key = _fmt(join.lookup, fields, f"{self.path}: joins.lookup")
                found = lookup.get(key)
                if found is None:  # the table is there but lacks this item: suspicious, so reported
                    problems.append((record.source, f"no row in {join.file} for {join.key}={key!r}"))
            for column, as_field in join.columns.items():
                fields[as_field] = str(found[column]) if found is not None else ""
        for name, rule in self.derive.items():
            value = rule.apply(fields.get(rule.source, ""))
            if value is None:
                problems.append((record.source, f"{rule.source}={fields.get(rule.source, '')!r} is not in the "
                                                f"card's derive.{name} map"))
                return None
            fields[name] = value
        where = str(self.path)
        label = _fmt(target.label, fields, f"{where}: label")
        if target.values is not None:
            label = target.values.get(label, label)
        row: dict[str, Any] = {key: _fmt(template, fields, f"{where}: {key}")
                               for key, template in self.templates.items()}
        row["label"] = label
        row.update({column: _fmt(template, fields, f"{where}: columns.{column}")
                    for column, template in self.columns.items()})
        row["_media"] = dict(record.media)
        return row

    def _check_media(self, root: Path, rows: list[dict[str, Any]], problems: list) -> None:
        """Drop media paths that do not exist (the clip stays for its other modalities) and report them:
        one line per absent folder, one per absent file in a folder that exists."""
        absent_dirs: Counter[tuple[str, str]] = Counter()
        dir_exists: dict[str, bool] = {}
        for row in rows:
            for role, path in list(row["_media"].items()):
                if (root / path).is_file():
                    continue
                del row["_media"][role]
                folder = str(PurePosixPath(path).parent)
                if folder not in dir_exists:
                    dir_exists[folder] = (root / folder).is_dir()
                if dir_exists[folder]:
                    problems.append((path, f"{role} file missing; clip kept for its other modalities"))
                else:
                    absent_dirs[(folder, role)] += 1
        for (folder, role), count in sorted(absent_dirs.items()):
            problems.append((folder + "/", f"folder absent: no {role} for {count} clips (kept for their other "
                                           "modalities)"))

    @staticmethod
    def _finish(row: dict[str, Any]) -> dict[str, Any]:
        media = row.pop("_media")
        row["audio_path"] = media.get("audio")
        row["video_path"] = media.get("video") or media.get("silent_video")
        real = row.pop("_resolved", {})
        if real:  # only a clip read through a symlink has the columns; others leave them empty
            row["audio_resolved"] = real.get("audio")
            row["video_resolved"] = real.get("video") or real.get("silent_video")
        for key in ("text", "session", "split"):
            if key in row and row[key] == "":
                row[key] = None
        return row

    # ---- the registry entry ----------------------------------------------------------------------------
    def to_spec(self) -> DatasetSpec:
        d = self.data
        protocol = _protocol(ProtocolChoice.model_validate(d["protocol"]), f"{self.path}: card.protocol")
        protocols = {k: _protocol(ProtocolChoice.model_validate(v), f"{self.path}: card.protocols.{k}")
                     for k, v in d.get("protocols", {}).items()}
        return DatasetSpec(
            name=self.name, title=d["title"], classes=self.targets["default"].classes,
            modalities=tuple(d["modalities"]), protocol=protocol, features=dict(d.get("features", {})),
            scan=self.scan, is_present=self.is_present, headline_metric=d.get("headline_metric", "uar"),
            polarity=dict(d.get("polarity", {})), description=d.get("description", "").strip(),
            source=str(self.path), citation=d.get("citation", "").strip(), licence=d.get("licence", ""),
            homepage=d.get("homepage", ""), obtain=dict(d.get("obtain", {})), layout=d.get("layout", "").strip(),
            protocols=protocols,
            targets={k: t.classes for k, t in self.targets.items() if k != "default"},
            scan_target=lambda root, target: self.scan(root, target), card=self.path,
            cross_corpus=dict(d.get("cross_corpus") or {}),
            ratings={k: dict(v) for k, v in d.get("ratings", {}).items()},
        )


def _record_links(root: Path, rows: list[dict[str, Any]]) -> None:
    """Each media file read through a symlink (the user's layout, followed) gets its real location recorded
    under `_resolved`, so the manifest, its fingerprint and `harness data verify` name the file that is read."""
    for row in rows:
        real = {role: where for role, path in row["_media"].items()
                if (where := resolved_location(root, path)) is not None}
        if real:
            row["_resolved"] = real


def _protocol(value: ProtocolChoice, where: str) -> ProtocolSpec:
    try:
        get_protocol(value.name)
    except KeyError as error:
        raise CardError(f"{where}.name: {error.args[0]}") from None
    try:  # a published fold file must exist and deserve the protocol's name (speaker-independent or not)
        check_file_folds_name(value.name, dict(value.params or {}), where)
    except FoldFileError as error:
        raise CardError(str(error)) from None
    return ProtocolSpec(value.name, dict(value.params or {}))


def _target(label: str | LabelMap, classes: list[str], description: str = "") -> Target:
    if isinstance(label, LabelMap):
        return Target(label.format, label.values, tuple(classes), description)
    return Target(label, None, tuple(classes), description)


def parse_card(path: Path) -> Card:
    """Validate one card file (shape by `card_schema`, then regexes, templates, protocols and the reader);
    every error names the file and the field."""
    path = Path(path)
    try:  # no aliases, size-capped, UTF-8: a few hundred bytes of anchors must not expand to gigabytes
        data = load_yaml(path, "card")
    except InputError as error:
        raise CardError(str(error)) from None
    where = f"{path}: card"
    schema = validate_card(data, path)
    if schema.name != path.stem:
        raise CardError(f"{where}: name {schema.name!r} must equal the file name without .yaml ({path.stem!r})")
    data.setdefault("present", list(schema.present))
    reader = build_reader(schema.reader, f"{where}.reader")
    joins = [Join(j.file, j.key, j.lookup, dict(j.columns), j.required) for j in schema.joins]
    derive = {}
    for key, rule in schema.derive.items():
        at = f"{where}.derive.{key}"
        matches = [(compile_pattern(p, f"{at}.match"), n) for p, n in rule.match.items()] \
            if rule.match is not None else None
        derive[key] = Derived(rule.source, rule.values, matches)
    targets = {"default": _target(schema.label, schema.classes)}
    targets |= {key: _target(t.label, t.classes, t.description) for key, t in schema.targets.items()}
    templates = {"clip_id": schema.clip_id, "speaker": schema.speaker}
    templates |= {key: getattr(schema, key) for key in ("text", "session", "split") if getattr(schema, key)}
    known = {c for t in targets.values() for c in t.classes}
    unknown = sorted(set(schema.cross_corpus) - known)
    if unknown:
        raise CardError(f"{where}.cross_corpus: {unknown} are not classes of this card ({sorted(known)})")
    card = Card(path, data, reader, joins, derive, targets, templates, dict(schema.columns))
    _check_templates(card)
    card.to_spec()  # validates the protocols
    return card


def _check_templates(card: Card) -> None:
    """When the reader knows its fields up front, every template must name only known fields."""
    known = card.reader.field_names()
    if known is None:
        return
    known = set(known) | set(card.derive) | {f for j in card.joins for f in j.columns.values()}
    used = {f"{k}": t for k, t in card.templates.items()}
    used |= {f"columns.{k}": t for k, t in card.columns.items()}
    used |= {f"targets.{k}.label": t.label for k, t in card.targets.items()}
    used |= {f"joins.{j.file}.lookup": j.lookup for j in card.joins}
    for key, template in used.items():
        unknown = _template_fields(template, f"{card.path}: {key}") - known
        if unknown:
            raise CardError(f"{card.path}: {key}: template {template!r} names {sorted(unknown)}, which are not "
                            f"fields; fields are {sorted(known)}")
    for key, rule in card.derive.items():
        if rule.source not in known:
            raise CardError(f"{card.path}: derive.{key}.from: {rule.source!r} is not a field; fields are "
                            f"{sorted(known)}")


def register_card_dir(directory: Path) -> list[DatasetSpec]:
    """Register every card in a folder (later folders override earlier ones with the same name, on purpose).

    A card that does not validate is recorded as broken under its file name (`mark_broken`) instead of raising:
    one broken card in HARNESS_CARDS must not stop commands about other corpora. Using the broken corpus is the
    error (naming the file and the field), and `harness data list` shows it as broken.
    """
    registered = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            spec = parse_card(path).to_spec()
        except (ValueError, KeyError, TypeError, OSError) as error:  # CardError is a ValueError
            message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
            mark_broken(path.stem, message if str(path) in message else f"{path}: {message}")
            continue
        registered.append(register_dataset(spec, replace=True))
    return registered


for _directory in default_card_dirs():
    register_card_dir(_directory)
