"""`harness extract`: extract features for a dataset into the feature store (Ray; resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import add_ray_flags, add_settings_flags, deprecated, fail, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    extract = subparsers.add_parser(
        "extract", help="extract features for a dataset (Ray; resumable; only missing clips are extracted)",
        description="Extract features for every clip of a dataset into the feature store. Re-running extracts "
                    "only clips not yet stored; failures (undecodable media, no face, silent audio) are listed. "
                    "Extractor options come from --extractor-config and the settings file's extractor_config.")
    extract.add_argument("--dataset", required=True, help="dataset name (see `harness list datasets`)")
    extract.add_argument("--extractor", required=True, action="append", dest="extractors",
                         help="extractor name; repeat for several (see `harness list extractors`)")
    extract.add_argument("--batch-size", type=int, default=16, help="clips per block/shard (default 16)")
    extract.add_argument("--workers", type=int, default=None,
                         help="encode actors (default: one per GPU, else one per CPU)")
    extract.add_argument("--gpus-per-worker", type=float, default=None,
                         help="GPUs per actor (default 1 when the cluster has GPUs, else 0)")
    extract.add_argument("--decode", choices=("auto", "tasks", "actors"), default="auto",
                         help="where Ray decodes: CPU tasks feeding the actors, or each actor its own blocks "
                              "(default auto: tasks for GPU actors, actors otherwise)")
    extract.add_argument("--local", action="store_true", help="run a sequential loop in this process, no Ray")
    extract.add_argument("--store", default=None, help="feature store path or URI (default: settings)")
    add_ray_flags(extract)
    add_settings_flags(extract, repeatable_config=True)
    extract.set_defaults(func=cmd_extract)


def split_config_flags(args: argparse.Namespace) -> list[str]:
    """`--config` is the settings file, as in every command; an `--config KEY=VALUE` item is the old spelling
    of an extractor option (kept for one release, with a note). Returns the old-style options and leaves the
    settings file (the last `--config` that names one) in `args.config`."""
    options, files = [], []
    for item in args.config or []:
        (options if "=" in str(item) else files).append(str(item))
    if options:
        deprecated(args, "--config [EXTRACTOR.]KEY=VALUE", "--extractor-config EXTRACTOR.KEY=VALUE")
    args.config = Path(files[-1]) if files else None
    return options


def cmd_extract(args: argparse.Namespace) -> int:
    import sys

    from harness.features.commands import ExtractOptions, InputError, run

    old_style = split_config_flags(args)
    settings = settings_from_args(args)
    options = ExtractOptions(args.dataset, tuple(args.extractors), tuple(old_style), store=args.store,
                             batch_size=args.batch_size, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                             decode=args.decode, local=args.local)
    try:
        report = run(settings, options)
    except InputError as error:
        return fail(args, str(error))
    for problem in report.problems:  # last, one line per extraction that made no clip or lost too many
        print(f"error: {problem}", file=sys.stderr, flush=True)
    return 1 if report.failed else 0
