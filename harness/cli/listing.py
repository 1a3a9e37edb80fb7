"""`harness list [methods|datasets|extractors|protocols]`: what the registries hold, sorted by name."""

from __future__ import annotations

import argparse

from harness.cli.common import add_settings_flags

KINDS: tuple[str, ...] = ("all", "methods", "datasets", "extractors", "protocols")


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("list", help="list methods, datasets, extractors and protocols")
    listing.add_argument("what", nargs="?", default="all", choices=KINDS)
    add_settings_flags(listing)
    listing.set_defaults(func=cmd_list)


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
            print(f"    {name:22s} {cls.modality:6s} {cls.output or '-':18s} {cls.description}")
    if what in ("protocols", "all"):
        print("protocols:")
        for name in protocol_names():
            protocol = get_protocol(name)
            print(f"    {name:24s} {protocol.description}")
    return 0
