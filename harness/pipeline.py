"""The stages of a benchmark as plain functions: dataset -> manifest + folds -> features -> trials -> MLflow.

`run` is what `harness run` calls. Each stage reuses what an earlier run stored when its inputs are unchanged
(manifests and folds by manifest fingerprint, features by cache key, finished (method, dataset) results by a
fingerprint of everything that determines them), so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from harness import __version__
from harness.config import Settings
from harness.datasets import DatasetSpec, dataset_names, get_dataset
from harness.hashing import stable_hash
from harness.manifest import Manifest
from harness.protocols import Fold, get_protocol, load_or_make_folds
from methods import MethodSpec, MultimodalData, get_method, method_names

FAILURES_SHOWN = 10


@dataclass
class PreparedDataset:
    spec: DatasetSpec
    manifest: Manifest
    folds: list[Fold]
    data: MultimodalData
    feature_keys: dict[str, str]  # modality -> "extractor:key"
    failures: pd.DataFrame  # modality, clip_id, stage, error

    @cached_property
    def evaluation_digest(self) -> str:
        """Hash of what every result on this dataset is evaluated against: the manifest (media), the labels and
        the exact fold membership. Computed once per dataset, not once per method."""
        return stable_hash({"manifest": self.manifest.fingerprint(), "labels": self.data.labels.tolist(),
                            "folds": [asdict(f) for f in self.folds]})


@dataclass
class RunReport:
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def skip(self, label: str, reason: str) -> None:
        log(f"[skip] {label}: {reason}")
        self.skipped.append(f"{label}: {reason}")


def log(message: str) -> None:
    print(message, flush=True)


def quiet_libraries() -> None:
    """Our own one-line progress replaces Tune's tables and MLflow's artifact progress bars."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)


def init_ray(settings: Settings) -> None:
    import ray

    quiet_libraries()
    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=settings.num_cpus, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False


def locate_dataset(settings: Settings, spec: DatasetSpec) -> tuple[bool, str]:
    """Whether the corpus can be used now (generating the built-in one on first use), and why not if not."""
    root = settings.data_dir(spec.name)
    if spec.is_present(root):
        return True, ""
    if spec.prepare is not None:
        log(f"[data] {spec.name}: generating the built-in corpus under {root} (first use)")
        spec.prepare(root)
        return True, ""
    return False, f"not found under {root} (see `harness data list`; set --data-dir {spec.name}=PATH)"


def load_manifest(settings: Settings, spec: DatasetSpec) -> Manifest:
    manifest = spec.scan(settings.data_dir(spec.name))
    manifest.save(settings.manifest_dir(spec.name))
    if len(manifest.problems):
        log(f"[data] {spec.name}: {len(manifest.problems)} files could not become clips "
            f"(see {settings.manifest_dir(spec.name) / 'problems.csv'})")
    return manifest


def dataset_extractors(spec: DatasetSpec, settings: Settings) -> dict[str, str]:
    """Modality -> extractor name for a dataset: the card's defaults, overridden by the settings' `features`."""
    return {**spec.features, **settings.features}


def usable_modalities(manifest: Manifest, extractors: dict[str, str],
                      extractor_config: dict[str, dict[str, Any]]) -> list[str]:
    """The manifest's modalities, plus any its configured extractor derives from media the manifest has.

    The case in point: text for a corpus without transcripts, when the text extractor transcribes the clips'
    speech (`transcript=asr` or `auto`: its inputs are audio). An extractor whose only input is its own
    modality (every audio and video one, and text from transcripts) adds nothing.
    """
    from harness.features.asr import AUDIO_IF_NO_TEXT
    from harness.features.base import build_extractor, extractor_names

    present = manifest.modalities()
    usable = list(present)
    for modality, name in extractors.items():
        if modality in present or name not in extractor_names():
            continue
        inputs = {"audio" if i == AUDIO_IF_NO_TEXT else i for i in build_extractor(name, extractor_config.get(name))
                  .inputs()} - {modality}
        if inputs and inputs <= set(present):
            usable.append(modality)
    return usable


def prepare_dataset(settings: Settings, spec: DatasetSpec, need_sequences: bool) -> PreparedDataset:
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    manifest = load_manifest(settings, spec)
    folds = load_or_make_folds(settings.manifest_dir(spec.name) / "folds.json", manifest, spec.protocol)
    store = FeatureStore(settings.feature_store_uri())
    extractors = dataset_extractors(spec, settings)
    n = len(manifest)
    pooled, sequences, available, keys, failures = {}, {}, {}, {}, []
    for modality in usable_modalities(manifest, extractors, settings.extractor_config):
        if modality not in extractors:
            log(f"[features] {spec.name}: no extractor configured for {modality}; modality not used")
            continue
        name = extractors[modality]
        result = extract(manifest, name, store, settings.extractor_config.get(name))
        stored = result.stored
        keys[modality] = f"{extractors[modality]}:{result.key}"
        if len(stored.failures):
            failures.append(stored.failures.assign(modality=modality))
        if not stored.ids:
            log(f"[features] {spec.name}: every {modality} clip failed; modality not used")
            continue
        position = stored.index()
        rows = np.array([position.get(clip_id, -1) for clip_id in manifest.ids])
        mask = rows >= 0
        matrix = np.zeros((n, stored.pooled.shape[1]), dtype=np.float32)
        matrix[mask] = stored.pooled[rows[mask]]
        pooled[modality], available[modality] = matrix, mask
        if need_sequences:
            width = stored.sequences[0].shape[1]
            # Placeholder for clips without this modality: one zero row, flagged unavailable by `available`.
            sequences[modality] = [stored.sequences[r] if r >= 0 else np.zeros((1, width), np.float32)
                                   for r in rows]
    if settings.speaker_norm:
        from harness.normalize import per_speaker_zscore

        speakers = manifest.table["speaker"].astype(str).to_numpy()
        pooled = {m: per_speaker_zscore(x, speakers, available[m]) for m, x in pooled.items()}
    labels = np.array([manifest.classes.index(label) for label in manifest.table["label"]])
    data = MultimodalData(ids=manifest.ids, classes=list(manifest.classes), pooled=pooled, sequences=sequences,
                          available=available, labels=labels,
                          groups={"speaker": manifest.table["speaker"].astype(str).to_numpy()})
    all_failures = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(
        columns=["clip_id", "stage", "error", "modality"])
    return PreparedDataset(spec, manifest, folds, data, keys, all_failures)


def applicable(method: MethodSpec, modalities: list[str]) -> tuple[bool, str]:
    """A method runs when its modalities are present (fusion methods without a fixed set need two or more)."""
    required = method.required_modalities()
    if required:
        missing = [m for m in required if m not in modalities]
        return (not missing, f"needs {', '.join(missing)}, which this dataset lacks" if missing else "")
    return (len(modalities) >= 2, "fusion needs at least two modalities" if len(modalities) < 2 else "")


def method_fixed_params(method: MethodSpec, prepared: PreparedDataset, settings: Settings) -> dict[str, Any]:
    from harness.tune import accepts_param

    fixed: dict[str, Any] = {}
    if accepts_param(method, "seed"):
        fixed["seed"] = settings.seed
    if prepared.spec.polarity and accepts_param(method, "polarity"):
        fixed["polarity"] = dict(prepared.spec.polarity)
    return fixed


def result_fingerprint(method: MethodSpec, prepared: PreparedDataset, settings: Settings,
                       fixed: dict[str, Any]) -> str:
    space = {k: repr(v) for k, v in method.search_space().items()}
    return stable_hash({
        "harness": __version__, "method": method.name, "fixed": {**method.fixed, **fixed}, "space": space,
        "evaluation": prepared.evaluation_digest, "protocol": prepared.spec.protocol.label(),
        "features": prepared.feature_keys, "trials": settings.trials, "seed": settings.seed,
        "speaker_norm": settings.speaker_norm,
    })


def run(settings: Settings, methods: list[str] | None = None, datasets: list[str] | None = None,
        rerun: bool = False) -> RunReport:
    """Benchmark `methods` (default: the default suite) on `datasets` (default: every corpus found)."""
    from harness import track

    started = time.perf_counter()
    method_list = [get_method(m) for m in (methods or method_names(default_suite_only=True))]
    dataset_list = [get_dataset(d) for d in (datasets or dataset_names())]
    init_ray(settings)
    experiment_id = track.use_experiment(settings.tracking_uri, settings.experiment)
    report = RunReport()
    need_sequences = any(m.cls.input_kind == "sequence" for m in method_list)
    for spec in dataset_list:
        present, reason = locate_dataset(settings, spec)
        if not present:
            report.skip(spec.name, reason)
            continue
        prepared = prepare_dataset(settings, spec, need_sequences)
        _log_prepared(prepared)
        for method in method_list:
            _run_method(method, prepared, settings, experiment_id, rerun, report)
    log(f"[done] {len(report.ran)} results computed, {len(report.reused)} reused, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed in {time.perf_counter() - started:.0f}s")
    return report


def _log_prepared(prepared: PreparedDataset) -> None:
    name, failures = prepared.spec.name, prepared.failures
    log(f"[data] {name}: {len(prepared.manifest)} clips, {len(prepared.folds)} folds "
        f"({prepared.spec.protocol.label()}), modalities {prepared.data.modalities}, {len(failures)} feature failures")
    for _, failure in failures.head(FAILURES_SHOWN).iterrows():
        log(f"[failure] {name} {failure['modality']} {failure['clip_id']} ({failure['stage']}): {failure['error']}")
    if len(failures) > FAILURES_SHOWN:
        log(f"[failure] ... and {len(failures) - FAILURES_SHOWN} more (logged with each MLflow run)")


def _run_method(method: MethodSpec, prepared: PreparedDataset, settings: Settings, experiment_id: str,
                rerun: bool, report: RunReport) -> None:
    """Tune, test and log one (method, dataset), or say why not; a failure is reported, never raised."""
    from harness import track
    from harness.tune import tune_and_test

    spec, modalities = prepared.spec, prepared.data.modalities
    label = f"{method.name}@{spec.name}"
    ok, why = applicable(method, modalities)
    if not ok:
        report.skip(label, why)
        return
    fixed = method_fixed_params(method, prepared, settings)
    fingerprint = result_fingerprint(method, prepared, settings, fixed)
    if not rerun and track.finished_run(experiment_id, fingerprint) is not None:
        log(f"[cache] {label}: finished result with identical inputs exists in MLflow; reused")
        report.reused.append(label)
        return
    try:
        outcome = tune_and_test(method.name, spec.name, prepared.data, prepared.folds, spec.headline_metric,
                                settings.trials, settings.seed, {**method.fixed, **fixed}, settings.workspace / "tune")
    except Exception as error:  # one broken method must not sink the benchmark; it is reported
        log(f"[error] {label}: {type(error).__name__}: {error}")
        report.failed.append(f"{label}: {type(error).__name__}: {error}")
        return
    tags = {"dataset": spec.name, "method": method.name, "family": method.cls.family,
            "modalities": ",".join(sorted(method.required_modalities() or modalities)),
            "protocol": spec.protocol.label(),
            "speaker_independent": str(get_protocol(spec.protocol.name).speaker_independent),
            "features": ",".join(f"{m}={k}" for m, k in sorted(prepared.feature_keys.items())),
            "feature_failures": str(len(prepared.failures)), "headline_metric": spec.headline_metric}
    track.log_outcome(experiment_id, outcome, prepared.data.classes, tags, settings.as_record(), fingerprint,
                      prepared.failures)
    s = outcome.summary()
    log(f"[result] {label}: test UAR {s['uar_mean']:.3f} ± {s['uar_std']:.3f}, "
        f"WA {s['accuracy_mean']:.3f}, macro-F1 {s['macro_f1_mean']:.3f} ({outcome.seconds:.1f}s)")
    report.ran.append(label)
