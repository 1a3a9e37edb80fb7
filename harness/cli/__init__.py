"""`harness`: the command line. The only package that parses flags; one module per command.

Nothing heavy is imported at start (so `harness --help` is instant); each command imports what it needs when it
runs. Every command takes the shared settings flags of `harness.cli.common` (`--config FILE`, `--data-root`,
`--data-dir NAME=PATH`, ...). A usage error is one line on stderr and exit status 2, raised as `UsageError` or
returned by `common.fail`. Command modules call the engine (`harness.pipeline`, `harness.data_commands`,
`harness.features.commands`, ...); nothing outside this package imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.cli.common import UsageError, add_settings_flags, fail, settings_from_args

__all__ = ["COMMAND_MODULES", "UsageError", "add_settings_flags", "build_parser", "main", "settings_from_args"]

# One module per command, in the order `harness --help` lists them; each has `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "harness.cli.run",
    "harness.cli.report",
    "harness.cli.listing",
    "harness.cli.data",
    "harness.cli.extract",
    "harness.cli.features",
    "harness.cli.e2e",
    "harness.cli.robustness",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark multimodal emotion recognition fusion methods under one protocol "
                    "(features on Ray, tuning on Ray Tune, results in MLflow, leaderboard in reports/).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness.interrupt import EXIT_INTERRUPTED, EXIT_TERMINATED, sigterm_as_interrupt, was_terminated
    from harness.runtime import set_verbose

    parser = build_parser()
    args = parser.parse_args(argv)
    set_verbose(getattr(args, "verbose", False))  # read by harness.runtime when Ray starts
    sigterm_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        return fail(args, str(error))
    except KeyboardInterrupt as stop:
        terminated = was_terminated(stop)
        print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}; completed work is stored and the next "
              "run resumes from it", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
