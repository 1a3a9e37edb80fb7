"""What every command shares: the settings flags, reading them into `Settings`, and the one usage-error path.

Every command accepts the same settings flags (`--config FILE` and the locations), so a settings file or a
`--data-dir NAME=PATH` means the same thing wherever it is given. A usage error is printed as one line,
`harness COMMAND: error: ...`, with exit status 2, whether it is raised (`UsageError`) or returned (`fail`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_TRACKING_URI, Settings, SettingsError, parse_option

# A dataset name as cards spell it (lower case, digits, "-"; "@target" for alternative label sets).
_DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9@_-]*")


class UsageError(Exception):
    """A bad name or value on the command line; printed as one line, exit status 2."""


def command_name(args: argparse.Namespace) -> str:
    """`run`, `data scan`, `features import`: the words the user typed, for error and deprecation lines."""
    words = [getattr(args, "command", None), getattr(args, "data_command", None),
             getattr(args, "features_command", None)]
    return " ".join(w for w in words if w)


def fail(args: argparse.Namespace, message: str) -> int:
    """The one usage-error path: one line on stderr, exit status 2."""
    print(f"harness {command_name(args)}: error: {message}", file=sys.stderr)
    return 2


def deprecated(args: argparse.Namespace, old: str, new: str) -> None:
    """A spelling kept for one release: it still works, and says what to type instead."""
    print(f"harness {command_name(args)}: note: {old} is deprecated and will be removed in the next release; "
          f"use {new}", file=sys.stderr)


def key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    """Repeated `NAME=VALUE` flags as a mapping; a malformed item is a usage error naming the flag."""
    parsed = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"{flag} expects NAME=VALUE, got {item!r}")
        parsed[key] = value
    return parsed


def per_dataset(items: list[str] | None, datasets: list[str] | str | None, flag: str) -> dict[str, str]:
    """`DATASET=NAME` flags (`--protocol`, `--target`) as a mapping; a bare `NAME` applies to every dataset the
    command names with `--dataset` (`harness run --dataset ravdess --protocol av-crossattention-10fold`)."""
    named = [datasets] if isinstance(datasets, str) else list(datasets or [])
    scoped = []
    for item in items or []:
        if "=" in item:
            scoped.append(item)
        elif not named:
            raise UsageError(f"{flag} {item}: say which dataset it is for ({flag} DATASET={item}), or name the "
                             "dataset with --dataset")
        else:
            scoped += [f"{dataset}={item}" for dataset in named]
    return key_values(scoped, flag)


def extractor_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """`--extractor-config EXTRACTOR.KEY=VALUE` items as {extractor: {key: value}} (values parsed as JSON)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        try:
            name, key, value = parse_option(item, "--extractor-config")
        except SettingsError as error:
            raise UsageError(str(error)) from None
        if not name:
            raise UsageError(f"--extractor-config expects EXTRACTOR.KEY=VALUE, got {item!r}")
        options.setdefault(name, {})[key] = value
    return options


def add_settings_flags(parser: argparse.ArgumentParser, repeatable_config: bool = False) -> None:
    """The settings flags every command accepts (flags override env variables, which override the file).

    repeatable_config: `--config` may be given several times (only `harness extract`, whose old spelling of
    extractor options was `--config KEY=VALUE`; the command separates the two).
    """
    if repeatable_config:
        parser.add_argument("--config", action="append", metavar="FILE",
                            help="a YAML settings file (see settings.example.yaml); flags and env override it")
    else:
        parser.add_argument("--config", type=Path, metavar="FILE",
                            help="a YAML settings file (see settings.example.yaml); flags and env override it")
    group = parser.add_argument_group("settings")
    group.add_argument("--data-root", type=Path,
                       help="where corpora are looked for, as <data-root>/<name> (default: datasets/; "
                            "env HARNESS_DATA_ROOT)")
    group.add_argument("--data-dir", action="append", metavar="DATASET=PATH",
                       help="where one corpus is (repeatable; env HARNESS_DATA_<NAME>)")
    group.add_argument("--workspace", type=Path, help="manifests, folds, feature store (default: .harness/)")
    group.add_argument("--feature-store", help="feature store path or URI, e.g. s3://bucket/features")
    group.add_argument("--extractor-config", action="append", metavar="EXTRACTOR.KEY=VALUE",
                       help="an extractor option (JSON value, else a string), e.g. wav2vec2.layer=6 or "
                            "minilm.transcript=asr (repeatable; part of the feature cache key)")
    group.add_argument("--tracking-uri", help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI}; "
                                              "env MLFLOW_TRACKING_URI)")
    group.add_argument("--experiment", help="MLflow experiment name (default: mer-benchmark)")
    parser.add_argument("--verbose", action="store_true",
                        help="show Ray's own lines (its loggers, its C++ core, `(raylet)` messages) and its workers' "
                             "output here (default: <workspace>/logs/ray.log, with one pointer line)")


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of every command that starts Ray (run, extract, e2e, robustness), so each can join a cluster."""
    group = parser.add_argument_group("Ray")
    group.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (default: all)")
    group.add_argument("--address", help="Ray cluster address (default: start a local instance; env RAY_ADDRESS)")


def _data_dirs(args: argparse.Namespace) -> dict[str, Path]:
    """`--data-dir NAME=PATH` items; a bare `--data-dir PATH` still works where the command names one dataset."""
    dirs: dict[str, Path] = {}
    single = getattr(args, "name", None) or getattr(args, "dataset", None)
    single = single if isinstance(single, str) else None
    for item in getattr(args, "data_dir", None) or []:
        key, sep, value = item.partition("=")
        if sep and value and _DATASET_NAME.fullmatch(key):
            dirs[key] = Path(value)
        elif single is not None:
            deprecated(args, "--data-dir PATH", f"--data-dir {single}=PATH")
            dirs[single] = Path(item)
        else:
            raise UsageError(f"--data-dir expects DATASET=PATH, got {item!r}")
    return dirs


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """The resolved `Settings` of a command: flags (those it has), then env, then `--config FILE`, then defaults.

    `extra` are further settings a command fixes itself (None means "not given"). A bad value is a UsageError.
    Python warnings are routed to `<workspace>/logs/warnings.log` from here on (`harness.runtime.route_warnings`).
    """
    features = key_values(getattr(args, "features", None), "--features")
    datasets = getattr(args, "dataset", None)
    protocols = per_dataset(getattr(args, "protocol", None), datasets, "--protocol")
    targets = per_dataset(getattr(args, "targets", None), datasets, "--target")  # `data scan --target` is one name
    flags: dict[str, Any] = {
        "data_root": getattr(args, "data_root", None), "workspace": getattr(args, "workspace", None),
        "feature_store": getattr(args, "feature_store", None), "tracking_uri": getattr(args, "tracking_uri", None),
        "experiment": getattr(args, "experiment", None),
        "data_dirs": _data_dirs(args) or None, "features": features or None,
        "extractor_config": extractor_options(getattr(args, "extractor_config", None)) or None,
        "trials": getattr(args, "trials", None), "seed": getattr(args, "seed", None),
        "num_cpus": getattr(args, "num_cpus", None), "ray_address": getattr(args, "address", None),
        "speaker_norm": getattr(args, "speaker_norm", None) or None,
        "scheduler": getattr(args, "scheduler", None), "time_budget_s": getattr(args, "time_budget", None),
        "gpus_per_trial": getattr(args, "gpus_per_trial", None), "refit": getattr(args, "refit", None),
        "tune_storage": getattr(args, "tune_storage", None), "preset": getattr(args, "preset", None),
        "protocols": protocols or None, "targets": targets or None, "max_epochs": getattr(args, "max_epochs", None),
        **extra,
    }
    try:
        settings = Settings.from_env(file=getattr(args, "config", None), **flags)
    except SettingsError as error:
        raise UsageError(str(error)) from error
    from harness.runtime import route_warnings

    # Library warnings go to the workspace's log from here on, the whole command (not from Ray's start only: the
    # MLflow store check before it warns through SQLAlchemy).
    route_warnings(Path(settings.workspace) / "logs" / "warnings.log")
    return settings


def check_names(kind: str, names: list[str] | None, lookup: Callable[[str], object]) -> None:
    """Every name resolves in its registry, else a usage error that lists the valid ones."""
    for name in names or []:
        try:
            lookup(name)
        except KeyError as error:
            raise UsageError(f"{kind}: {error.args[0]}") from None
