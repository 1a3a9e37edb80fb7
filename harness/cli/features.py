"""`harness features import | list`: store features you already have, list what the feature store holds."""

from __future__ import annotations

import argparse

from harness.cli.common import add_settings_flags, deprecated, fail, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    features = subparsers.add_parser("features", help="import your own features, list stored features")
    actions = features.add_subparsers(dest="features_command", required=True)
    imp = actions.add_parser("import", help="store a table of pre-extracted features (NPZ, Parquet, CSV)",
                             description="Store a table keyed by clip id like an extracted feature, so every "
                                         "method can use it by --name. Never loads pickle.")
    imp.add_argument("--dataset", required=True)
    imp.add_argument("--name", required=True, help="the feature name methods will refer to")
    imp.add_argument("--modality", choices=("audio", "video", "text"), default=None)
    imp.add_argument("--store", default=None, help="feature store path or URI (default: settings)")
    imp.add_argument("file")
    add_settings_flags(imp)
    imp.set_defaults(func=cmd_import)
    listing = actions.add_parser("list", help="stored features (dataset, name, key, clips, failures)")
    listing.add_argument("--dataset", default=None)
    listing.add_argument("--store", default=None, help="feature store path or URI (default: settings)")
    add_settings_flags(listing)
    listing.set_defaults(func=cmd_list)
    names = actions.add_parser("list-extractors", help="deprecated: use `harness list extractors`")
    add_settings_flags(names)
    names.set_defaults(func=cmd_list_extractors)


def cmd_import(args: argparse.Namespace) -> int:
    from harness.features.commands import InputError, run_import

    try:
        return run_import(settings_from_args(args), args.dataset, args.name, args.file, modality=args.modality,
                          store_uri=args.store)
    except InputError as error:
        return fail(args, str(error))


def cmd_list(args: argparse.Namespace) -> int:
    from harness.features.commands import run_list

    return run_list(settings_from_args(args), dataset=args.dataset, store_uri=args.store)


def cmd_list_extractors(args: argparse.Namespace) -> int:
    from harness.cli.listing import cmd_list as list_registries

    deprecated(args, "features list-extractors", "harness list extractors")
    return list_registries(argparse.Namespace(what="extractors"))
