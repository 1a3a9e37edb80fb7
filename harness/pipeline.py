"""The stages of a benchmark as plain functions: dataset -> manifest + folds -> features -> one search -> MLflow.

`run` is what `harness run` calls: it prepares every dataset (extracting only the modalities the planned methods
read), turns every applicable (method, dataset) into a search `Job`, and runs all of them as one distributed
search (`harness.search`). Each stage reuses what an earlier run stored when its inputs are unchanged (manifests
and folds by manifest fingerprint, features by cache key, finished units by unit key, finished (method, dataset)
results by a fingerprint of everything that determines them), so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness import __version__
from harness.config import Settings
from harness.datasets import dataset_names, get_dataset
from harness.hashing import stable_hash
from harness.prepare import (
    DatasetPlan,
    PreparedDataset,
    applicable,
    contamination_label,
    locate_dataset,
    needed_modalities,
    plan_dataset,
    prepare_dataset,
    usable_refs,
)
from harness.protocols import get_protocol
from harness.results import MethodOutcome, ResultTags, TrialRecord, evaluation_setting
from harness.runtime import Progress, init_ray, log
from methods import MethodSpec, get_method, method_names

if TYPE_CHECKING:
    from harness.search import Job

FAILURES_SHOWN = 10


@dataclass
class RunReport:
    """What one `harness run` did, for the command to print and to turn into its exit status."""

    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "<method>@<dataset>: <error>", one per failed result
    # clips whose features failed, one row per (dataset, clip, modality): dataset, clip_id, modality, stage, error
    clip_failures: list[pd.DataFrame] = field(default_factory=list)

    def skip(self, label: str, reason: str) -> None:
        log(f"[skip] {label}: {reason}")
        self.skipped.append(f"{label}: {reason}")

    def fail(self, label: str, error: str) -> bool:
        """Record a failed result once (a second report of the same result, e.g. after a retry, is dropped);
        returns whether it was new."""
        if any(entry.partition(": ")[0] == label for entry in self.failed):
            return False
        self.failed.append(f"{label}: {error}")
        return True

    def add_clip_failures(self, dataset: str, failures: pd.DataFrame) -> None:
        if len(failures):
            self.clip_failures.append(failures.assign(dataset=dataset))

    def failure_summary(self, shown: int = FAILURES_SHOWN) -> list[str]:
        """The lines that end a run with failures (none without): each failed result once, and per dataset each
        clip without features once, its failed modalities listed on its line (a clip that failed in audio and
        video is one clip, and the count of clip-modality failures says so)."""
        lines = [f"{len(self.failed)} result(s) failed:"] + [f"  {entry}" for entry in self.failed] \
            if self.failed else []
        if not self.clip_failures:
            return lines
        table = pd.concat(self.clip_failures, ignore_index=True).astype({"clip_id": str, "modality": str})
        table = table.drop_duplicates(["dataset", "clip_id", "modality"])
        for dataset, rows in table.groupby("dataset", sort=True):
            clips = rows.groupby("clip_id", sort=True)
            several = f"; {len(rows)} clip-modality failures" if len(rows) > clips.ngroups else ""
            lines.append(f"{dataset}: {clips.ngroups} clip(s) without features for some modality{several}:")
            for clip_id, failed in list(clips)[:shown]:
                lines.append(f"  {clip_id}: " + "; ".join(f"{r.modality} ({r.stage}: {r.error})"
                                                        for r in failed.sort_values("modality").itertuples()))
            if clips.ngroups > shown:
                lines.append(f"  ... and {clips.ngroups - shown} more clips (feature_failures.csv with each MLflow "
                             "result)")
        return lines


def method_fixed_params(method: MethodSpec, prepared: PreparedDataset, settings: Settings) -> dict[str, Any]:
    """The context a method declares it uses (the run's seed, the card's polarity map; see context_params), the
    run's modality dropout, and the snippet layout of the video features it reads."""
    fixed: dict[str, Any] = {}
    if "seed" in method.cls.context_params:
        fixed["seed"] = settings.seed
    if prepared.spec.polarity and "polarity" in method.cls.context_params:
        fixed["polarity"] = dict(prepared.spec.polarity)
    if settings.train_missing_rate and method.accepts("train_missing_rate"):  # modality dropout where supported
        fixed["train_missing_rate"] = float(settings.train_missing_rate)
    if settings.max_epochs and method.accepts("max_epochs"):  # a cap, never a raise of the method's own value
        own = method.fixed.get("max_epochs", method.cls.declared_defaults(method.fixed)["max_epochs"])
        fixed["max_epochs"] = min(int(settings.max_epochs), int(own))
    fixed.update(snippet_layout(method, prepared, settings))
    return fixed


def snippet_layout(method: MethodSpec, prepared: PreparedDataset, settings: Settings) -> dict[str, int]:
    """The snippet layout (`n_snippets`, `positions_per_snippet`) of the dataset's video features, for a method
    that reads one, when the video extractor declares it (`video-snippets`: N snippets of a g x g grid).

    Derived, not configured twice: the method reads the sequence exactly as the extractor wrote it, whatever the
    preset says (a preset's N = 6 and an extractor run with `snippets=4` would otherwise silently disagree).
    """
    from harness.features.base import extractor_names

    wanted = ("n_snippets", "positions_per_snippet")
    if not all(method.accepts(k) for k in wanted) or "video" not in prepared.feature_keys:
        return {}
    ref = prepared.extractors.get("video")  # the plan's (DatasetPlan.extractors)
    if ref is None or ref.name not in extractor_names():
        return {}
    layout = getattr(ref.build(), "snippet_layout", None)
    return {k: v for k, v in layout().items() if k in wanted} if layout else {}


def planned_feature_keys(settings: Settings, prepared: PreparedDataset) -> dict[str, str]:
    """modality -> "extractor:key" for every modality the dataset offers, extracted in this run or not.

    The evaluation setting of a result names all of them, so `harness run --method audio-svm` and `--all` put
    their audio-svm results in one comparable table although the first extracts audio only.
    """
    from harness.features.base import extractor_names
    from harness.features.store import FeatureStore

    keys = dict(prepared.feature_keys)
    extractors = prepared.extractors  # the plan's (DatasetPlan.extractors)
    store = FeatureStore(settings.feature_store_uri())
    for modality in usable_refs(prepared.manifest, extractors, store):
        ref = extractors.get(modality)
        if modality in keys or ref is None or ref.name not in extractor_names():
            continue
        keys[modality] = f"{ref.name}:{ref.build().cache_key(prepared.manifest.fingerprint())}"
    return keys


def result_fingerprint(method: MethodSpec, prepared: PreparedDataset, settings: Settings,
                       fixed: dict[str, Any], refit: bool, configs: list[dict[str, Any]]) -> str:
    """Everything that determines one result: a finished parent run with this fingerprint is reused."""
    used = method.required_modalities() or prepared.data.modalities
    return stable_hash({
        "harness": __version__, "method": method.name, "fixed": {**method.fixed, **fixed}, "configs": configs,
        "evaluation": prepared.evaluation_digest, "protocol": prepared.spec.protocol.label(),
        "features": {m: k for m, k in prepared.feature_keys.items() if m in used}, "seed": settings.seed,
        "speaker_norm": settings.speaker_norm, "refit": refit, "preset": settings.preset,
        "scheduler": settings.scheduler if method.cls.trains_by_epoch else "none",
    })


def with_run_preset(method: MethodSpec, preset: str) -> MethodSpec:
    """The variant a run with `preset` evaluates: `<name>@paper` (the paper's values fixed, the rest searched)
    where the method has that preset; unchanged otherwise (the classical baselines have no paper preset)."""
    return method.with_preset(preset) if preset in method.preset_names() else method


def refit_for(method: MethodSpec, settings: Settings) -> bool:
    """`auto` refits methods without early stopping (their fits do not use the validation part)."""
    neural = method.cls.trains_by_epoch
    return settings.refit == "always" or (settings.refit == "auto" and not neural)


def plan_job(method: MethodSpec, prepared: PreparedDataset, settings: Settings) -> tuple[Job, ResultTags]:
    """One (method, dataset) of the search, with its configurations sampled once, and its MLflow tags."""
    from harness.search import Job, sample_configs

    fixed = {**method.fixed, **method_fixed_params(method, prepared, settings)}
    configs = sample_configs(method.search_space(), settings.trials, settings.seed, method.name, prepared.name)
    refit = refit_for(method, settings)
    fingerprint = result_fingerprint(method, prepared, settings, fixed, refit, configs)
    table = prepared.manifest.table
    # the report's bootstrap resamples these groups: the speaker, the unit every protocol keeps out of training
    groups = dict(zip(table["clip_id"].astype(str), table["speaker"].astype(str), strict=True))
    job = Job(method.name, prepared.name, fixed, configs, prepared.folds, prepared.spec.headline_metric,
              fingerprint, method.cls.trains_by_epoch, refit, groups)
    setting, words = evaluation_setting(
        evaluation_digest=prepared.evaluation_digest, protocol=prepared.spec.protocol.label(),
        features=planned_feature_keys(settings, prepared), trials=settings.trials, preset=settings.preset,
        speaker_norm=settings.speaker_norm, refit=settings.refit, train_missing_rate=settings.train_missing_rate,
        max_epochs=settings.max_epochs)
    modalities = prepared.data.modalities
    tags = ResultTags(
        dataset=prepared.name, method=method.name, family=method.cls.family,
        modalities=",".join(sorted(method.required_modalities() or modalities)),
        protocol=prepared.spec.protocol.label(),
        contamination=contamination_label(prepared.name, prepared.extractors,
                                          list(method.required_modalities() or modalities)),
        speaker_independent=str(get_protocol(prepared.spec.protocol.name).speaker_independent),
        features=",".join(f"{m}={k}" for m, k in sorted(prepared.feature_keys.items())),
        feature_failures=str(len(prepared.failures)), headline_metric=prepared.spec.headline_metric,
        selection_metric=prepared.spec.headline_metric, setting=stable_hash(setting), setting_label=words,
        fingerprint=fingerprint, git_commit=_git_commit(), inputs=_paper_inputs_label(method, settings))
    return job, tags


def _paper_inputs_label(method: MethodSpec, settings: Settings) -> str:
    """Which of the method's paper inputs this result had, per modality ("" outside `--preset paper`)."""
    from harness.paper_inputs import paper_inputs

    return paper_inputs([method], settings).label() if settings.preset == "paper" else ""


@functools.cache
def _git_commit() -> str:
    from harness import track

    return track.git_commit()


class TrackingListener:
    """The search's events to MLflow (parent and trial runs) and to the console (one line each)."""

    def __init__(self, experiment_id: str, settings: Settings, report: RunReport) -> None:
        self.experiment_id, self.settings, self.report = experiment_id, settings, report
        self.parents: dict[str, str] = {}
        self.tags: dict[str, ResultTags] = {}
        self.prepared: dict[str, PreparedDataset] = {}
        self.ratings: dict[str, dict[str, Any]] = {}  # dataset -> rating set -> counts (harness.ratings)
        self.progress: Progress | None = None  # the search's bar (a terminal) or sparse lines (a log file)

    def start(self, job: Job, tags: ResultTags, prepared: PreparedDataset) -> None:
        from harness import track

        self.tags[job.label], self.prepared[job.label] = tags, prepared
        if prepared.name not in self.ratings:  # annotator ratings for soft-label scores; a bad table stops here
            from harness.ratings import read_ratings

            self.ratings[prepared.name] = read_ratings(prepared.spec, prepared.manifest.root)
        corpus = {"digest": prepared.manifest.fingerprint(), "n_clips": len(prepared.manifest),
                  "source": str(self.settings.data_dir(prepared.spec.name))}
        self.parents[job.label] = track.start_result(self.experiment_id, tags, self.settings.as_record(), corpus)

    def on_start(self, stored: int, to_run: int) -> None:
        if stored:
            log(f"[search] resuming: {stored} units already stored by an earlier run; {to_run} to run")
        datasets = sorted({p.name for p in self.prepared.values()})
        self.progress = Progress("search", ", ".join(datasets), stored + to_run, "units", initial=stored)

    def on_trial(self, job: Job, record: TrialRecord) -> None:
        from harness import track

        track.log_trial(self.experiment_id, self.parents[job.label], self.tags[job.label], record)

    def on_outcome(self, job: Job, outcome: MethodOutcome, models: dict[str, Any]) -> None:
        from dataclasses import replace

        from harness import track
        from harness.ratings import soft_label_metrics, with_votes

        prepared = self.prepared[job.label]
        classes, ratings = prepared.data.classes, self.ratings[prepared.name]
        soft, not_scored = soft_label_metrics(outcome.predictions, classes, ratings)
        # the test clips' votes are stored with the predictions, so the report can test the soft scores
        outcome = replace(outcome, predictions=with_votes(outcome.predictions, classes, ratings))
        track.finish_result(self.parents[job.label], outcome, prepared.data.classes, models, prepared.failures,
                            test_metrics=soft)
        for rating_set, why in not_scored.items():
            log(f"[result] {job.label}: soft-label scores against the {rating_set} ratings {why}")
        s = outcome.summary()
        log(f"[result] {job.label}: test UAR {s['uar_mean']:.3f} ± {s['uar_std']:.3f}, "
            f"WA {s['accuracy_mean']:.3f}, macro-F1 {s['macro_f1_mean']:.3f}"
            f"{' (refit on train+val)' if outcome.refit else ''}")
        self.report.ran.append(job.label)

    def on_failure(self, job: Job, error: str) -> None:
        from harness import track

        track.fail_result(self.parents[job.label], error)
        log(f"[error] {job.label}: {error}")
        self.report.fail(job.label, error)

    def on_retry(self, job: Job, what: str) -> None:
        log(f"[search] {job.label}: {what}; running it again")

    def on_progress(self, done: int, total: int, jobs_done: int, jobs_total: int, elapsed: float) -> None:
        if self.progress is not None:
            self.progress.set(done, f"{jobs_done}/{jobs_total} results")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


class PlanError(ValueError):
    """A run that cannot start (unknown name, protocol, preset, extractor option, missing weights); one line."""


@dataclass(frozen=True)
class RunOptions:
    """What one `harness run` benchmarks, beside the settings."""

    methods: Sequence[str] | None = None  # default: the default suite (with the settings' preset applied)
    datasets: Sequence[str] | None = None  # default: every corpus with a card; a broken card is then skipped
    rerun: bool = False  # recompute results even when identical ones are stored


@dataclass(frozen=True)
class RunPlan:
    """What one `harness run` will do, resolved and checked before Ray starts."""

    settings: Settings
    methods: list[MethodSpec]  # with the run's preset applied
    datasets: list[DatasetPlan]  # with the run's protocol alternatives and targets applied
    explicit_datasets: bool  # named by the user (else: every corpus with a card)
    rerun: bool = False


def plan(settings: Settings, options: RunOptions = RunOptions()) -> RunPlan:
    """Resolve names, presets and protocols and check every extractor the run can use (options and weights), so
    a mistake is one line before any work; nothing here starts Ray or reads media."""
    methods, datasets = list(options.methods or []), list(options.datasets or [])
    def resolve(kind: str, lookup, names: list[str]) -> list:
        try:
            return [lookup(name) for name in names]
        except KeyError as error:  # unknown names, broken cards, unknown protocol alternatives
            raise PlanError(f"{kind}: {error.args[0]}") from None

    method_list = resolve("method", lambda m: with_run_preset(get_method(m), settings.preset),
                          methods or method_names(default_suite_only=True))
    dataset_list = resolve("dataset", lambda d: get_dataset(d).with_protocol(settings.protocols.get(d))
                           .with_target(settings.targets.get(d)), datasets or dataset_names())
    resolve("protocol", lambda d: get_dataset(d).with_protocol(settings.protocols[d]), list(settings.protocols))
    resolve("target", lambda d: get_dataset(d).with_target(settings.targets[d]), list(settings.targets))
    offered = {p for method in method_list for p in method.preset_names()}
    papers: tuple[str, ...] = ()
    if settings.preset == "paper":  # the papers' inputs too (harness.paper_inputs); the user's --features win
        from harness.paper_inputs import InputConflict, apply_paper_inputs

        try:
            settings, inputs = apply_paper_inputs(settings, method_list)
        except InputConflict as error:
            raise PlanError(str(error)) from None
        papers = inputs.papers  # only classical methods planned: the fourth paper's inputs, no preset needed
    if settings.preset not in offered and not papers:
        raise PlanError(f"preset: no planned method has a preset {settings.preset!r}; offered: "
                        f"{', '.join(sorted(offered))}")
    dataset_plans = [plan_dataset(settings, spec) for spec in dataset_list]
    check_extractors(settings, dataset_plans)
    check_corpora(settings, dataset_list)
    if settings.finetune:
        from harness.finetune.stage import FinetuneError, check_finetune

        try:
            check_finetune(settings, dataset_plans)
        except FinetuneError as error:
            raise PlanError(str(error)) from None
    return RunPlan(settings, method_list, dataset_plans, bool(datasets), options.rerun)


def check_corpora(settings: Settings, specs: list) -> None:
    """Each present corpus scanned and split by its protocol, as one-line PlanErrors: a scan that makes no clip
    (or loses too many files) and a protocol that cannot split the corpus (a 2-speaker card under
    leave-one-speaker-out) stop the run here, before Ray. The folds are stored, so the run reuses them."""
    from harness.corpus import CorpusUnusable, ProtocolUnbuildable, check_protocol

    for spec in specs:
        try:
            check_protocol(settings, spec)
        except (CorpusUnusable, ProtocolUnbuildable) as error:
            raise PlanError(str(error)) from None


def check_extractors(settings: Settings, datasets: list[DatasetPlan]) -> None:
    """Unknown extractors, option values and `--features` names, and missing weights, as one-line PlanErrors.

    Checked: every extractor the settings configure, and the extractors of the datasets planned. A `--features`
    name that is not an extractor must be features imported under that name.
    """
    from harness.features.base import ExtractorConfigError, MissingWeightsError, build_extractor, extractor_names
    from harness.features.imports import unknown_feature_names
    from harness.features.store import FeatureStore

    for name in settings.extractor_config:
        if name not in extractor_names():
            raise PlanError(f"extractor_config: {name!r} is not an extractor; known: {', '.join(extractor_names())}")
    neither = unknown_feature_names(settings.features, FeatureStore(settings.feature_store_uri()),
                                    [d.name for d in datasets])
    if neither:
        raise PlanError(neither)
    chosen = set(settings.extractor_config)  # configured extractors are checked even where no dataset uses them
    for dataset in datasets:  # the plan's extractors (DatasetPlan.extractors)
        chosen |= {ref.name for ref in dataset.extractors.values()}
    for name in sorted(chosen & set(extractor_names())):
        try:
            build_extractor(name, settings.extractor_config.get(name)).check_weights()
        except (ExtractorConfigError, MissingWeightsError) as error:
            raise PlanError(str(error)) from None


def run(settings: Settings, options: RunOptions = RunOptions()) -> RunReport:
    """Benchmark the options' methods on their datasets: `plan` (PlanError before Ray), then `execute`."""
    return execute(plan(settings, options))


def execute(run_plan: RunPlan) -> RunReport:
    """Prepare every planned dataset, then run every applicable (method, dataset) as one search."""
    from harness import track
    from harness.runtime import check_shared_storage
    from harness.search import Search, SearchOptions

    started = time.perf_counter()
    settings, method_list = run_plan.settings, run_plan.methods
    init_ray(settings)
    check_shared_storage(settings)
    experiment_id = track.use_experiment(settings.tracking_uri, settings.experiment,
                                         tuple(sorted({d.spec.headline_metric for d in run_plan.datasets})))
    stale = track.close_stale_runs(experiment_id)
    if stale:
        log(f"[mlflow] {stale} runs left RUNNING by an interrupted run marked KILLED")
    report = RunReport()
    if not run_plan.explicit_datasets:  # `--all`: a corpus whose card is broken is skipped with its card's error
        from harness.datasets import broken_cards

        for name, error in broken_cards().items():
            report.skip(name, f"broken dataset card: {error}")
    listener = TrackingListener(experiment_id, settings, report)
    need_sequences = any(m.cls.input_kind == "sequence" for m in method_list)
    jobs, data = [], {}
    for dataset in run_plan.datasets:
        present, reason = (dataset.present, dataset.reason) if not dataset.present else locate_dataset(
            settings, dataset.spec)  # locating generates the built-in corpus on first use
        if not present:
            report.skip(dataset.name, reason)
            continue
        prepared = prepare_dataset(settings, dataset.spec, need_sequences, needed_modalities(method_list),
                                   extractors=dataset.extractors)
        _log_prepared(prepared)
        report.add_clip_failures(prepared.name, prepared.failures)
        degenerate = _degenerate(prepared)
        if degenerate:  # before fine-tuning or any unit: one line, not a failed unit per fold and configuration
            report.skip(prepared.name, degenerate)
            continue
        if settings.finetune:  # stage 1 of a two-stage run: each fold's encoders fine-tuned (harness.finetune)
            from harness.finetune.stage import prepare_finetuned

            prepared = prepare_finetuned(settings, prepared, needed_modalities(method_list), need_sequences, log)
        for method in method_list:
            label = f"{method.name}@{prepared.name}"
            ok, why = applicable(method, prepared.data.modalities)
            if not ok:
                report.skip(label, why)
                continue
            job, tags = plan_job(method, prepared, settings)
            if not run_plan.rerun and track.finished_run(experiment_id, job.fingerprint) is not None:
                log(f"[cache] {label}: finished result with identical inputs exists in MLflow; reused")
                report.reused.append(label)
                continue
            listener.start(job, tags, prepared)
            jobs.append(job)
            data[prepared.name] = prepared.search_data
    if jobs:
        log(f"[search] {len(jobs)} (method, dataset) searches, {sum(len(j.units()) for j in jobs)} units, "
            f"on {_slots()} CPU slots")
        options = SearchOptions(settings.tune_storage_uri(), settings.scheduler, settings.gpus_per_trial,
                                settings.time_budget_s, _max_epochs(jobs))
        try:
            Search(jobs, data, options, listener).run()
        finally:
            listener.close()
    log(f"[done] {len(report.ran)} results computed, {len(report.reused)} reused, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed in {time.perf_counter() - started:.0f}s")
    return report


def _slots() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 0))


def _max_epochs(jobs: list[Job]) -> int:
    epochs = [int(c.get("max_epochs", j.fixed.get("max_epochs", 30))) for j in jobs if j.neural
              for c in [j.config(i) for i in range(len(j.configs))]]
    return max(epochs, default=30)


def _degenerate(prepared: PreparedDataset) -> str | None:
    """Why the corpus cannot be benchmarked as prepared (fewer than 2 classes, a class too thin in some fold's
    training part; harness.datachecks), or None."""
    from harness.datachecks import thin_classes, too_few_classes

    data = prepared.data
    if data.labels is None:
        return None
    return too_few_classes(data.labels, data.classes) or thin_classes(data.ids, data.labels, data.classes,
                                                                     prepared.folds)


def _log_prepared(prepared: PreparedDataset) -> None:
    name, failures = prepared.name, prepared.failures
    log(f"[data] {name}: {len(prepared.manifest)} clips, {len(prepared.folds)} folds "
        f"({prepared.spec.protocol.label()}), modalities {prepared.data.modalities}, {len(failures)} feature failures")
    for _, failure in failures.head(FAILURES_SHOWN).iterrows():
        log(f"[failure] {name} {failure['modality']} {failure['clip_id']} ({failure['stage']}): {failure['error']}")
    if len(failures) > FAILURES_SHOWN:
        log(f"[failure] ... and {len(failures) - FAILURES_SHOWN} more (logged with each MLflow run)")
