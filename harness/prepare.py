"""The preparation stage, below the run: which corpus, which extractor per modality, and the features in memory.

`plan_dataset` answers, once per dataset and before Ray starts, what a run needs to know about it: the resolved
card, whether its corpus is there, and `{modality: ExtractorRef}` (the card's extractors overridden by the
settings' `features`). `prepare_dataset` turns a dataset into a `PreparedDataset`: manifest, folds and the
features of the modalities asked for, aligned to the manifest. The run (`harness.pipeline`), the two-stage run's
stage 1 (`harness.finetune`) and the evaluations of finished results (`harness.robustness`) all read datasets
through this module, so "which extractor does this dataset use" has one answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.config import Settings
from harness.datasets import DatasetSpec
from harness.hashing import stable_hash
from harness.manifest import Manifest
from harness.protocols import Fold
from harness.runtime import log
from methods import MethodSpec, MultimodalData

if TYPE_CHECKING:
    from harness.features.base import ExtractorRef
    from harness.features.store import StoredFeatures


@dataclass
class PreparedDataset:
    """One corpus ready for the search. Treated as a value: a later stage (fine-tuning) returns a new one."""

    spec: DatasetSpec
    manifest: Manifest
    folds: list[Fold]
    data: MultimodalData
    feature_keys: dict[str, str]  # modality -> "extractor:key"
    failures: pd.DataFrame  # modality, clip_id, stage, error
    # modality -> the extractor with its options, as planned (`DatasetPlan.extractors`); what every later
    # question about this dataset's extractors (feature keys, snippet layout, contamination) reads
    extractors: dict[str, ExtractorRef]
    fold_data: Any = None  # a two-stage run's per-fold features (harness.perfold.PerFoldData); None: `data`

    @property
    def name(self) -> str:
        """The dataset as results name it: the card's name, or `<name>@<target>` for a card's alternative label
        set or subset (`--target`), so a subset's results never mix with the full corpus's."""
        return self.manifest.dataset

    @property
    def search_data(self) -> Any:
        """What the search reads: the per-fold features of a two-stage run, else the one feature set."""
        return self.data if self.fold_data is None else self.fold_data

    @cached_property
    def evaluation_digest(self) -> str:
        """Hash of what every result on this dataset is evaluated against: the manifest (media), the labels and
        the exact fold membership. Computed once per dataset, not once per method."""
        return stable_hash({"manifest": self.manifest.fingerprint(), "labels": self.data.labels.tolist(),
                            "folds": [asdict(f) for f in self.folds]})


@dataclass(frozen=True)
class DatasetPlan:
    """What a run knows about one dataset before any work: the card with the run's protocol and target applied,
    whether the corpus can be used (present, or the built-in one that is generated on first use) and why not,
    and the extractor of each modality."""

    spec: DatasetSpec
    present: bool
    reason: str  # why the corpus cannot be used; "" when present
    extractors: dict[str, ExtractorRef] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name


def plan_dataset(settings: Settings, spec: DatasetSpec) -> DatasetPlan:
    """A dataset's plan; reads no media and generates nothing (the built-in corpus counts as present)."""
    present, reason = locate_dataset(settings, spec, generate=False)
    return DatasetPlan(spec, present, reason, extractor_refs(spec, settings))


def locate_dataset(settings: Settings, spec: DatasetSpec, generate: bool = True) -> tuple[bool, str]:
    """Whether the corpus can be used now (generating the built-in one on first use unless `generate` is False),
    and why not if not."""
    from harness.corpus import CorpusNotFound, locate

    if not generate and spec.prepare is not None:
        return True, ""
    try:
        locate(settings, spec, say=log)
    except CorpusNotFound as error:
        return False, str(error)
    return True, ""


def extractor_refs(spec: DatasetSpec, settings: Settings) -> dict[str, ExtractorRef]:
    """Modality -> the extractor a dataset uses, with the user's options (`extractor_config`): the card's
    defaults, overridden by the settings' `features`. The one rule; `plan_dataset` applies it once per dataset
    (`DatasetPlan.extractors`) and everything later reads that."""
    from harness.features.base import ExtractorRef

    return {modality: ExtractorRef(name, settings.extractor_config.get(name) or {})
            for modality, name in {**spec.features, **settings.features}.items()}


def contamination_label(dataset: str, extractors: dict[str, ExtractorRef], modalities: list[str]) -> str:
    """Whether the extractors of `modalities` were trained on `dataset` (their declared `trained_on`): "yes: ...",
    naming each that was, else "unknown: ..." naming each whose training data is not declared, else "no".
    Imported features (no registered extractor) are unknown."""
    from harness.features.base import UNKNOWN, contamination, describe_training

    found: dict[str, list[str]] = {"yes": [], UNKNOWN: []}
    for modality in sorted(modalities):
        ref = extractors.get(modality)
        if ref is None:
            continue
        corpora = None if ref.is_imported else ref.build().training_corpora()
        verdict = contamination(corpora, dataset)
        if verdict in found:
            found[verdict].append(f"{modality}={ref.name}"
                                  + (f" (trained on {describe_training(corpora)})" if verdict == "yes" else ""))
    for verdict in ("yes", UNKNOWN):
        if found[verdict]:
            return f"{verdict}: {', '.join(found[verdict])}"
    return "no"


def usable_modalities(manifest: Manifest, extractors: dict[str, str],
                      extractor_config: dict[str, dict[str, Any]], store: Any = None) -> list[str]:
    """The manifest's modalities, plus any its configured extractor derives from media the manifest has, plus
    any whose chosen features were imported for this manifest (`harness features import`).

    The first case in point: text for a corpus without transcripts, when the text extractor transcribes the
    clips' speech (`transcript=asr` or `auto`: its inputs are audio). An extractor whose only input is its own
    modality (every audio and video one, and text from transcripts) adds nothing. The second: OpenFace action
    units imported as `video` for a corpus whose videos the user does not have.
    """
    from harness.features.asr import AUDIO_IF_NO_TEXT
    from harness.features.base import build_extractor, extractor_names

    present = manifest.modalities()
    usable = list(present)
    if store is not None:
        from harness.features.imports import imported_modalities

        usable += [m for m in imported_modalities(manifest, store, extractors) if m not in usable]
        present = usable
    for modality, name in extractors.items():
        if modality in present or name not in extractor_names():
            continue
        inputs = {"audio" if i == AUDIO_IF_NO_TEXT else i for i in build_extractor(name, extractor_config.get(name))
                  .inputs()} - {modality}
        if inputs and inputs <= set(present):
            usable.append(modality)
    return usable


def usable_refs(manifest: Manifest, extractors: dict[str, ExtractorRef], store: Any = None) -> list[str]:
    """`usable_modalities` for extractors given as refs (a plan's `DatasetPlan.extractors`)."""
    return usable_modalities(manifest, {m: ref.name for m, ref in extractors.items()},
                             {ref.name: ref.options for ref in extractors.values()}, store)


def needed_modalities(methods: list[MethodSpec]) -> set[str] | None:
    """The modalities the planned methods read; None when one of them fuses whatever a dataset offers."""
    needed: set[str] = set()
    for method in methods:
        required = method.required_modalities()
        if not required:
            return None
        needed |= set(required)
    return needed


def applicable(method: MethodSpec, modalities: list[str]) -> tuple[bool, str]:
    """A method runs when its modalities are present (fusion methods without a fixed set need two or more)."""
    required = method.required_modalities()
    if required:
        missing = [m for m in required if m not in modalities]
        return (not missing, f"needs {', '.join(missing)}, which this dataset lacks" if missing else "")
    return (len(modalities) >= 2, "fusion needs at least two modalities" if len(modalities) < 2 else "")


def aligned(stored: StoredFeatures, ids: list[str], need_sequences: bool
            ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """Stored features in manifest order: pooled [N, D] (zeros where a clip has none), availability [N], and
    (when needed) sequences, with one zero row as the placeholder of a clip without this modality."""
    position = stored.index()
    rows = np.array([position.get(clip_id, -1) for clip_id in ids])
    mask = rows >= 0
    matrix = np.zeros((len(ids), stored.pooled.shape[1]), dtype=np.float32)
    matrix[mask] = stored.pooled[rows[mask]]
    sequences = None
    if need_sequences:
        width = stored.sequences[0].shape[1]
        sequences = [stored.sequences[r] if r >= 0 else np.zeros((1, width), np.float32) for r in rows]
    return matrix, mask, sequences


def prepare_dataset(settings: Settings, spec: DatasetSpec, need_sequences: bool,
                    modalities: set[str] | None = None, with_folds: bool = True,
                    extractors: dict[str, ExtractorRef] | None = None) -> PreparedDataset:
    """Manifest, folds and features of one corpus; `modalities` limits extraction to what planned methods read.

    with_folds=False: no folds (a cross-corpus test corpus is scored whole, so its own protocol is never built).
    extractors: the plan's `DatasetPlan.extractors` (default: resolved here by `extractor_refs`, the same rule)."""
    from harness.corpus import open_corpus
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    corpus = open_corpus(settings, spec, with_folds=with_folds, say=log)
    manifest, folds = corpus.manifest, corpus.folds
    store = FeatureStore(settings.feature_store_uri())
    refs = extractor_refs(spec, settings) if extractors is None else dict(extractors)
    pooled, sequences, available, keys, failures = {}, {}, {}, {}, []
    for modality in usable_refs(manifest, refs, store):
        if modalities is not None and modality not in modalities:
            continue
        if modality not in refs:
            log(f"[features] {spec.name}: no extractor configured for {modality}; modality not used")
            continue
        result = extract(manifest, refs[modality], store)
        stored = result.stored
        keys[modality] = f"{refs[modality].name}:{result.key}"
        if len(stored.failures):
            failures.append(stored.failures.assign(modality=modality))
        if not stored.ids:
            log(f"[features] {spec.name}: every {modality} clip failed; modality not used")
            continue
        pooled[modality], available[modality], seqs = aligned(stored, manifest.ids, need_sequences)
        if seqs is not None:
            sequences[modality] = seqs
    if settings.speaker_norm:  # pooled vectors and sequences alike, so every method sees it
        from harness.normalize import normalise_by_speaker

        pooled, sequences = normalise_by_speaker(pooled, sequences, available,
                                                 manifest.table["speaker"].astype(str).to_numpy())
    labels = np.array([manifest.classes.index(label) for label in manifest.table["label"]])
    data = MultimodalData(ids=manifest.ids, classes=list(manifest.classes), pooled=pooled, sequences=sequences,
                          available=available, labels=labels,
                          groups={"speaker": manifest.table["speaker"].astype(str).to_numpy()})
    all_failures = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(
        columns=["clip_id", "stage", "error", "modality"])
    return PreparedDataset(spec, manifest, folds, data, keys, all_failures, refs)
