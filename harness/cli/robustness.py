"""`harness robustness`: evaluate finished results with modalities missing, with corrupted test media, and
across corpora (see docs/robustness.md)."""

from __future__ import annotations

import argparse

from harness.cli.common import UsageError, add_ray_flags, add_settings_flags, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "robustness", help="missing and corrupted modalities at test time, and cross-corpus evaluation")
    command.add_argument("--missing", action="store_true",
                         help="each modality (and pair) absent, and random missing rates 0-90 %% per modality")
    command.add_argument("--corrupt", action="append", metavar="NAME",
                         help="a named media corruption at its severity levels (repeatable; see docs/robustness.md)")
    command.add_argument("--train-on", action="append", metavar="DATASET", help="cross-corpus: train on this corpus")
    command.add_argument("--test-on", action="append", metavar="DATASET",
                         help="cross-corpus: score on this corpus (every --train-on x --test-on pair runs)")
    command.add_argument("--label-map", metavar="FILE",
                         help="cross-corpus: your own class map (the format of harness/datasets/cross_corpus.yaml); "
                              "its entries win over the cards' cross_corpus declarations")
    command.add_argument("--method", action="append", help="limit to these methods (repeatable)")
    command.add_argument("--dataset", action="append", help="limit missing/corrupt to these datasets (repeatable)")
    command.add_argument("--rerun", action="store_true", help="recompute conditions even when stored ones exist")
    add_ray_flags(command)
    add_settings_flags(command)
    command.set_defaults(func=cmd_robustness)


def cmd_robustness(args: argparse.Namespace) -> int:
    if bool(args.train_on) != bool(args.test_on):
        raise UsageError("robustness: cross-corpus needs both --train-on and --test-on")
    if not (args.missing or args.corrupt or args.train_on):
        raise UsageError("robustness: give --missing, --corrupt NAME and/or --train-on A --test-on B")
    from harness.features.extractors.corrupted import CORRUPTIONS

    unknown = [name for name in args.corrupt or [] if name not in CORRUPTIONS]
    if unknown:
        raise UsageError(f"--corrupt: unknown {unknown}; choose from: {', '.join(sorted(CORRUPTIONS))}")
    settings = settings_from_args(args)
    from harness.cli.preflight import preflight
    from harness.corpus import CorpusNotFound, ProtocolUnbuildable
    from harness.robustness.cross_corpus import LabelMapError
    from harness.robustness.run import RobustnessOptions, run

    pairs = tuple((a, b) for a in args.train_on or [] for b in args.test_on or [] if a != b)
    options = RobustnessOptions(missing=args.missing, corrupt=tuple(args.corrupt or ()), cross_corpus=pairs,
                                methods=tuple(args.method) if args.method else None,
                                datasets=tuple(args.dataset) if args.dataset else None, label_map=args.label_map,
                                rerun=args.rerun)
    try:
        # it writes child runs into the experiment `harness run` uses: the same checks before Ray starts and the
        # experiment's lease (one driver per experiment), released on every exit path
        with preflight(settings):
            report = run(settings, options)
    except (LabelMapError, ProtocolUnbuildable, CorpusNotFound) as error:  # planning: before Ray, one line
        raise UsageError(str(error)) from None
    except KeyError as error:  # an unknown corpus name
        raise UsageError(f"robustness: {error.args[0]}") from None
    for line in report.failure_summary():  # last, where a reader of the console looks
        print(f"[failures] {line}", flush=True)
    return 1 if report.failed else 0
