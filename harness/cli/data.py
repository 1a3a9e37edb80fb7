"""`harness data list | scan NAME | verify NAME | fetch NAME`: find, read, check and download corpora.

Data folders come from the settings: `<data-root>/<name>` unless `--data-dir NAME=PATH`, the environment
(`HARNESS_DATA_<NAME>`, e.g. HARNESS_DATA_CREMA_D) or a settings file names another place. Manifests are
written to the workspace, where `harness run` reads them.
"""

from __future__ import annotations

import argparse

from harness.cli.common import add_settings_flags, check_names, settings_from_args
from harness.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command and its sub-commands; each takes the shared settings flags."""
    data = subparsers.add_parser("data", help="list, scan, verify and fetch corpora",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = data.add_subparsers(dest="data_command", metavar="{list,scan,verify,fetch}", required=True)

    def command(name: str, help: str, named: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help)
        if named:
            parser.add_argument("name", help="dataset name (see `harness data list`)")
        add_settings_flags(parser)
        return parser

    command("list", "the dataset cards, where each corpus is looked for, found or not",
            named=False).set_defaults(func=cmd_list)
    scan = command("scan", "build the manifest; print counts per class, speaker, split; list problems")
    scan.add_argument("--target", default=None, help="an alternative label set the card defines")
    scan.set_defaults(func=cmd_scan)
    verify = command("verify", "check that files are present, decodable and match checksums")
    verify.add_argument("--no-decode", action="store_true", help="check presence and checksums only")
    verify.add_argument("--limit", type=int, default=None, help="decode at most this many clips")
    verify.set_defaults(func=cmd_verify)
    fetch = command("fetch", "download (resumably), check and extract a corpus with a public URL")
    fetch.add_argument("--mirror", default=None, help="base URL to fetch the card's archive names from instead")
    fetch.set_defaults(func=cmd_fetch)


def _named(args: argparse.Namespace) -> Settings:
    """The settings, once the dataset name is known to be a registered one (else a usage error)."""
    from harness.datasets import get_dataset

    check_names("dataset", [args.name], get_dataset)
    return settings_from_args(args)


def cmd_list(args: argparse.Namespace) -> int:
    from harness import data_commands

    return data_commands.cmd_list(settings_from_args(args))


def cmd_scan(args: argparse.Namespace) -> int:
    from harness import data_commands

    return data_commands.cmd_scan(_named(args), args.name, args.target)


def cmd_verify(args: argparse.Namespace) -> int:
    from harness import data_commands

    return data_commands.cmd_verify(_named(args), args.name, decode=not args.no_decode,
                                    limit=args.limit)


def cmd_fetch(args: argparse.Namespace) -> int:
    from harness import data_commands

    return data_commands.cmd_fetch(_named(args), args.name, mirror=args.mirror)
