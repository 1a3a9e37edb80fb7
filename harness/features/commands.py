"""`harness extract` and `harness features {import,list}`: the feature layer's command-line entry points.

`register(subparsers)` adds the subcommands; each sets `func(args) -> exit code`. Heavy imports (Ray, torch)
happen inside the handlers so `harness --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    extract = subparsers.add_parser(
        "extract", help="extract features for a dataset (Ray; resumable; only missing clips are extracted)",
        description="Extract features for every clip of a dataset into the feature store. Re-running extracts "
                    "only clips not yet stored; failures (undecodable media, no face, silent audio) are listed.")
    extract.add_argument("--dataset", required=True, help="dataset name (see `harness datasets`)")
    extract.add_argument("--extractor", required=True, action="append", dest="extractors",
                         help="extractor name; repeat for several (see `harness features list-extractors`)")
    extract.add_argument("--config", action="append", default=[], metavar="[EXTRACTOR.]KEY=VALUE",
                         help="extractor option (JSON value, else a string), e.g. wav2vec2.layer=6 or "
                              "wav2vec2.checkpoint=/models/w2v; without a prefix it applies to every extractor")
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
    extract.set_defaults(func=run_extract)

    features = subparsers.add_parser("features", help="import your own features, list stored features")
    actions = features.add_subparsers(dest="features_command", required=True)
    imp = actions.add_parser("import", help="store a table of pre-extracted features (NPZ, Parquet, CSV)",
                             description="Store a table keyed by clip id like an extracted feature, so every "
                                         "method can use it by --name. Never loads pickle.")
    imp.add_argument("--dataset", required=True)
    imp.add_argument("--name", required=True, help="the feature name methods will refer to")
    imp.add_argument("--modality", choices=("audio", "video", "text"), default=None)
    imp.add_argument("--store", default=None)
    imp.add_argument("file")
    imp.set_defaults(func=run_import)
    listing = actions.add_parser("list", help="stored features (dataset, name, key, clips, failures)")
    listing.add_argument("--dataset", default=None)
    listing.add_argument("--store", default=None)
    listing.set_defaults(func=run_list)
    names = actions.add_parser("list-extractors", help="registered extractors with modality and output shape")
    names.set_defaults(func=run_list_extractors)


def parse_configs(items: list[str], extractors: list[str]) -> dict[str, dict[str, Any]]:
    """`[EXTRACTOR.]KEY=VALUE` options into one config dict per extractor."""
    from harness.config import parse_option

    configs: dict[str, dict[str, Any]] = {name: {} for name in extractors}
    for item in items:
        prefix, key, value = parse_option(item, "--config")
        if prefix and prefix not in configs:
            raise ValueError(f"--config {item!r}: {prefix!r} is not one of the --extractor names {extractors}")
        for name in [prefix] if prefix else extractors:
            configs[name][key] = value
    return configs


def _settings_and_store(store_uri: str | None):
    from harness.config import Settings
    from harness.features.store import FeatureStore

    settings = Settings.from_env()
    return settings, FeatureStore(store_uri or settings.feature_store_uri())


def load_manifest(dataset: str, settings) -> Any:
    """The dataset's manifest (the synthetic corpus is generated on first use)."""
    from harness.datasets import get_dataset

    spec = get_dataset(dataset)
    root = settings.data_dir(dataset)
    if spec.prepare is not None and not spec.is_present(root):
        spec.prepare(root)
    if not spec.is_present(root):
        raise FileNotFoundError(f"dataset {dataset!r} not found at {root}; put it there or set "
                                f"HARNESS_DATA_{dataset.upper().replace('-', '_')}=/path/to/{dataset}")
    return spec.scan(root)


def run_extract(args: argparse.Namespace) -> int:
    from harness.features.base import ExtractorConfigError, MissingWeightsError, build_extractor
    from harness.features.runner import extract

    try:
        configs = parse_configs(args.config, args.extractors)
        for name in args.extractors:  # validate every extractor before any work starts
            build_extractor(name, configs[name]).check_weights()
        settings, store = _settings_and_store(args.store)
        manifest = load_manifest(args.dataset, settings)
    except (ExtractorConfigError, MissingWeightsError, KeyError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.local:
        import ray

        if not ray.is_initialized():
            ray.init(address=settings.ray_address, num_cpus=settings.num_cpus, include_dashboard=False,
                     log_to_driver=False)
    for name in args.extractors:
        extract(manifest, name, store, configs[name] or None, batch_size=args.batch_size,
                concurrency=args.workers, num_gpus=args.gpus_per_worker,
                executor="local" if args.local else "ray", decode=args.decode)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from harness.features.imports import ImportFormatError, import_features

    settings, store = _settings_and_store(args.store)
    try:
        manifest = load_manifest(args.dataset, settings)
        report = import_features(manifest, args.name, args.file, store, modality=args.modality)
    except (ImportFormatError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def run_list(args: argparse.Namespace) -> int:
    _, store = _settings_and_store(args.store)
    rows = [e for e in store.entries() if args.dataset in (None, e.get("dataset"))]
    if not rows:
        print(f"no stored features in {store.root}")
        return 0
    for e in rows:
        stored = store.load(e["entry"])
        kind = "imported" if e.get("imported") else "extracted"
        print(f"{e['dataset']}/{e['extractor']}/{e['entry'].rsplit('/', 1)[-1]}  {kind}  "
              f"{len(stored.ids)} clips, {len(stored.failures)} failed, dim {stored.pooled.shape[1]}")
    return 0


def run_list_extractors(args: argparse.Namespace) -> int:
    from harness.features.base import extractor_names, get_extractor

    for name in extractor_names():
        cls = get_extractor(name)
        print(f"{name:22s} {cls.modality:6s} {cls.output or '-'}\n{'':29s}{cls.description}")
    return 0
