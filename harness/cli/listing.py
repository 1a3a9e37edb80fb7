"""`harness list [methods|datasets|extractors|protocols]`: what the registries hold, sorted by name."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from harness.cli.common import add_settings_flags

KINDS: tuple[str, ...] = ("all", "methods", "datasets", "extractors", "protocols")


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("list", help="list methods, datasets, extractors and protocols")
    listing.add_argument("what", nargs="?", default="all", choices=KINDS)
    add_settings_flags(listing)
    listing.set_defaults(func=cmd_list)


def _section(title: str, names: list[str], line: Callable[[str], str]) -> None:
    print(title)
    for name in names:
        print(line(name))


def cmd_list(args: argparse.Namespace) -> int:
    from harness.datasets import dataset_names, get_dataset
    from harness.features.base import describe_options, describe_training, extractor_names, get_extractor
    from harness.protocols import get_protocol, protocol_names
    from methods import get_method, method_names

    def method(name: str) -> str:
        spec = get_method(name)
        return f"  {'*' if spec.in_default_suite else ' '} {name:34s} {spec.cls.family:10s} {spec.description}"

    def dataset(name: str) -> str:
        spec = get_dataset(name)
        return f"    {name:14s} {spec.protocol.label():32s} {spec.title}"

    def extractor(name: str) -> str:
        cls = get_extractor(name)
        options = "".join(f"\n    {'':22s}   {line}" for line in describe_options(cls))
        return (f"    {name:22s} {cls.modality:6s} {cls.output or '-':18s} {cls.description}\n"
                f"    {'':22s} trained on: {describe_training(cls.trained_on)}\n"
                f"    {'':22s} options (name: type = default):{options or ' none'}")

    def protocol(name: str) -> str:
        return f"    {name:24s} {get_protocol(name).description}"

    sections = {
        "methods": ("methods (* = in the default suite of `harness run --all`):", method_names, method),
        "datasets": ("datasets:", dataset_names, dataset),
        "extractors": ("extractors (trained on: the corpora the default weights saw; a result on one of them is "
                       "flagged as contaminated):", extractor_names, extractor),
        "protocols": ("protocols:", protocol_names, protocol),
    }
    for kind, (title, names, line) in sections.items():
        if args.what in (kind, "all"):
            _section(title, names(), line)
    return 0
