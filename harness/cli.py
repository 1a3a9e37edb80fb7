"""`harness`: the command line. Parses flags and calls one pipeline function per command.

Nothing heavy is imported at start (so `harness --help` is instant); each command imports what it needs.
Subcommands that belong to a subsystem (data, extract, features, e2e) are registered by that subsystem's own
`commands` module through `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_TRACKING_URI, Settings, SettingsError, parse_option

# Modules that add their own subcommands via `register(subparsers)`.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "harness.data_commands",
    "harness.features.commands",
    "harness.e2e.commands",
)


class UsageError(Exception):
    """A bad name or value on the command line; printed as one line, exit status 2."""


def _key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    parsed = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"{flag} expects NAME=VALUE, got {item!r}")
        parsed[key] = value
    return parsed


def _extractor_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        name, key, value = parse_option(item, "--extractor-config")
        if not name:
            raise UsageError(f"--extractor-config expects EXTRACTOR.KEY=VALUE, got {item!r}")
        options.setdefault(name, {})[key] = value
    return options


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that reads data or results."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="a YAML settings file (see settings.example.yaml); flags and env override it")
    group = parser.add_argument_group("locations")
    group.add_argument("--data-root", type=Path, help="where corpora are looked for (default: datasets/)")
    group.add_argument("--data-dir", action="append", metavar="DATASET=PATH",
                       help="where one corpus is (repeatable; env HARNESS_DATA_<NAME>)")
    group.add_argument("--workspace", type=Path, help="manifests, folds, feature store (default: .harness/)")
    group.add_argument("--feature-store", help="feature store path or URI, e.g. s3://bucket/features")
    group.add_argument("--tracking-uri", help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI}; "
                                              "env MLFLOW_TRACKING_URI)")
    group.add_argument("--experiment", help="MLflow experiment name (default: mer-benchmark)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    data_dirs = {k: Path(v) for k, v in _key_values(getattr(args, "data_dir", None), "--data-dir").items()}
    features = _key_values(getattr(args, "features", None), "--features")
    try:
        extractor_config = _extractor_options(getattr(args, "extractor_config", None))
        return Settings.from_env(
            file=args.config, extractor_config=extractor_config or None,
            data_root=args.data_root, workspace=args.workspace, feature_store=args.feature_store,
            tracking_uri=args.tracking_uri, experiment=args.experiment,
            data_dirs=data_dirs or None, features=features or None,
            trials=getattr(args, "trials", None), seed=getattr(args, "seed", None),
            num_cpus=getattr(args, "num_cpus", None), ray_address=getattr(args, "address", None),
            speaker_norm=getattr(args, "speaker_norm", None) or None,
        )
    except SettingsError as error:
        raise UsageError(str(error)) from error


def _check_names(kind: str, names: list[str] | None, lookup: Callable[[str], object]) -> None:
    for name in names or []:
        try:
            lookup(name)
        except KeyError as error:
            raise UsageError(f"{kind}: {error.args[0]}") from None


def _check_extractors(settings: Settings, datasets: list[str] | None) -> None:
    """Unknown extractors or options, and missing weights, fail here, before Ray starts, naming the fix.

    Checked: every extractor the settings configure, and the dataset cards' defaults for the datasets asked for.
    Names that are not extractors may be imported features; the pipeline resolves those.
    """
    from harness.datasets import dataset_names, get_dataset
    from harness.features.base import ExtractorConfigError, MissingWeightsError, build_extractor, extractor_names
    from harness.pipeline import dataset_extractors

    for name in settings.extractor_config:
        if name not in extractor_names():
            raise UsageError(f"extractor_config: {name!r} is not an extractor; known: {', '.join(extractor_names())}")
    chosen = set(settings.extractor_config)  # configured extractors are checked even where no dataset uses them
    for dataset in datasets or dataset_names():
        chosen |= set(dataset_extractors(get_dataset(dataset), settings).values())
    for name in sorted(chosen & set(extractor_names())):
        try:
            build_extractor(name, settings.extractor_config.get(name)).check_weights()
        except (ExtractorConfigError, MissingWeightsError) as error:
            raise UsageError(str(error)) from None


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    methods = args.method or list(settings.methods) or None
    datasets = args.dataset or list(settings.datasets) or None
    if not args.all and not (methods or datasets):
        raise UsageError("run: give --all, or --method and/or --dataset (or methods/datasets in --config)")
    from harness.datasets import get_dataset
    from methods import get_method

    _check_names("--method", methods, get_method)
    _check_names("--dataset", datasets, get_dataset)
    _check_extractors(settings, datasets)
    from harness import pipeline

    outcome = pipeline.run(settings, methods=methods, datasets=datasets, rerun=args.rerun)
    if not args.no_report:
        try:
            _render(settings)
        except LookupError as error:
            raise UsageError(str(error)) from None
    return 1 if outcome.failed else 0


def _render(settings: Settings) -> None:
    from harness.report import render

    board = render(settings.tracking_uri, settings.experiment, settings.reports_dir)
    print(f"[report] leaderboard: {board.paths['md']} and {board.paths['html']} "
          f"({len(board.table)} results); figures in {settings.reports_dir / 'figures'}")
    print(f"[report] browse every run: mlflow ui --backend-store-uri {settings.tracking_uri}")


def cmd_report(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.out:
        settings = settings.with_(reports_dir=args.out)
    try:
        _render(settings)
    except LookupError as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from harness.datasets import dataset_names, get_dataset
    from harness.features.base import extractor_names, get_extractor
    from harness.protocols import get_protocol, protocol_names
    from methods import get_method, method_names

    what = args.what
    if what in ("methods", "all"):
        print("methods (* = in the default suite of `harness run --all`):")
        for name in method_names():
            spec = get_method(name)
            star = "*" if spec.in_default_suite else " "
            print(f"  {star} {name:34s} {spec.cls.family:10s} {spec.description}")
    if what in ("datasets", "all"):
        print("datasets:")
        for name in dataset_names():
            spec = get_dataset(name)
            print(f"    {name:14s} {spec.protocol.label():32s} {spec.title}")
    if what in ("extractors", "all"):
        print("extractors:")
        for name in extractor_names():
            cls = get_extractor(name)
            print(f"    {name:22s} {cls.modality:6s} {cls.description}")
    if what in ("protocols", "all"):
        print("protocols:")
        for name in protocol_names():
            protocol = get_protocol(name)
            print(f"    {name:24s} {protocol.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark multimodal emotion recognition fusion methods under one protocol "
                    "(features on Ray, tuning on Ray Tune, results in MLflow, leaderboard in reports/).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="tune and evaluate methods on datasets, then render the report")
    run.add_argument("--all", action="store_true", help="every default method on every corpus found")
    run.add_argument("--method", action="append", help="a method name (repeatable; see `harness list methods`)")
    run.add_argument("--dataset", action="append", help="a dataset name (repeatable; see `harness list datasets`)")
    run.add_argument("--trials", type=int, help="hyperparameter samples per (method, dataset) (default 4)")
    run.add_argument("--seed", type=int, help="seed for folds, search and training (default 0)")
    run.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (default: all)")
    run.add_argument("--address", help="Ray cluster address (default: start a local instance; env RAY_ADDRESS)")
    run.add_argument("--features", action="append", metavar="MODALITY=EXTRACTOR",
                     help="override a dataset's default extractor, e.g. audio=wav2vec2 (repeatable)")
    run.add_argument("--extractor-config", action="append", metavar="EXTRACTOR.KEY=VALUE",
                     help="an extractor option (JSON value, else a string), e.g. wav2vec2.layer=6 or "
                          "minilm.transcript=asr (repeatable; part of the feature cache key)")
    run.add_argument("--speaker-norm", action="store_true", help="z-score features per speaker (label-free)")
    run.add_argument("--rerun", action="store_true", help="recompute results even when identical ones exist")
    run.add_argument("--no-report", action="store_true", help="do not render the leaderboard at the end")
    add_settings_flags(run)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render the leaderboard (Markdown, HTML, CSV, figures) from MLflow")
    report.add_argument("--out", type=Path, help="output folder (default: reports/)")
    add_settings_flags(report)
    report.set_defaults(func=cmd_report)

    listing = sub.add_parser("list", help="list methods, datasets, extractors and protocols")
    listing.add_argument("what", nargs="?", default="all",
                         choices=["all", "methods", "datasets", "extractors", "protocols"])
    listing.set_defaults(func=cmd_list)

    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"harness {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed work is stored and the next run resumes from it", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
