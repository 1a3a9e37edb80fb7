"""`harness report`: render the leaderboard (Markdown, HTML, CSV, figures) from MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import UsageError, add_settings_flags, settings_from_args
from harness.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="render the leaderboard (Markdown, HTML, CSV, figures) from MLflow")
    report.add_argument("--out", type=Path, help="output folder (default: reports/)")
    add_settings_flags(report)
    report.set_defaults(func=cmd_report)


def render(settings: Settings) -> None:
    """Render and say where the files are; no finished runs is a usage error (nothing to render yet)."""
    from harness.report.leaderboard import render as render_board

    try:
        board = render_board(settings.tracking_uri, settings.experiment, settings.reports_dir)
    except LookupError as error:
        raise UsageError(str(error)) from None
    print(f"[report] leaderboard: {board.paths['md']} and {board.paths['html']} "
          f"({len(board.table)} results); figures in {settings.reports_dir / 'figures'}")
    print(f"[report] browse every run: mlflow ui --backend-store-uri {settings.tracking_uri}")


def cmd_report(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.out:
        settings = settings.with_(reports_dir=args.out)
    render(settings)
    return 0
