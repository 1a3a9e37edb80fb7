"""`harness data list | scan NAME | verify NAME | fetch NAME`: find, read, check and download corpora.

Data folders come from `Settings`: `<data_root>/<name>` unless overridden per dataset by `--data-dir NAME=PATH`,
the environment (`HARNESS_DATA_<NAME>`, e.g. HARNESS_DATA_CREMA_D) or a settings file. Manifests are written to
the workspace, where `harness run` reads them. The flags are parsed in `harness.cli.data`; these functions take
resolved settings and return the exit status.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from harness.config import Settings
from harness.corpus import how_to_obtain
from harness.datasets import DatasetSpec, broken_cards, dataset_names, get_dataset
from harness.manifest import Manifest


def cmd_list(settings: Settings) -> int:
    rows = []
    for name in dataset_names():
        spec = get_dataset(name)
        root = settings.data_dir(name)
        found = spec.is_present(root)
        rows.append({"dataset": name, "found": "found" if found else "not found", "looked in": str(root),
                     "protocol": spec.protocol.label(), "modalities": ",".join(spec.modalities),
                     "to obtain": "" if found else how_to_obtain(spec)})
    broken = broken_cards()
    for name in broken:
        rows.append({"dataset": name, "found": "BROKEN CARD", "looked in": str(settings.data_dir(name)),
                     "protocol": "", "modalities": "", "to obtain": "fix the card (below)"})
    rows.sort(key=lambda r: r["dataset"])
    widths = {key: max(len(key), *(len(r[key]) for r in rows)) for key in rows[0]}
    print("  ".join(key.ljust(w) for key, w in widths.items()).rstrip())
    for row in rows:
        print("  ".join(row[key].ljust(w) for key, w in widths.items()).rstrip())
    for name, error in broken.items():
        print(f"broken card {name}: {error}", file=sys.stderr)
    return 0


def _scan(spec: DatasetSpec, settings: Settings, target: str | None = None) -> Manifest:
    from harness.corpus import locate

    root = locate(settings, spec)
    if target is None:
        return spec.scan(root)
    if spec.scan_target is None or target not in spec.targets:
        raise KeyError(f"{spec.name}: no target {target!r}; the card defines {sorted(spec.targets) or 'none'}")
    return spec.scan_target(root, target)


def _counts(title: str, counts: pd.Series, limit: int = 40) -> None:
    print(f"\n{title} ({len(counts)}):")
    shown = counts if len(counts) <= limit else counts.sort_values(ascending=False, kind="stable").head(limit)
    print("  " + "  ".join(f"{k}: {v}" for k, v in shown.items()))
    if len(counts) > limit:
        print(f"  (the {limit} largest shown) ... {len(counts) - limit} more, with {counts.min()} to "
              f"{counts.sort_values().iloc[len(counts) - limit - 1]} clips each")


def report_problems(manifest: Manifest, limit: int = 30, where: Path | None = None) -> None:
    problems = manifest.problems
    if problems.empty:
        print("\nproblems: none")
        return
    by_design = problems["reason"].astype(str).str.contains("excluded by design")
    stream = sys.stderr if (~by_design).any() else sys.stdout
    print(f"\n{'PROBLEMS' if (~by_design).any() else 'excluded'}: {len(problems)} rows"
          + (f" (all in {where})" if where else ""), file=stream)
    print(problems.head(limit).to_string(index=False), file=stream)
    if len(problems) > limit:
        print(f"... {len(problems) - limit} more", file=stream)


def cmd_scan(settings: Settings, name: str, target: str | None = None) -> int:
    spec = get_dataset(name)
    root = settings.data_dir(name)
    try:
        manifest = _scan(spec, settings, target)
    except (FileNotFoundError, KeyError) as error:
        print(f"error: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 1
    out = settings.manifest_dir(manifest.dataset)
    manifest.save(out)
    table = manifest.table
    print(f"{manifest.dataset}: {len(manifest)} clips from {root} -> {out}")
    print(f"protocol: {spec.protocol.label()}; headline metric: {spec.headline_metric}")
    present = manifest.modalities()
    absent = [m for m in spec.modalities if m not in present]
    print("modalities: " + ", ".join(f"{m} ({int(manifest.has_modality(m).sum())} clips)" for m in present)
          + (f"; ABSENT: {', '.join(absent)}" if absent else ""))
    _counts("classes", manifest.class_counts())  # in class order, zero counts included
    _counts("speakers", table["speaker"].astype(str).value_counts().sort_index())
    if table["split"].notna().any():
        _counts("splits", table["split"].fillna("(none)").astype(str).value_counts().sort_index())
    report_problems(manifest, where=out / "problems.csv")
    from harness.corpus import CorpusUnusable, check_classes, check_scan

    try:
        check_scan(manifest, out / "problems.csv")
        check_classes(manifest, str(spec.card or spec.source or spec.name))
    except CorpusUnusable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _decode(manifest: Manifest, row: pd.Series) -> list[tuple[str, str]]:
    from harness.media import MediaError, load_audio

    failures = []
    for column in ("audio_path", "video_path"):
        path = manifest.resolve(row[column])
        if path is None:
            continue
        try:
            if column == "audio_path":
                load_audio(path)
            else:
                _probe_video(path)
        except (MediaError, OSError, ValueError) as error:
            failures.append((str(row[column]), f"not decodable: {error}"))
    return failures


def _probe_video(path: Path) -> None:
    """Decode the first video frame: enough to catch truncated or mislabelled files cheaply."""
    import av

    try:
        with av.open(str(path)) as container:
            next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration) as error:
        raise ValueError(f"{path}: {error or 'no video frames'}") from error


def decode_summary(decoded: int, failed: int, attempted: bool = True) -> str:
    """"N decoded" only when every clip tried decoded, else "N decoded, K failed" (a count that hid failures
    read as a clean bill of health)."""
    if not attempted:
        return "decoding skipped (--no-decode)"
    return f"{decoded} decoded" + (f", {failed} failed" if failed else "")


def cmd_verify(settings: Settings, name: str, decode: bool = True, limit: int | None = None) -> int:
    from harness.datasets.fetch import DOWNLOADS, sha256_of

    spec = get_dataset(name)
    root = settings.data_dir(name)
    try:
        manifest = _scan(spec, settings)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    failures: list[tuple[str, str]] = [(p, r) for p, r in manifest.problems.itertuples(index=False)
                                       if "excluded by design" not in str(r)]
    checksums = dict(spec.obtain.get("checksums", {}))
    checksums.update({f"{DOWNLOADS}/{a['name']}": a["sha256"] for a in spec.obtain.get("archives", [])
                      if a.get("sha256") and (root / DOWNLOADS / a["name"]).exists()})
    for relative, expected in checksums.items():
        path = root / relative
        if not path.exists():
            failures.append((relative, "missing (the card lists its checksum)"))
        elif sha256_of(path) != expected:
            failures.append((relative, f"SHA-256 mismatch (expected {expected})"))
    decoded = undecodable = 0
    if decode:
        rows = manifest.table if limit is None else manifest.table.head(limit)
        for _, row in rows.iterrows():
            failed = _decode(manifest, row)
            failures += failed
            undecodable += bool(failed)
            decoded += not failed
    print(f"{name}: {len(manifest)} clips, {decode_summary(decoded, undecodable, decode)}, "
          f"{len(checksums)} checksums checked")
    if not failures:
        print("verify: OK")
        return 0
    table = pd.DataFrame(failures, columns=["path", "reason"])
    out = settings.manifest_dir(manifest.dataset)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "verify_failures.csv", index=False)
    print(f"verify: {len(table)} FAILURES (all in {out / 'verify_failures.csv'})", file=sys.stderr)
    print(table.head(30).to_string(index=False), file=sys.stderr)
    return 1


def cmd_fetch(settings: Settings, name: str, mirror: str | None = None) -> int:
    from harness.datasets.fetch import FetchError, fetch

    spec = get_dataset(name)
    root = settings.data_dir(name)
    try:
        fetch(spec, root, mirror=mirror)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    found = spec.is_present(root)
    print(f"{name}: fetched into {root}; " + (f"now run `harness data scan {name}`" if found else
                                                   "but the card's `present` paths are still missing: check "
                                                   "the layout"))
    return 0 if found else 1
