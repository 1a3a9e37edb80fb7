"""`run(settings, RobustnessOptions) -> RobustnessReport`: the robustness and cross-corpus evaluations of finished
results, scheduled on Ray.

Inputs are the finished parent runs of the experiment (tag `harness.role` = "parent", with a `models.pkl` of the
chosen configuration's validated fold models). Each (method, dataset, condition) is one Ray task; corrupted
features are extracted before, on Ray Data, by the feature runner (cached per corruption, level and seed).
Each task's tidy scores become one MLflow child run of the parent (tag `harness.role` = "robustness",
`robustness.condition`, artifact `robustness.csv`; the names in `harness.results`, written and read by
`harness.track`), keyed by a fingerprint of the parent result and the condition's parameters: a second call reuses
finished children and computes only what is new (`rerun` forces).
Cross-corpus pairs train anew (on A), so they are children of A's parent for the method when one exists, and
top-level runs otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.config import Settings
from harness.hashing import stable_hash
from harness.robustness.missing import DEFAULT_RATES, DEFAULT_SEEDS

if TYPE_CHECKING:
    from harness.track import StoredResult

VERSION = 1  # bump when an evaluation's computation changes, to invalidate reused children


@dataclass(frozen=True)
class RobustnessOptions:
    """What one `harness robustness` run evaluates, beside the settings.

    missing: each modality (and pair) absent, and random missing rates; corrupt: names from
    `harness.features.extractors.corrupted.CORRUPTIONS`; cross_corpus: (train_on, test_on) pairs. methods /
    datasets: limit to these names (default: every finished parent run; for cross-corpus, every default-suite
    method that can run on both corpora). levels: corruption -> severities (default: its levels)."""

    missing: bool = False
    corrupt: tuple[str, ...] = ()
    cross_corpus: tuple[tuple[str, str], ...] = ()
    methods: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    rates: tuple[float, ...] = tuple(DEFAULT_RATES)
    seeds: tuple[int, ...] = tuple(DEFAULT_SEEDS)
    levels: dict[str, Sequence[float]] = field(default_factory=dict)
    corruption_seed: int = 0
    label_map: str | Path | None = None  # the user's class map (--label-map), for cross-corpus pairs
    rerun: bool = False


@dataclass
class RobustnessReport:
    """What one `harness robustness` run did, for the command to print and to turn into its exit status."""

    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    tables: dict[str, list[pd.DataFrame]] = field(default_factory=lambda: {"missing": [], "corrupt": [], "cross": []})

    def frame(self, kind: str) -> pd.DataFrame:
        """All tidy rows of one kind ("missing", "corrupt", "cross"), with dataset and method columns."""
        parts = self.tables[kind]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def failure_summary(self) -> list[str]:
        """The lines that end a run with failures (none without): each failed evaluation once."""
        failed = list(dict.fromkeys(self.failed))
        return [f"{len(failed)} evaluation(s) failed:"] + [f"  {entry}" for entry in failed] if failed else []


@dataclass
class _Task:
    kind: str  # missing | corrupt | cross
    label: str
    dataset: str
    method: str
    parent_id: str | None
    fingerprint: str
    condition: str
    ref: Any = None  # the Ray object ref, or the reused frame


def _log(message: str) -> None:
    from harness.runtime import log

    log(message)  # above the evaluations' progress bar on a terminal, not through it


def _spec(settings: Settings, name: str):
    """The corpus a result names: `<card>` or `<card>@<target>` (a card subset, `harness run --target`)."""
    from harness.datasets import get_dataset

    card, _, target = name.partition("@")
    spec = get_dataset(card)
    chosen = settings.protocols.get(card)
    spec = spec.with_protocol(chosen) if chosen and hasattr(spec, "with_protocol") else spec
    return spec.with_target(target or None) if hasattr(spec, "with_target") else spec


def finished_parents(experiment_id: str, methods: Sequence[str] | None, datasets: Sequence[str] | None
                     ) -> list[StoredResult]:
    """The newest finished result per (dataset, method), filtered by the names given."""
    from harness import track

    newest: dict[tuple[str, str], StoredResult] = {}
    for result in track.finished_results(experiment_id):  # newest first
        if (methods and result.tags.method not in methods) or (datasets and result.tags.dataset not in datasets):
            continue
        newest.setdefault((result.tags.dataset, result.tags.method), result)
    return list(newest.values())


def _registered(method: str) -> bool:
    from methods import get_method

    try:
        get_method(method)
    except KeyError:
        return False
    return True


def feature_mismatch(tag: str, feature_keys: dict[str, str]) -> str:
    """Why a parent's models do not fit today's features ("" when they do): its `features` tag lists
    modality=extractor:key pairs, which must equal the prepared dataset's."""
    recorded = dict(item.split("=", 1) for item in tag.split(",") if "=" in item)
    changed = [m for m, key in recorded.items() if feature_keys.get(m) != key]
    return f"features changed since the result ({', '.join(changed)}); rerun `harness run`" if changed else ""


def _missing_task(models, data, folds, rates, seeds) -> tuple[pd.DataFrame, dict[str, Any]]:
    from harness.robustness.missing import evaluate_missing

    return evaluate_missing(models, data, folds, rates=rates, seeds=seeds), {}


def _corrupt_task(models, data, folds, modality, corruption, features, seed) -> tuple[pd.DataFrame, dict[str, Any]]:
    from harness.robustness.corrupt import evaluate_corrupted

    return evaluate_corrupted(models, data, folds, modality, corruption, features, seed), {}


def _cross_task(method, fixed, train, folds, test, train_on, test_on, label_map, metric, trials, seed):
    from harness.robustness.cross_corpus import cross_corpus

    return cross_corpus(method, fixed, train, folds, test, train_on, test_on, label_map, metric, trials, seed)


def _log_child(experiment_id: str, task: _Task, frame: pd.DataFrame, record: dict[str, Any]) -> str:
    """One evaluation run (`track.log_evaluation`): the condition's mean metric per (condition, modality, rate,
    test corpus), the tidy table and the record."""
    from harness import track

    keys = [c for c in ("condition", "modality", "rate", "test_on") if c in frame.columns]
    means = frame.groupby([*keys, "metric"], dropna=False)["value"].mean()
    metrics = {}
    for key, value in means.items():
        name = ".".join(str(k) for k in key if str(k) not in ("", "nan")).replace(":", "_").replace("+", "_")
        metrics[name[:250]] = float(value)
    return track.log_evaluation(experiment_id, task.parent_id, task.dataset, task.method, task.condition,
                                task.fingerprint, metrics, frame, record)


def run(settings: Settings, options: RobustnessOptions) -> RobustnessReport:
    """Evaluate finished results with modalities missing, with corrupted test media and across corpora (see
    `RobustnessOptions`). Planning errors (LabelMapError, ProtocolUnbuildable, CorpusNotFound, KeyError) are raised
    before Ray starts; a failed evaluation is reported, not raised."""
    import ray

    from harness import track
    from harness.runtime import Progress, init_ray

    report = RobustnessReport()
    methods, datasets, rerun = options.methods, options.datasets, options.rerun
    maps = {pair: plan_cross_corpus(settings, *pair, options.label_map) for pair in options.cross_corpus}  # before Ray
    init_ray(settings)
    experiment_id = track.use_experiment(settings.tracking_uri, settings.experiment)
    tasks: list[_Task] = []
    if options.missing or options.corrupt:
        parents = []
        for result in finished_parents(experiment_id, methods, datasets):
            if _registered(result.tags.method):
                parents.append(result)
            else:  # `harness e2e` results: their fold models are Ray Train checkpoints, not methods
                report.skipped.append(f"{result.tags.method}@{result.tags.dataset}: not a registered method (an "
                                      "end-to-end result); it has no fold models to re-score")
                _log(f"[skip] {report.skipped[-1]}")
        if not parents:
            report.skipped.append("missing/corrupt: no finished results in MLflow; run `harness run` first")
            _log(f"[skip] robustness: {report.skipped[-1]}")
        for dataset in sorted({result.tags.dataset for result in parents}):
            runs = [result for result in parents if result.tags.dataset == dataset]
            tasks += _dataset_tasks(settings, dataset, runs, options, experiment_id, report)
    for (train_on, test_on), resolved in maps.items():
        tasks += _cross_tasks(settings, train_on, test_on, methods, resolved, experiment_id, rerun, report)
    done = sum(isinstance(task.ref, pd.DataFrame) for task in tasks)  # reused: done already, not in the rate
    progress = Progress("robustness", ", ".join(sorted({task.dataset for task in tasks})), len(tasks),
                        "evaluations", enabled=bool(tasks), initial=done)
    try:
        for task in tasks:
            done += not isinstance(task.ref, pd.DataFrame)
            try:
                if isinstance(task.ref, pd.DataFrame):
                    frame = task.ref
                    report.reused.append(task.label)
                else:
                    frame, record = ray.get(task.ref)
                    _log_child(experiment_id, task, frame, record)
                    report.ran.append(task.label)
                report.tables[task.kind].append(frame.assign(dataset=task.dataset, method=task.method))
                _log(f"[robustness] {task.label}: {len(frame)} scores")
            except Exception as error:  # one broken evaluation must not sink the rest; it is reported
                report.failed.append(f"{task.label}: {type(error).__name__}: {error}")
                _log(f"[error] {report.failed[-1]}")
            progress.set(done, f"{len(report.failed)} failed" if report.failed else "")
    finally:
        progress.close()
    _log(f"[done] robustness: {len(report.ran)} computed, {len(report.reused)} reused, {len(report.skipped)} "
         f"skipped, {len(report.failed)} failed")
    return report


def _submit(kind: str, label: str, dataset: str, method: str, parent_id: str | None, fingerprint: str,
            condition: str, experiment_id: str, rerun: bool, function, *args) -> _Task:
    import ray

    from harness import track

    task = _Task(kind, label, dataset, method, parent_id, fingerprint, condition)
    reused = None if rerun else track.stored_evaluation(experiment_id, fingerprint)
    task.ref = reused if reused is not None else ray.remote(num_cpus=1)(function).remote(*args)
    return task


def _dataset_tasks(settings: Settings, dataset: str, runs: list[StoredResult], options: RobustnessOptions,
                   experiment_id: str, report: RobustnessReport) -> list[_Task]:
    import ray

    from harness import track
    from harness.features.extractors.corrupted import get_corruption
    from harness.features.store import FeatureStore
    from harness.prepare import locate_dataset, prepare_dataset
    from harness.robustness.corrupt import extract_corrupted
    from methods import get_method

    spec = _spec(settings, dataset)
    present, why = locate_dataset(settings, spec)
    if not present:
        report.skipped.append(f"{dataset}: {why}")
        return []
    rates, seeds, levels, corruption_seed = options.rates, options.seeds, options.levels, options.corruption_seed
    need_sequences = any(get_method(run.tags.method).cls.input_kind == "sequence" for run in runs)
    prepared = prepare_dataset(settings, spec, need_sequences)
    data_ref = ray.put(prepared.data)
    corrupted: dict[str, tuple[str, dict[float, Any], list[str]]] = {}
    for name in options.corrupt:
        corruption = get_corruption(name)
        if corruption.modality not in prepared.data.modalities:
            report.skipped.append(f"corrupt:{name}@{dataset}: the dataset has no {corruption.modality} features")
            continue
        base = prepared.extractors[corruption.modality]  # the one the result's features came from
        extracted = extract_corrupted(prepared.manifest, prepared.folds, FeatureStore(settings.feature_store_uri()),
                                      base.name, base.options, name,
                                      levels.get(name, corruption.levels), corruption_seed)
        corrupted[name] = (corruption.modality, {lv: s for lv, (s, _) in extracted.items()},
                           [key for _, key in extracted.values()])
    tasks = []
    for run in runs:
        method, parent_id, parent_fp = run.tags.method, run.run_id, run.tags.fingerprint
        label = f"{method}@{dataset}"
        mismatch = feature_mismatch(run.tags.features, prepared.feature_keys)
        if mismatch:
            report.skipped.append(f"{label}: {mismatch}")
            continue
        try:
            models_ref = ray.put(track.fold_models(parent_id))
        except Exception as error:  # an older result without models.pkl
            report.skipped.append(f"{label}: no fold models stored with the result ({type(error).__name__}); "
                                  "rerun `harness run --rerun` for it")
            continue
        if options.missing:
            fp = stable_hash({"v": VERSION, "parent": parent_fp, "missing": [list(rates), list(seeds)]})
            tasks.append(_submit("missing", f"missing:{label}", dataset, method, parent_id, fp, "missing",
                                 experiment_id, options.rerun, _missing_task, models_ref, data_ref, prepared.folds,
                                 list(rates), list(seeds)))
        for name, (modality, features, keys) in corrupted.items():
            fp = stable_hash({"v": VERSION, "parent": parent_fp, "corrupt": name, "keys": keys})
            tasks.append(_submit("corrupt", f"corrupt:{name}:{label}", dataset, method, parent_id, fp,
                                 f"corrupt:{name}", experiment_id, options.rerun, _corrupt_task, models_ref, data_ref,
                                 prepared.folds, modality, name, features, corruption_seed))
    return tasks


def plan_cross_corpus(settings: Settings, train_on: str, test_on: str, label_map_path: str | Path | None):
    """Everything about a cross-corpus pair that can be wrong, checked before Ray starts or anything is
    extracted: both corpora known, the label map (the user's file, the cards' declarations, the package table,
    the shared names) covering both with two shared classes or more, and the training corpus's protocol buildable
    (a corpus that is only a test target needs no protocol: its folds are never made). Returns the resolved map;
    raises LabelMapError, KeyError or ProtocolUnbuildable with one line."""
    from harness.corpus import check_protocol
    from harness.robustness.cross_corpus import load_label_map, resolve_pair

    label_map = load_label_map(label_map_path)
    specs = {name: _spec(settings, name) for name in (train_on, test_on)}
    resolved, _ = resolve_pair(label_map, {name: (list(spec.classes), spec.cross_corpus, str(spec.card or ""))
                                           for name, spec in specs.items()})
    check_protocol(settings, specs[train_on])
    return resolved


def _cross_tasks(settings: Settings, train_on: str, test_on: str, methods: Sequence[str] | None,
                 label_map, experiment_id: str, rerun: bool, report: RobustnessReport) -> list[_Task]:
    import ray

    from harness.prepare import applicable, locate_dataset, prepare_dataset
    from methods import get_method, method_names

    specs = {name: _spec(settings, name) for name in (train_on, test_on)}
    for name, spec in specs.items():
        present, why = locate_dataset(settings, spec)
        if not present:
            report.skipped.append(f"cross:{train_on}->{test_on}: {name} {why}")
            return []
    chosen = [get_method(m) for m in (methods or method_names(default_suite_only=True))]
    need_sequences = any(m.cls.input_kind == "sequence" for m in chosen)
    train, test = (prepare_dataset(settings, specs[n], need_sequences, with_folds=n == train_on)
                   for n in (train_on, test_on))  # the test corpus is scored whole: no protocol of its own
    common = set(train.data.modalities) & set(test.data.modalities)
    parent_of = {result.tags.method: result.run_id for result in finished_parents(experiment_id, None, [train_on])}
    refs = (ray.put(train.data), ray.put(test.data))
    tasks = []
    for method in chosen:
        ok, why = applicable(method, sorted(common))
        if not ok:
            report.skipped.append(f"cross:{method.name}@{train_on}->{test_on}: {why} (modalities both corpora have)")
            continue
        fixed = {"seed": settings.seed} if "seed" in method.cls.context_params else {}
        fp = stable_hash({"v": VERSION, "method": method.name, "fixed": {**method.fixed, **fixed},
                          "train": train.evaluation_digest, "test": test.evaluation_digest,
                          "features": [train.feature_keys, test.feature_keys], "trials": settings.trials,
                          "seed": settings.seed, "map": label_map.corpora, "shared": label_map.shared})
        tasks.append(_submit("cross", f"cross:{method.name}@{train_on}->{test_on}", train_on, method.name,
                             parent_of.get(method.name), fp, f"cross-corpus:{train_on}->{test_on}", experiment_id,
                             rerun, _cross_task, method.name, fixed, refs[0], train.folds, refs[1], train_on,
                             test_on, label_map, train.spec.headline_metric, settings.trials, settings.seed))
    return tasks


def robustness_results(experiment_id: str, condition_prefix: str = "") -> pd.DataFrame:
    """Every newest finished evaluation's tidy table (with dataset, method, condition_tag columns), for the
    report: `condition_prefix` "missing", "corrupt:" or "cross-corpus:" selects one kind."""
    from harness import track

    frames = [run.table.assign(dataset=run.dataset, method=run.method, condition_tag=run.condition)
              for run in track.finished_evaluations(experiment_id, condition_prefix)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def robustness_records(experiment_id: str, condition_prefix: str = "cross-corpus:") -> list[dict[str, Any]]:
    """The `robustness.json` record of every newest finished evaluation (e.g. a cross-corpus pair's mapped and
    dropped classes), with dataset, method and condition_tag keys added; evaluations without a record are left
    out."""
    from harness import track

    return [{**run.record, "dataset": run.dataset, "method": run.method, "condition_tag": run.condition}
            for run in track.finished_evaluations(experiment_id, condition_prefix, table=False, record=True)]
