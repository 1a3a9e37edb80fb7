"""`harness data list | scan NAME | verify NAME | fetch NAME`: find, read, check and download corpora.

Data folders come from `Settings`: `<data_root>/<name>` unless overridden per dataset by `--data-dir`, the
environment (`HARNESS_DATA_<NAME>`, e.g. HARNESS_DATA_CREMA_D) or a config. Manifests are written to the
workspace, where `harness run` reads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness.config import Settings
from harness.datasets import DatasetSpec, dataset_names, get_dataset
from harness.manifest import Manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command and its sub-commands to a CLI's subparsers."""
    data = subparsers.add_parser("data", help="list, scan, verify and fetch corpora",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = data.add_subparsers(dest="data_command", metavar="{list,scan,verify,fetch}", required=True)

    def common(parser: argparse.ArgumentParser, named: bool = True) -> None:
        # SUPPRESS: never overwrite the same options given to a parent parser.
        parser.add_argument("--data-root", type=Path, default=argparse.SUPPRESS,
                            help="folder holding <name>/ for every corpus (default: datasets, or $HARNESS_DATA_ROOT)")
        parser.add_argument("--workspace", type=Path, default=argparse.SUPPRESS,
                            help="where manifests are written (default: .harness, or $HARNESS_WORKSPACE)")
        if named:
            parser.add_argument("name", help="dataset name (see `harness data list`)")
            parser.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                                help="this dataset's folder (overrides <data-root>/<name> and $HARNESS_DATA_<NAME>)")

    listing = commands.add_parser("list", help="the dataset cards, where each corpus is looked for, found or not")
    common(listing, named=False)
    listing.set_defaults(func=cmd_list)

    scan = commands.add_parser("scan", help="build the manifest; print counts per class, speaker, split; "
                                            "list problems")
    common(scan)
    scan.add_argument("--target", default=None, help="an alternative label set the card defines")
    scan.set_defaults(func=cmd_scan)

    verify = commands.add_parser("verify", help="check that files are present, decodable and match checksums")
    common(verify)
    verify.add_argument("--no-decode", action="store_true", help="check presence and checksums only")
    verify.add_argument("--limit", type=int, default=None, help="decode at most this many clips")
    verify.set_defaults(func=cmd_verify)

    fetch = commands.add_parser("fetch", help="download (resumably), check and extract a corpus with a public URL")
    common(fetch)
    fetch.add_argument("--mirror", default=None, help="base URL to fetch the card's archive names from instead")
    fetch.set_defaults(func=cmd_fetch)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {"data_root": getattr(args, "data_root", None), "workspace": getattr(args, "workspace", None)}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dirs"] = {args.name: args.data_dir}
    return Settings.from_env(**overrides)


def _how_to_obtain(spec: DatasetSpec) -> str:
    if any(a.get("url") for a in spec.obtain.get("archives", [])):
        return f"harness data fetch {spec.name}"
    if spec.builtin:
        return f"harness data scan {spec.name} (generated)"
    return f"by hand: {spec.homepage or spec.source}"


def cmd_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rows = []
    for name in dataset_names():
        spec = get_dataset(name)
        root = settings.data_dir(name)
        found = spec.is_present(root)
        rows.append({"dataset": name, "found": "found" if found else "not found", "looked in": str(root),
                     "protocol": spec.protocol.label(), "modalities": ",".join(spec.modalities),
                     "to obtain": "" if found else _how_to_obtain(spec)})
    widths = {key: max(len(key), *(len(r[key]) for r in rows)) for key in rows[0]}
    print("  ".join(key.ljust(w) for key, w in widths.items()).rstrip())
    for row in rows:
        print("  ".join(row[key].ljust(w) for key, w in widths.items()).rstrip())
    return 0


def _scan(spec: DatasetSpec, root: Path, target: str | None = None) -> Manifest:
    if spec.prepare is not None and not spec.is_present(root):
        spec.prepare(root)
    if not spec.is_present(root):
        raise FileNotFoundError(f"{spec.name}: not found in {root}. Obtain it ({_how_to_obtain(spec)}) or point "
                                f"--data-dir / HARNESS_DATA_{spec.name.upper().replace('-', '_')} at it")
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


def cmd_scan(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    spec = get_dataset(args.name)
    root = settings.data_dir(args.name)
    try:
        manifest = _scan(spec, root, args.target)
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


def cmd_verify(args: argparse.Namespace) -> int:
    from harness.datasets.fetch import DOWNLOADS, sha256_of

    settings = settings_from(args)
    spec = get_dataset(args.name)
    root = settings.data_dir(args.name)
    try:
        manifest = _scan(spec, root)
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
    decoded = 0
    if not args.no_decode:
        rows = manifest.table if args.limit is None else manifest.table.head(args.limit)
        for _, row in rows.iterrows():
            failures += _decode(manifest, row)
            decoded += 1
    print(f"{args.name}: {len(manifest)} clips, {decoded} decoded, {len(checksums)} checksums checked")
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


def cmd_fetch(args: argparse.Namespace) -> int:
    from harness.datasets.fetch import FetchError, fetch

    settings = settings_from(args)
    spec = get_dataset(args.name)
    root = settings.data_dir(args.name)
    try:
        fetch(spec, root, mirror=args.mirror)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    found = spec.is_present(root)
    print(f"{args.name}: fetched into {root}; " + (f"now run `harness data scan {args.name}`" if found else
                                                   "but the card's `present` paths are still missing: check "
                                                   "the layout"))
    return 0 if found else 1
