"""Bring your own features: store a table of pre-extracted features like an extracted feature.

Accepted files (never pickle):
  NPZ      `clip_id` [N] and `pooled` [N, D], and/or `sequence` with `lengths` [N] (sequence either
           concatenated [sum(lengths), D] or padded [N, T_max, D]).
  Parquet  a `clip_id` column and numeric feature columns. One row per clip = pooled vectors; several rows
  / CSV    per clip = a sequence (ordered by a `frame` or `timestamp` column when present, e.g. OpenFace CSVs);
           the pooled vector is then the frame mean. Other non-numeric columns are ignored and reported.
Rows for clip ids that the manifest lacks are reported and not stored; manifest clips absent from the file,
and rows with wrong shapes or non-finite values, become failure rows (stage "import"), so methods see the
missing modality instead of a silently shorter dataset.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.features.base import Features
from harness.features.store import FeatureStore
from harness.hashing import stable_hash
from harness.manifest import Manifest

ORDER_COLUMNS = ("frame", "timestamp")
SHARD_ROWS = 1000


class ImportFormatError(ValueError):
    """The file cannot be read as a feature table; the message names the file and the expected layout."""


@dataclass
class ImportReport:
    dataset: str
    name: str
    location: str
    n_stored: int
    unknown_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    bad_rows: list[tuple[str, str]] = field(default_factory=list)  # (clip_id, reason)
    ignored_columns: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"[features] imported {self.n_stored} clips as {self.dataset}/{self.name} into {self.location}"]
        if self.unknown_ids:
            lines.append(f"  {len(self.unknown_ids)} row(s) for clip ids not in the manifest (not stored), "
                         f"e.g. {self.unknown_ids[:5]}")
        if self.missing_ids:
            lines.append(f"  {len(self.missing_ids)} manifest clip(s) absent from the file (stored as failures), "
                         f"e.g. {self.missing_ids[:5]}")
        for clip_id, reason in self.bad_rows[:10]:
            lines.append(f"  rejected {clip_id}: {reason}")
        if len(self.bad_rows) > 10:
            lines.append(f"  ... and {len(self.bad_rows) - 10} more rejected rows")
        if self.ignored_columns:
            lines.append(f"  ignored non-numeric columns: {self.ignored_columns}")
        return "\n".join(lines)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """{clip_id: sequence [T, D]} (pooled vectors become [1, D] with `pooled_only`), plus per-id problems."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except ValueError as error:
        raise ImportFormatError(f"{path}: not a pickle-free NPZ ({error}); save with numpy.savez and string "
                                "or numeric arrays only") from error
    if "clip_id" not in data:
        raise ImportFormatError(f"{path}: needs a `clip_id` array (and `pooled` [N, D] or `sequence` + "
                                f"`lengths`); it has {sorted(data)}")
    ids = [str(i) for i in data["clip_id"].tolist()]
    duplicated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicated:
        raise ImportFormatError(f"{path}: clip ids occur more than once, e.g. {duplicated[:5]}; an NPZ holds one "
                                "entry per clip (for several frames per clip use `sequence` + `lengths`)")
    if "sequence" in data:
        if "lengths" not in data or len(data["lengths"]) != len(ids):
            raise ImportFormatError(f"{path}: `sequence` needs `lengths` with one entry per clip_id")
        lengths = data["lengths"].astype(int)
        seq = data["sequence"]
        if seq.ndim == 3:
            if len(seq) != len(ids) or (lengths > seq.shape[1]).any() or (lengths < 0).any():
                raise ImportFormatError(f"{path}: padded `sequence` {seq.shape} needs one row per clip_id "
                                        f"({len(ids)}) and 0 <= lengths <= {seq.shape[1]}; the largest length "
                                        f"is {lengths.max()}")
            parts = [seq[i, :n] for i, n in enumerate(lengths)]
        elif seq.ndim == 2 and lengths.sum() == len(seq):
            parts = np.split(seq, np.cumsum(lengths)[:-1])
        else:
            raise ImportFormatError(f"{path}: `sequence` {seq.shape} matches neither padded [N, T, D] nor "
                                    f"concatenated [sum(lengths)={lengths.sum()}, D]")
        return dict(zip(ids, _numeric(path, "sequence", parts), strict=True)), {}, []
    if "pooled" not in data or data["pooled"].ndim != 2 or len(data["pooled"]) != len(ids):
        raise ImportFormatError(f"{path}: `pooled` must be [N={len(ids)}, D]")
    _numeric(path, "pooled", [data["pooled"]])
    return {i: row[None] for i, row in zip(ids, data["pooled"], strict=True)}, {}, []


def _numeric(path: Path, key: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """`arrays` if they hold numbers (ints, floats, bools), else an ImportFormatError naming the dtype."""
    for array in arrays[:1]:  # one array of an NPZ key: they share the key's dtype
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ImportFormatError(f"{path}: `{key}` holds {array.dtype} values; features must be numeric "
                                    "(save them with dtype float32)")
    return arrays


def _read_table(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    table = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    table.columns = [str(c).strip() for c in table.columns]  # OpenFace writes " confidence", " AU01_r", ...
    if "clip_id" not in table:
        raise ImportFormatError(f"{path}: needs a `clip_id` column; it has {list(table.columns)[:10]}")
    order = next((c for c in ORDER_COLUMNS if c in table), None)
    numeric = [c for c in table.columns if c not in ("clip_id", order) and pd.api.types.is_numeric_dtype(table[c])]
    ignored = [c for c in table.columns if c not in ("clip_id", order) and c not in numeric]
    if not numeric:
        raise ImportFormatError(f"{path}: no numeric feature columns besides clip_id")
    table["clip_id"] = table["clip_id"].astype(str)
    if order:
        table = table.sort_values(["clip_id", order], kind="stable")
    sequences = {clip_id: group[numeric].to_numpy(np.float32)
                 for clip_id, group in table.groupby("clip_id", sort=False)}
    return sequences, {}, ignored


def read_feature_file(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """{clip_id: sequence [T, D]} from an NPZ, Parquet or CSV file, plus the ignored columns."""
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle", ".pk", ".joblib"):
        raise ImportFormatError(f"{path}: pickle files are never loaded (they can run code); convert to NPZ, "
                                "Parquet or CSV")
    if suffix == ".npz":
        sequences, _, ignored = _read_npz(path)
    elif suffix in (".parquet", ".pq", ".csv"):
        sequences, _, ignored = _read_table(path)
    else:
        raise ImportFormatError(f"{path}: unsupported format {suffix!r}; use .npz, .parquet or .csv")
    return sequences, ignored


def imported_key(manifest: Manifest, file_digest: str) -> str:
    return stable_hash({"manifest": manifest.fingerprint(), "imported": file_digest})


def import_features(manifest: Manifest, name: str, path: str | Path, store: FeatureStore,
                    modality: str | None = None) -> ImportReport:
    """Validate `path` against the manifest and store it as feature `name` of the manifest's dataset."""
    from harness.features.base import extractor_names
    from harness.names import check_name

    check_name("--name", name)  # a path segment of the feature store (local or S3): no "..", "/" or empty name
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such feature file")
    if name in extractor_names():
        raise ValueError(f"{name!r} is a built-in extractor name; choose another name for imported features")
    sequences, ignored = read_feature_file(path)
    known = set(manifest.ids)
    report = ImportReport(manifest.dataset, name, "", 0, ignored_columns=ignored,
                          unknown_ids=sorted(set(sequences) - known),
                          missing_ids=[i for i in manifest.ids if i not in sequences])
    dims = pd.Series([s.shape[-1] for s in sequences.values() if s.ndim == 2]).mode()
    dim = int(dims.iloc[0]) if len(dims) else 0
    if dim < 1:  # every unit would fail on empty vectors; one line here instead of thousands later
        raise ImportFormatError(f"{path}: the features have dimension {dim}; each clip needs D >= 1 values")
    ids, features, failures = [], [], [(i, "import", f"clip absent from {path.name}") for i in report.missing_ids]
    for clip_id in manifest.ids:
        if clip_id not in sequences:
            continue
        seq = sequences[clip_id]
        reason = None
        if seq.ndim != 2 or seq.shape[1] != dim or len(seq) == 0:
            reason = f"shape {seq.shape} does not match the file's feature dimension {dim}"
        elif not np.isfinite(seq).all():
            reason = "non-finite values (NaN or inf)"
        if reason:
            report.bad_rows.append((clip_id, reason))
            failures.append((clip_id, "import", reason))
            continue
        ids.append(clip_id)
        features.append(Features(sequence=seq, pooled=seq.mean(axis=0)))
    if not ids:  # storing it would make an empty import the newest under this name, hiding a good one
        raise ImportFormatError(
            f"{path}: no clip could be imported into {manifest.dataset} ({len(report.unknown_ids)} ids not in the "
            f"manifest, e.g. {report.unknown_ids[:3]}; {len(report.bad_rows)} rejected rows); nothing was stored. "
            f"The clip_id values must be the manifest's (`harness data scan {manifest.dataset}` lists them)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    key = imported_key(manifest, digest)
    entry = store.entry(manifest.dataset, name, key)
    store.write_spec(entry, {"dataset": manifest.dataset, "extractor": name, "imported": True,
                             "source": str(path.resolve()), "file_sha256": digest, "modality": modality,
                             "manifest": manifest.fingerprint(), "dim": dim,
                             "imported_at": time.time()})
    for start in range(0, max(len(ids), len(failures), 1), SHARD_ROWS):
        store.write_shard(entry, ids[start:start + SHARD_ROWS], features[start:start + SHARD_ROWS],
                          failures[start:start + SHARD_ROWS])
    report.n_stored = len(ids)
    report.location = store.describe(manifest.dataset, name, key)
    return report


def find_imported(manifest: Manifest, name: str, store: FeatureStore) -> tuple[str, str] | None:
    """(entry, key) of the newest import of `name` for exactly this manifest, if any."""
    matches = [e for e in store.entries() if e.get("imported") and e.get("dataset") == manifest.dataset
               and e.get("extractor") == name and e.get("manifest") == manifest.fingerprint()]
    if not matches:
        return None
    entry = max(matches, key=lambda e: e.get("imported_at", 0))["entry"]
    return entry, entry.rsplit("/", 1)[-1]


def imported_modalities(manifest: Manifest, store: FeatureStore,
                        features: Mapping[str, str] | None = None) -> dict[str, str]:
    """{modality: feature name} for the modalities that imported features supply for exactly this manifest.

    A modality can come from imported features alone (OpenFace action units for a corpus whose videos are not
    on disk), so the pipeline adds these to the modalities it finds in the manifest's media.

    features: the run's modality -> feature-name choice (`--features video=NAME`). When given, a modality is
              returned when its chosen name is an import of this manifest (built-in extractor names never
              are); an import declared for another modality (`features import --modality`) is an error
              naming both. When None, every import that declared a modality counts, the newest per modality.
    """
    from harness.features.base import extractor_names

    imports = [e for e in store.entries() if e.get("imported") and e.get("dataset") == manifest.dataset
               and e.get("manifest") == manifest.fingerprint()]
    if features is None:
        newest: dict[str, dict] = {}
        for spec in imports:
            modality = spec.get("modality")
            if modality and spec.get("imported_at", 0) >= newest.get(modality, {}).get("imported_at", 0):
                newest[modality] = spec
        return {modality: spec["extractor"] for modality, spec in sorted(newest.items())}
    found: dict[str, str] = {}
    builtin = set(extractor_names())
    for modality, name in features.items():
        if name in builtin:
            continue
        matches = [e for e in imports if e.get("extractor") == name]
        if not matches:
            continue
        declared = max(matches, key=lambda e: e.get("imported_at", 0)).get("modality")
        if declared and declared != modality:
            raise ValueError(f"imported features {name!r} of {manifest.dataset} were imported as {declared} "
                             f"(`harness features import --modality {declared}`), but the run uses them for "
                             f"{modality}; use {declared}={name}, or import the file again with --modality "
                             f"{modality}")
        found[modality] = name
    return found


def imported_feature_names(store: FeatureStore, datasets: list[str] | None = None) -> set[str]:
    """Names under which features were imported into `store` (for these datasets, any target or manifest).

    Cheap enough to run before Ray starts: `harness run --features audio=NAME` with a NAME that is neither an
    extractor nor among these is a one-line usage error instead of a traceback after start-up.
    """
    wanted = None if datasets is None else {d.split("@")[0] for d in datasets}
    return {str(e.get("extractor")) for e in store.entries() if e.get("imported")
            and (wanted is None or str(e.get("dataset", "")).split("@")[0] in wanted)}


def unknown_feature_names(features: Mapping[str, str], store: FeatureStore,
                          datasets: list[str] | None = None) -> str | None:
    """None when every `modality=NAME` choice is an extractor or an import; else one line saying which is
    neither, listing the extractors and how to import features under that name."""
    from harness.features.base import extractor_names

    known = set(extractor_names())
    unknown = {m: n for m, n in features.items() if n not in known}
    if not unknown:
        return None
    imported = imported_feature_names(store, datasets)
    for modality, name in sorted(unknown.items()):
        if name not in imported:
            where = ", ".join(datasets) if datasets else "any dataset"
            example = datasets[0] if datasets else "DATASET"
            return (f"--features {modality}={name}: {name!r} is neither an extractor nor features imported for "
                    f"{where} in {store.root}; extractors: {', '.join(sorted(known))}; or import a table first: "
                    f"`harness features import --dataset {example} --name {name} --modality {modality} FILE`")
    return None
