"""`harness run`: tune and evaluate methods on datasets, then render the report."""

from __future__ import annotations

import argparse
from typing import Any

from harness.cli.common import UsageError, add_ray_flags, add_settings_flags, settings_from_args
from harness.config import FINETUNE_MODALITIES, REFIT_MODES, SCHEDULERS, SettingsError, parse_option


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="tune and evaluate methods on datasets, then render the report")
    run.add_argument("--all", action="store_true", help="every default method on every corpus found")
    run.add_argument("--method", action="append", help="a method name (repeatable; see `harness list methods`)")
    run.add_argument("--dataset", action="append", help="a dataset name (repeatable; see `harness list datasets`)")
    run.add_argument("--trials", type=int, help="hyperparameter samples per (method, dataset) (default 4)")
    run.add_argument("--seed", type=int, help="seed for folds, search and training (default 0)")
    run.add_argument("--features", action="append", metavar="MODALITY=EXTRACTOR",
                     help="override a dataset's default extractor, e.g. audio=wav2vec2 (repeatable)")
    run.add_argument("--speaker-norm", action="store_true", help="z-score features per speaker (label-free)")
    run.add_argument("--rerun", action="store_true", help="recompute results even when identical ones exist")
    run.add_argument("--no-report", action="store_true", help="do not render the leaderboard at the end")
    search = run.add_argument_group("search")
    search.add_argument("--scheduler", choices=SCHEDULERS,
                        help="Tune scheduler: auto (ASHA when neural units are searched), asha or none")
    search.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="wall-clock limit of the whole search phase (default: none)")
    search.add_argument("--gpus-per-trial", type=float, metavar="FLOAT",
                        help="GPU share of one neural unit when the cluster has GPUs (default 0.25)")
    search.add_argument("--refit", choices=REFIT_MODES,
                        help="refit the chosen configuration on train+validation: auto, always or never")
    search.add_argument("--tune-storage", metavar="URI", help="where Tune keeps trial state (a path or URI "
                                                              "every node can reach; default <workspace>/tune)")
    search.add_argument("--preset", metavar="NAME",
                        help="default (tune each method's search space), paper (each method's paper preset, where "
                             "it has one) or another named preset, e.g. sse-ft (see docs/methods.md)")
    search.add_argument("--protocol", action="append", metavar="DATASET=NAME",
                        help="one of a card's alternative protocols for a dataset (repeatable; a bare NAME applies "
                             "to every --dataset)")
    search.add_argument("--target", action="append", dest="targets", metavar="DATASET=NAME",
                        help="one of a card's alternative label sets or subsets for a dataset, e.g. "
                             "crema-d=high-intensity or ravdess=song (repeatable; a bare NAME applies to every "
                             "--dataset; see docs/datasets.md)")
    search.add_argument("--max-epochs", type=int, metavar="N",
                        help="cap every neural method's epochs at N, presets included (CPU smoke runs of a paper "
                             "preset); recorded in the result's setting")
    search.add_argument("--train-missing-rate", type=float, metavar="RATE",
                        help="modality dropout in training for methods that support it: that share of training "
                             "clips loses one modality (neural methods, classical early fusion; default 0)")
    two_stage = run.add_argument_group("two-stage runs (docs/methods.md, Two-stage runs)")
    two_stage.add_argument("--finetune", action="store_true",
                           help="stage 1: fine-tune each fold's text/audio/video encoders on its training part, then "
                                "search the fusion on those per-fold features (GPU-sized; tiny models on CPU)")
    two_stage.add_argument("--finetune-option", action="append", metavar="KEY=VALUE",
                           help="a stage-1 option (JSON value), e.g. epochs=1, context_turns=3, lr=2e-5, "
                                "modalities='[\"text\"]'; MODALITY.KEY=VALUE sets it for one encoder only, e.g. "
                                "text.lr=2e-5 audio.epochs=15 (repeatable; unknown keys are errors)")
    add_ray_flags(run)
    add_settings_flags(run)
    run.set_defaults(func=cmd_run)


def finetune_options(items: list[str] | None) -> dict[str, Any]:
    """`--finetune-option [MODALITY.]KEY=VALUE` items as {key: value} (JSON values), a modality's own under
    `per_modality`; checked as `FinetuneOptions` later."""
    options: dict[str, Any] = {}
    for item in items or []:
        try:
            prefix, key, value = parse_option(item, "--finetune-option")
        except SettingsError as error:
            raise UsageError(str(error)) from None
        if prefix and prefix not in FINETUNE_MODALITIES:
            raise UsageError(f"--finetune-option expects KEY=VALUE or MODALITY.KEY=VALUE with MODALITY one of "
                             f"{', '.join(FINETUNE_MODALITIES)}, got {item!r}")
        if prefix:  # MODALITY.KEY=VALUE: that modality's encoder only (checked as FinetuneOptions later)
            options.setdefault("per_modality", {}).setdefault(prefix, {})[key] = value
        else:
            options[key] = value
    return options


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, train_missing_rate=getattr(args, "train_missing_rate", None),
                                  finetune=getattr(args, "finetune", None) or None,
                                  finetune_options=finetune_options(getattr(args, "finetune_option", None)) or None)
    methods = args.method or list(settings.methods) or None
    datasets = args.dataset or list(settings.datasets) or None
    if not args.all and not (methods or datasets):
        raise UsageError("run: give --all, or --method and/or --dataset (or methods/datasets in --config)")
    from harness import pipeline
    from harness.cli.preflight import check_workspace, preflight
    from harness.cli.report import render

    check_workspace(settings.workspace)  # planning already writes manifests and folds there
    try:
        run_plan = pipeline.plan(settings, pipeline.RunOptions(methods, datasets, args.rerun))
    except pipeline.PlanError as error:
        raise UsageError(str(error)) from None
    with preflight(settings):  # environment checked before Ray starts; one driver per experiment (a lease)
        outcome = pipeline.execute(run_plan)
    if not args.no_report:
        render(settings)
    for line in outcome.failure_summary():  # last, where a reader of the console looks
        print(f"[failures] {line}", flush=True)
    return 1 if outcome.failed else 0
