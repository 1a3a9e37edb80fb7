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
import yaml

from harness.datasets import DatasetSpec, register_dataset
from harness.datasets import iemocap as _iemocap  # noqa: F401  (registers the `iemocap` reader)
from harness.datasets.readers import (
    CardError,
    Reader,
    ReadResult,
    Record,
    build_reader,
    compile_pattern,
    expect,
    read_text_table,
    reject_unknown,
)
from harness.manifest import Manifest
from harness.protocols import ProtocolSpec, get_protocol

CARD_DIRS_ENV = "HARNESS_CARDS"
MODALITIES = ("audio", "video", "text")
_TOP_LEVEL = (
    "name", "title", "description", "citation", "licence", "homepage", "obtain", "layout", "classes",
    "modalities", "polarity", "features", "headline_metric", "protocol", "protocols", "present", "reader",
    "joins", "derive", "clip_id", "speaker", "label", "text", "session", "split", "columns", "targets", "notes",
)
_OPTIONAL = ("audio_path", "video_path", "text", "session", "split")


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
        for record in read.records:
            row = self._row(record, chosen, lookups, problems)
            if row is None:
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
        table = pd.DataFrame([self._finish(row) for row in kept])
        if table.empty:
            table = pd.DataFrame(columns=["clip_id", "label", "speaker"])
        for column in _OPTIONAL:  # None (not NaN) marks an absent medium, transcript, session or split
            if column in table:
                table[column] = pd.Series([v if isinstance(v, str) else None for v in table[column]],
                                          index=table.index, dtype=object)
        dataset = self.name if name == "default" else f"{self.name}@{name}"
        return Manifest(dataset, root, list(chosen.classes), table,
                        pd.DataFrame(problems, columns=["path", "reason"]))

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
        for key in ("text", "session", "split"):
            if key in row and row[key] == "":
                row[key] = None
        return row

    # ---- the registry entry ----------------------------------------------------------------------------
    def to_spec(self) -> DatasetSpec:
        d = self.data
        protocol = _protocol(d["protocol"], f"{self.path}: protocol")
        protocols = {k: _protocol(v, f"{self.path}: protocols.{k}") for k, v in d.get("protocols", {}).items()}
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
        )


def _protocol(value: Any, where: str) -> ProtocolSpec:
    if not isinstance(value, dict) or "name" not in value:
        raise CardError(f"{where}: expected a mapping with name (and params)")
    reject_unknown(value, ("name", "params"), where)
    try:
        get_protocol(value["name"])
    except KeyError as error:
        raise CardError(f"{where}.name: {error.args[0]}") from None
    return ProtocolSpec(value["name"], dict(value.get("params") or {}))


def _str_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise CardError(f"{where}: expected a mapping")
    return {str(k): str(v) for k, v in value.items()}


def _target(value: Any, classes: Any, where: str, description: str = "") -> Target:
    if isinstance(value, str):
        label, values = value, None
    elif isinstance(value, dict):
        reject_unknown(value, ("format", "values"), where)
        label = expect(value, "format", str, where)
        values = _str_map(value["values"], f"{where}.values") if "values" in value else None
    else:
        raise CardError(f"{where}: expected a template string or a mapping with format and values")
    if not isinstance(classes, list) or not classes:
        raise CardError(f"{where}: the target needs a non-empty list of classes")
    return Target(label, values, tuple(str(c) for c in classes), description)


def parse_card(path: Path) -> Card:
    """Validate one card file; every error names the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CardError(f"{path}: not valid YAML ({error})") from None
    where = f"{path}: card"
    if not isinstance(data, dict):
        raise CardError(f"{where}: a card is a mapping of fields")
    reject_unknown(data, _TOP_LEVEL, where)
    name = expect(data, "name", str, where)
    if name != path.stem:
        raise CardError(f"{where}: name {name!r} must equal the file name without .yaml ({path.stem!r})")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise CardError(f"{where}: name {name!r}: use lower-case letters, digits and '-'")
    expect(data, "title", str, where)
    for key in ("citation", "licence", "homepage", "layout", "description", "notes", "headline_metric"):
        expect(data, key, str, where, required=False)
    modalities = expect(data, "modalities", list, where)
    if not modalities or set(modalities) - set(MODALITIES):
        raise CardError(f"{where}.modalities: {modalities}: use a non-empty subset of {list(MODALITIES)}")
    features = expect(data, "features", dict, where, required=False, default={})
    if set(features) - set(modalities):
        raise CardError(f"{where}.features: {sorted(features)} names modalities the card does not list")
    data.setdefault("present", ["."])
    expect(data, "present", list, where)
    _validate_obtain(expect(data, "obtain", dict, where, required=False, default={}), f"{where}.obtain")
    reader = build_reader(expect(data, "reader", dict, where), f"{where}.reader")
    joins = [_join(j, f"{where}.joins[{i}]") for i, j in enumerate(expect(data, "joins", list, where, False, []))]
    derive = {}
    for key, rule in expect(data, "derive", dict, where, False, {}).items():
        at = f"{where}.derive.{key}"
        if not isinstance(rule, dict) or len({"values", "match"} & set(rule)) != 1:
            raise CardError(f"{at}: expected a mapping with `from` and exactly one of `values` or `match`")
        reject_unknown(rule, ("from", "values", "match"), at)
        matches = [(compile_pattern(p, f"{at}.match"), n) for p, n in _str_map(rule["match"], at).items()] \
            if "match" in rule else None
        values = _str_map(rule["values"], f"{at}.values") if "values" in rule else None
        derive[str(key)] = Derived(expect(rule, "from", str, at), values, matches)
    classes = expect(data, "classes", list, where)
    targets = {"default": _target(expect(data, "label", (str, dict), where), classes, f"{where}.label")}
    for key, spec in expect(data, "targets", dict, where, False, {}).items():
        at = f"{where}.targets.{key}"
        if not isinstance(spec, dict):
            raise CardError(f"{at}: expected a mapping with label, classes (and description)")
        reject_unknown(spec, ("label", "classes", "description"), at)
        targets[str(key)] = _target(spec.get("label"), spec.get("classes"), at, str(spec.get("description", "")))
    templates = {"clip_id": expect(data, "clip_id", str, where), "speaker": expect(data, "speaker", str, where)}
    for key in ("text", "session", "split"):
        if expect(data, key, str, where, required=False) is not None:
            templates[key] = data[key]
    columns = _str_map(expect(data, "columns", dict, where, False, {}), f"{where}.columns")
    polarity = _str_map(expect(data, "polarity", dict, where, False, {}), f"{where}.polarity")
    bad = {c: p for c, p in polarity.items() if c not in classes or p not in ("positive", "negative", "neutral")}
    if bad:
        raise CardError(f"{where}.polarity: {bad}: keys must be classes, values positive/negative/neutral")
    card = Card(path, data, reader, joins, derive, targets, templates, columns)
    _check_templates(card)
    card.to_spec()  # validates the protocols
    return card


def _join(value: Any, where: str) -> Join:
    if not isinstance(value, dict):
        raise CardError(f"{where}: expected a mapping with file, key, lookup, columns")
    reject_unknown(value, ("file", "key", "lookup", "columns", "required"), where)
    return Join(expect(value, "file", str, where), expect(value, "key", str, where),
                expect(value, "lookup", str, where), _str_map(expect(value, "columns", dict, where), where),
                bool(value.get("required", False)))


def _validate_obtain(obtain: dict[str, Any], where: str) -> None:
    reject_unknown(obtain, ("instructions", "archives", "checksums", "requires_request"), where)
    for i, archive in enumerate(expect(obtain, "archives", list, where, False, [])):
        at = f"{where}.archives[{i}]"
        if not isinstance(archive, dict):
            raise CardError(f"{at}: expected a mapping with name (url, size, sha256, extract)")
        reject_unknown(archive, ("name", "url", "size", "approx_size", "sha256", "extract"), at)
        expect(archive, "name", str, at)
        expect(archive, "url", str, at, required=False)
        expect(archive, "size", int, at, required=False)
        sha = expect(archive, "sha256", str, at, required=False)
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise CardError(f"{at}.sha256: expected 64 lower-case hex digits")
    for rel, sha in expect(obtain, "checksums", dict, where, False, {}).items():
        if not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
            raise CardError(f"{where}.checksums.{rel}: expected 64 lower-case hex digits")


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


def load_cards(directory: Path) -> list[Card]:
    return [parse_card(path) for path in sorted(Path(directory).glob("*.yaml"))]


def register_card_dir(directory: Path) -> list[DatasetSpec]:
    """Register every card in a folder (later folders override earlier ones with the same name, on purpose)."""
    return [register_dataset(card.to_spec(), replace=True) for card in load_cards(directory)]


for _directory in default_card_dirs():
    register_card_dir(_directory)
