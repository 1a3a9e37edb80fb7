"""`harness extract` and `harness features {import,list}`: what the feature layer's commands do.

The flags are parsed in `harness.cli.extract` and `harness.cli.features`; these functions take resolved settings
and plain values. `run(settings, ExtractOptions) -> ExtractReport` is `harness extract`'s engine, of the shape of
the other engines (`pipeline.run`, `e2e.commands.run`, `robustness.run.run`): the command prints its problems and
chooses the exit status. Heavy imports (Ray, torch) happen inside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def _store(settings: Any, store_uri: str | None = None) -> Any:
    """The feature store a command writes to: `--store`, else the settings' store."""
    from harness.features.store import FeatureStore

    return FeatureStore(store_uri or settings.feature_store_uri())


def load_manifest(dataset: str, settings) -> Any:
    """The dataset's manifest (the synthetic corpus is generated on first use); a missing corpus is a
    CorpusNotFound (a FileNotFoundError) naming where it was looked for."""
    from harness.corpus import open_corpus
    from harness.datasets import get_dataset

    return open_corpus(settings, get_dataset(dataset), with_folds=False).manifest


class InputError(ValueError):
    """Bad input found before any work starts (a name, an option, missing weights or corpus); the command line
    reports it as a usage error."""


@dataclass(frozen=True)
class ExtractOptions:
    """What one `harness extract` run extracts, beside the settings."""

    dataset: str
    extractors: tuple[str, ...]
    # `[EXTRACTOR.]KEY=VALUE` items over the settings' `extractor_config` (without a prefix: every extractor named)
    extractor_options: tuple[str, ...] = ()
    store: str | None = None  # feature store path or URI (default: the settings')
    batch_size: int = 16
    workers: int | None = None
    gpus_per_worker: float | None = None
    decode: str = "auto"
    local: bool = False  # a sequential loop in this process, no Ray


@dataclass
class ExtractReport:
    """What one `harness extract` run did: each extractor's result, and the extractions that made no clip or lost
    more than the allowed share (one line each, naming the first reasons and where the failures are)."""

    results: list[Any] = field(default_factory=list)  # harness.features.runner.ExtractionResult per extractor
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def run(settings: Any, options: ExtractOptions) -> ExtractReport:
    """Extract the options' extractors for their dataset. Bad input (a name, an option, missing weights or corpus)
    is an InputError before any work."""
    from harness.features.base import ExtractorConfigError, MissingWeightsError, build_extractor
    from harness.features.runner import extract

    dataset, extractors, local = options.dataset, list(options.extractors), options.local
    try:
        given = parse_configs(list(options.extractor_options), extractors)
        configs = {name: {**settings.extractor_config.get(name, {}), **given[name]} for name in extractors}
        for name in extractors:  # validate every extractor before any work starts
            build_extractor(name, configs[name]).check_weights()
        store = _store(settings, options.store)
        manifest = load_manifest(dataset, settings)
    except (ExtractorConfigError, MissingWeightsError, KeyError, ValueError, FileNotFoundError) as error:
        raise InputError(str(error.args[0] if isinstance(error, KeyError) else error)) from None
    if not local:
        from harness.runtime import init_ray

        init_ray(settings)
    from harness.corpus import max_lost_share

    report = ExtractReport()
    for name in extractors:
        result = extract(manifest, name, store, configs[name] or None, batch_size=options.batch_size,
                         concurrency=options.workers, num_gpus=options.gpus_per_worker,
                         executor="local" if local else "ray", decode=options.decode)
        report.results.append(result)
        problem = extraction_problem(result, max_lost_share())
        if problem:
            report.problems.append(problem)
    return report


def extraction_problem(result: Any, allowed: float, first: int = 3) -> str | None:
    """Why an extraction is not a usable result (no clip stored from N > 0, or more than `allowed` of them
    failed), naming the first reasons and where the failures are; None when it is fine."""
    failed = result.n_failed
    n = result.n_clips + failed  # n_clips: the clips stored
    if n == 0 or (result.stored.ids and failed <= allowed * n):
        return None
    reasons = "; ".join(f"{row.clip_id}: {row.error}" for row in result.failures.head(first).itertuples())
    what = "no clip" if not result.stored.ids else f"{failed} of {n} clips failed (more than {allowed:.0%})"
    return (f"{result.dataset}/{result.extractor}: {what} extracted from {n}. First reasons: {reasons or 'none'}. "
            f"All failures: `harness features list` / {result.location}")


def run_import(settings: Any, dataset: str, name: str, file: str | Path, modality: str | None = None,
               store_uri: str | None = None) -> int:
    from harness.features.imports import ImportFormatError, import_features

    store = _store(settings, store_uri)
    try:
        manifest = load_manifest(dataset, settings)
        report = import_features(manifest, name, file, store, modality=modality)
    except (ImportFormatError, FileNotFoundError, KeyError, ValueError) as error:
        raise InputError(str(error.args[0] if isinstance(error, KeyError) else error)) from None
    print(report.summary())
    return 0


def run_list(settings: Any, dataset: str | None = None, store_uri: str | None = None) -> int:
    store = _store(settings, store_uri)
    rows = [e for e in store.entries() if dataset in (None, e.get("dataset"))]
    if not rows:
        print(f"no stored features in {store.root}")
        return 0
    for e in rows:
        stored = store.load(e["entry"])
        kind = "imported" if e.get("imported") else "extracted"
        print(f"{e['dataset']}/{e['extractor']}/{e['entry'].rsplit('/', 1)[-1]}  {kind}  "
              f"{len(stored.ids)} clips, {len(stored.failures)} failed, dim {stored.pooled.shape[1]}")
    return 0
