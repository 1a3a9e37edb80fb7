"""The whole benchmark as one search on Ray Tune: every (method, dataset, configuration, fold) unit at once.

Why this shape (the alternatives are in docs/scheduling.md):
- One `Tuner` per `harness run`, one Tune trial per *unit* = one fit of (method, dataset, sampled
  configuration, fold). With S slots and U units Ray runs min(S, U) at a time; nothing waits for a slow
  (method, dataset) to finish before the next starts, and Tune's fixed start-up is paid once per run, not once
  per method (measured: ~8 ms per extra trial with actor reuse, against ~7 s per `Tuner.fit`).
- Configurations are sampled here, once per (method, dataset), from a seeded generator, so every fold of a
  configuration sees the same values and a rerun samples the same ones. Tune receives the units as a grid.
- Each unit declares its resources from its method: classical units one CPU, neural units a GPU share when the
  cluster has GPUs or its autoscaler can launch GPU nodes (so `device="auto"` finds it, and the autoscaler sees the
  demand and launches one), one CPU otherwise.
- Neural units report validation UAR per epoch; `PerGroupScheduler` runs one ASHA per (method, dataset, fold),
  so a configuration is only ever compared with other configurations of the same fold.
- A finished unit writes its fitted model and validation scores to the unit store (under the Tune storage URI,
  atomically) before it reports; a later run skips every unit whose result is stored, so a killed driver
  resumes at unit granularity. Tune retries units lost with a node (`FailureConfig(max_failures)`); a unit
  Tune gives up on with a cluster-loss error runs again in a new Tune round, and an evaluation lost with its
  actor or node is submitted again on a fresh actor (`lost_with_cluster`; docs/scheduling.md says why).
- Each dataset's features go to the object store once (`ray.put`) and are shared by all its units.
- When a (method, dataset)'s last unit finishes, its test evaluation is submitted at once as a Ray task (the
  chosen configuration's validated fold models, or a refit on train+validation, score each fold's test part
  once); its trial child runs are written to MLflow as each configuration's folds complete.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from ray.tune import Callback

from harness.hashing import stable_hash
from harness.metrics import HEADLINE_METRICS, score
from harness.perfold import for_fold
from harness.protocols import Fold
from harness.results import MethodOutcome, TrialRecord
from harness.runtime import cluster_gpu_capacity
from methods import FusionMethod, MultimodalData, Param, get_method

EPOCH_METRIC = "epoch_val_uar"  # what ASHA compares between configurations of one fold
UNIT_NAMESPACE = "units"
MAX_FAILURES = 3  # retries of a unit whose worker or node died (Tune's, then as many rounds of the search's own)
METHOD_ERROR = "method_error"  # a unit's final result key: the method raised (deterministic, never retried)


def lost_with_cluster(error: BaseException | None) -> bool:
    """Whether `error` says the work was lost with its worker, actor or node (so running it again can succeed),
    rather than raised by the method (a RayTaskError wrapping an ordinary exception, which fails its job).

    A RayTaskError is unwrapped to its cause first: a task can fail because a `ray.get` inside it lost an object.
    An actor whose constructor raised (`actor_init_failed`) is the method's error, not the cluster's."""
    from ray import exceptions as rex

    lost = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError, rex.RaySystemError,
            rex.LocalRayletDiedError)
    for _ in range(8):  # causes nest (a task's task); a bounded walk
        if isinstance(error, rex.RayTaskError):
            error = error.cause
            continue
        if isinstance(error, rex.RayActorError) and error.actor_init_failed:
            return False
        return isinstance(error, lost)
    return False


def _last_line(path: str | None) -> str:
    """The last line of Tune's text trace (the exception and its message), not the file's path."""
    try:
        lines = [line.strip() for line in open(path, encoding="utf-8", errors="replace") if line.strip()]
    except (OSError, TypeError):
        return "Tune gave no error message"
    return lines[-1][:300] if lines else "Tune gave no error message"


def _trial_error(trial) -> BaseException | None:
    """The exception Tune gave a trial up on, from the pickled error file Tune writes next to its text trace
    (local to the driver, so read even when the storage URI is remote); None when Tune wrote no pickle (an error
    Tune raised itself) or it cannot be read back."""
    from ray import cloudpickle

    try:
        if trial.pickled_error_file:
            with open(trial.pickled_error_file, "rb") as f:
                return cloudpickle.load(f)
        return trial.get_pickled_error()
    except Exception:  # an unreadable error is treated as the method's: the job fails with Tune's text trace
        return None


# ---- the plan of a search -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One (method, dataset) of the search: its sampled configurations and the folds each is fitted on."""

    method: str
    dataset: str
    fixed: dict[str, Any]
    configs: list[dict[str, Any]]
    folds: list[Fold]
    metric: str  # the dataset's selection (headline) metric
    fingerprint: str  # identifies the result; unit keys derive from it
    neural: bool
    refit: bool  # refit the chosen configuration on train+validation before testing
    groups: dict[str, str] = field(default_factory=dict)  # clip id -> bootstrap group (speaker, session...)

    @property
    def label(self) -> str:
        return f"{self.method}@{self.dataset}"

    def fold(self, name: str) -> Fold:
        return next(f for f in self.folds if f.name == name)

    def config(self, index: int) -> dict[str, Any]:
        return {**self.fixed, **self.configs[index]}

    def unit_key(self, config: int, fold: str) -> str:
        return stable_hash({"job": self.fingerprint, "config": self.configs[config], "fold": fold}, length=24)

    def units(self) -> list[Unit]:
        return [Unit(self.label, c, f.name) for c in range(len(self.configs)) for f in self.folds]


@dataclass(frozen=True)
class Unit:
    job: str
    config: int
    fold: str

    @property
    def id(self) -> str:
        return f"{self.job}|{self.config}|{self.fold}"


def sample_configs(space: dict[str, Param], trials: int, seed: int, method: str, dataset: str
                   ) -> list[dict[str, Any]]:
    """`trials` configurations drawn once per (method, dataset) from a generator seeded by the run seed and the
    pair's names (so adding a method to a run does not change another method's draws). No space: defaults."""
    if not space:
        return [{}]
    rng = np.random.default_rng([seed, int(stable_hash([method, dataset], length=8), 16)])
    return [{name: _plain(param.sample(rng)) for name, param in sorted(space.items())} for _ in range(trials)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# ---- the unit store -----------------------------------------------------------------------------------------
class UnitStore:
    """Finished units (fitted model + validation scores), one atomic blob each, under the Tune storage URI.

    Pickles written by the harness itself in its own storage; nothing else is ever unpickled.
    """

    def __init__(self, uri: str) -> None:
        from harness.features.store import FeatureStore

        self.uri = uri
        self._blobs = FeatureStore(uri)  # its atomic blob API on any pyarrow filesystem (local, S3, ...)

    def save(self, key: str, payload: dict[str, Any]) -> None:
        self._blobs.write_blob(UNIT_NAMESPACE, key, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))

    def load(self, key: str) -> dict[str, Any] | None:
        data = self._blobs.read_blob(UNIT_NAMESPACE, key)
        return None if data is None else pickle.loads(data)


# ---- one unit (runs inside a Tune trial) ------------------------------------------------------------------
def _limit_threads() -> None:
    """One unit = one CPU: keep BLAS/torch from oversubscribing the cores Ray gave other units."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def fit_unit(job: Job, unit: Unit, data: MultimodalData,
             on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Fit one configuration on one fold's training part; score it on the fold's validation part."""
    fold = job.fold(unit.fold)
    data = for_fold(data, fold.name)  # a two-stage run's features differ per fold (harness.finetune)
    method = get_method(job.method).build(**job.config(unit.config))
    if on_epoch is not None and method.trains_by_epoch:
        method.epoch_callback = on_epoch
    validation = data.select(fold.val)
    method.fit(data.select(fold.train), validation)
    if method.trains_by_epoch:
        method.epoch_callback = None  # a closure over Tune's session must not travel with the pickled model
    scores = score(validation.labels, method.predict(validation), data.classes).headline()
    return {"val": scores, "notes": method.fit_notes(), "model": method}


_DATASETS: dict[str, MultimodalData] = {}  # per worker process: deserialised datasets, by object id


def _dataset(ref) -> MultimodalData:
    """The dataset behind `ref`, deserialised once per worker process: Tune reuses a trial's process for the
    next unit, so a dataset's sequences are not unpickled again for every one of its hundreds of units."""
    import ray

    key = ref.hex()
    if key not in _DATASETS:
        _DATASETS[key] = ray.get(ref)
    return _DATASETS[key]


def _unit_trainable(config: dict[str, Any], jobs: dict[str, Job], units: dict[str, Unit],
                    data_refs: dict[str, Any], store_uri: str) -> None:
    import ray
    from ray import tune

    _limit_threads()
    started = time.time()
    unit = units[config["unit"]]
    job = jobs[unit.job]
    data = _dataset(data_refs[job.dataset])
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]

    def report_epoch(epoch: int, values: dict[str, float]) -> None:
        tune.report({EPOCH_METRIC: values["val_uar"], "epoch": epoch, "final": 0})

    payload = fit_unit(job, unit, data, report_epoch if job.neural else None)
    payload["notes"] = {**payload["notes"], "gpus": len(gpu_ids)}
    payload["gpu_ids"] = gpu_ids
    # wall-clock span and node of the unit: slot utilisation and placement are measured from these
    payload["timing"] = {"start": started, "end": time.time(), "node": ray.get_runtime_context().get_node_id(),
                         # the launcher's node type where it names one (Ray's autoscaler sets it on the nodes it starts)
                         "node_type": os.environ.get("RAY_NODE_TYPE_NAME")}
    UnitStore(store_uri).save(job.unit_key(unit.config, unit.fold), payload)
    tune.report({EPOCH_METRIC: payload["val"]["uar"], "final": 1, "unit": unit.id,
                 **{f"val_{m}": v for m, v in payload["val"].items()}})


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: message` of an exception on one line, bounded: what a failed job's summary says."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _guarded_unit(config: dict[str, Any], unit_fn: Callable[..., None], jobs: dict[str, Job],
                  units: dict[str, Unit], data_refs: dict[str, Any], store_uri: str) -> None:
    """Run one unit; an exception of the method (the same on every attempt) becomes the unit's final result
    instead of a trial error, so Tune does not run it again (its `max_failures` retries are for lost workers).
    Errors that say the work was lost with its worker or node are raised for Tune to retry."""
    from ray import tune

    try:
        unit_fn(config, jobs, units, data_refs, store_uri)
    except Exception as error:
        if lost_with_cluster(error):
            raise
        tune.report({EPOCH_METRIC: 0.0, "final": 1, "unit": config["unit"], METHOD_ERROR: one_line(error)})


# ---- evaluation of a finished (method, dataset) ------------------------------------------------------------
def choose_config(job: Job, val: dict[int, dict[str, dict[str, float]]]) -> int:
    """The configuration with the best mean validation score over folds.

    ASHA compares configurations fold by fold, so it may stop a configuration on one fold and not on another.
    Configurations that finished every fold come first; if ASHA left none complete, the one with the most
    finished folds and the best mean over them is chosen (its stopped folds are trained to the end before
    testing, see `evaluate_job`)."""
    if not val:
        raise RuntimeError(f"{job.label}: no configuration finished on any fold")
    most = max(len(by_fold) for by_fold in val.values())
    candidates = {c: by_fold for c, by_fold in val.items() if len(by_fold) == most}
    return max(sorted(candidates), key=lambda c: float(np.mean([s[job.metric] for s in candidates[c].values()])))


def evaluate_job(job: Job, data_ref: list, chosen: int, store_uri: str) -> dict[str, Any]:
    """Score each fold's test part once with the chosen configuration: its validated fold models, or (refit)
    the configuration refitted on the fold's training + validation parts. `data_ref` is [ObjectRef] (wrapped,
    so Ray passes the reference and the process's dataset cache is used)."""
    _limit_threads()
    every = _dataset(data_ref[0])
    store = UnitStore(store_uri)
    fold_scores, frames, notes, models = [], [], {}, {}
    for fold in job.folds:
        data = for_fold(every, fold.name)
        unit = store.load(job.unit_key(chosen, fold.name))
        if unit is None:
            raise RuntimeError(f"{job.label}: the stored model of fold {fold.name} is missing from {store_uri}")
        if "model" not in unit:  # stopped early on this fold by ASHA: train it to the end now
            unit = fit_unit(job, Unit(job.label, chosen, fold.name), data)
            notes[f"{fold.name}/completed_after_early_stop"] = 1.0
        model: FusionMethod = unit["model"]
        if job.refit:
            model = refit(job, chosen, unit, data.select(fold.train + fold.val))
            notes[f"{fold.name}/refit_train_clips"] = float(len(fold.train) + len(fold.val))
        test = data.select(fold.test)
        probabilities = model.predict_proba(test)
        predicted = probabilities.argmax(axis=1)
        fold_scores.append(score(test.labels, predicted, data.classes))
        frame = pd.DataFrame({"fold": fold.name, "clip_id": test.ids,
                              "group": [job.groups.get(i, "") for i in test.ids],
                              "y_true": [data.classes[i] for i in test.labels],
                              "y_pred": [data.classes[i] for i in predicted]})
        for c, name in enumerate(data.classes):
            frame[f"p_{name}"] = probabilities[:, c]
        frames.append(frame)
        notes.update({f"{fold.name}/{k}": v for k, v in model.fit_notes().items()})
        models[fold.name] = model
    return {"fold_scores": fold_scores, "predictions": pd.concat(frames, ignore_index=True), "notes": notes,
            "models": models}


class _Evaluator:
    """Runs `evaluate_job` calls one after another in one long-lived process (see `Search._evaluator`)."""

    def evaluate(self, job: Job, data_ref: list, chosen: int, store_uri: str) -> dict[str, Any]:
        return evaluate_job(job, data_ref, chosen, store_uri)


def refit(job: Job, chosen: int, unit: dict[str, Any], train_and_val: MultimodalData) -> FusionMethod:
    """The chosen configuration fitted on train+validation. Neural methods train for the epochs that validation
    selected (no validation part is left to stop on); the others are fitted as before, on more speakers."""
    config = job.config(chosen)
    if job.neural:
        epochs = int(unit["notes"].get("best_epoch", config.get("max_epochs", 1)))
        config = {**config, "max_epochs": max(1, epochs), "patience": max(1, epochs)}
    return get_method(job.method).build(**config).fit(train_and_val, None)


# ---- the scheduler ------------------------------------------------------------------------------------------
def per_fold_asha(units: dict[str, Unit], neural: dict[str, bool], max_t: int, grace_period: int = 3,
                  reduction_factor: int = 2):
    """ASHA brackets per (method, dataset, fold): configurations compete only with their own fold's peers.
    Classical units (one report each) pass through untouched."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

    class PerGroupScheduler(FIFOScheduler):
        def __init__(self) -> None:
            super().__init__()
            self._by_group: dict[str, TrialScheduler] = {}

        def _for(self, trial) -> TrialScheduler | None:
            unit_id = trial.config["unit"]
            if not neural[unit_id]:
                return None
            unit = units[unit_id]
            group = f"{unit.job}|{unit.fold}"
            if group not in self._by_group:
                self._by_group[group] = AsyncHyperBandScheduler(
                    # +1: the unit's final report (after its last epoch) must not be cut off as "max_t reached"
                    time_attr="training_iteration", metric=EPOCH_METRIC, mode="max", max_t=max_t + 1,
                    grace_period=min(grace_period, max_t), reduction_factor=reduction_factor)
            return self._by_group[group]

        def on_trial_add(self, tune_controller, trial) -> None:
            inner = self._for(trial)
            if inner is not None:
                inner.on_trial_add(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result):
            inner = self._for(trial)
            if inner is None or result.get("final"):
                return TrialScheduler.CONTINUE
            return inner.on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller, trial, result) -> None:
            inner = self._for(trial)
            if inner is not None:
                inner.on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial) -> None:
            inner = self._for(trial)
            if inner is not None:
                inner.on_trial_remove(tune_controller, trial)

        def debug_string(self) -> str:
            return f"ASHA per fold ({len(self._by_group)} brackets)"

    return PerGroupScheduler()


# ---- driving the search ----------------------------------------------------------------------------------------
@dataclass
class JobState:
    job: Job
    val: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)  # config -> fold -> scores
    notes: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    stopped: dict[int, dict[str, int]] = field(default_factory=dict)  # config -> fold -> epoch stopped at
    logged_configs: set[int] = field(default_factory=set)
    chosen: int = -1
    started: float = field(default_factory=time.perf_counter)
    submitted: bool = False
    evaluations: int = 0  # evaluation submissions (more than one: earlier ones were lost with their worker)

    def finished_units(self) -> int:
        return sum(len(v) for v in self.val.values()) + sum(len(v) for v in self.stopped.values())

    def config_done(self, config: int) -> bool:
        return len(self.val.get(config, {})) + len(self.stopped.get(config, {})) == len(self.job.folds)

    def trial_record(self, config: int) -> TrialRecord:
        notes = {f: dict(n) for f, n in self.notes.get(config, {}).items()}
        for fold, epoch in self.stopped.get(config, {}).items():
            notes[fold] = {"stopped_early": 1.0, "stopped_at_epoch": float(epoch)}
        return TrialRecord(config, self.job.config(config), dict(self.val.get(config, {})), notes)


class SearchListener:
    """What the search tells the outside world: trial child runs as configurations finish, outcomes as
    (method, dataset)s finish, failures. `harness.pipeline` implements it with MLflow and the console."""

    def on_start(self, stored: int, to_run: int) -> None: ...

    def on_trial(self, job: Job, record: TrialRecord) -> None: ...

    def on_outcome(self, job: Job, outcome: MethodOutcome, models: dict[str, FusionMethod]) -> None: ...

    def on_failure(self, job: Job, error: str) -> None: ...

    def on_retry(self, job: Job, what: str) -> None:
        """Work of `job` (`what`: a unit or its evaluation, and the error) was lost with its worker, actor or node
        and is run again."""

    def on_progress(self, done: int, total: int, jobs_done: int, jobs_total: int, elapsed: float) -> None: ...


@dataclass
class SearchOptions:
    storage_uri: str  # Tune storage; finished units live under it too
    scheduler: str = "auto"  # auto | asha | none
    gpus_per_trial: float = 0.25
    time_budget_s: float | None = None
    max_epochs: int = 30  # ASHA's horizon for neural units
    asha_grace_period: int = 3  # epochs every neural unit trains before ASHA may stop it
    max_failures: int = MAX_FAILURES  # Tune's retries of a unit, then new rounds; resubmissions of an evaluation


class Search:
    """One Tune search over every unit of `jobs`; `run()` returns when every job is evaluated or failed."""

    # What runs a unit and what evaluates a job; tests replace them with ones that crash their worker.
    unit_fn: Callable[..., None] = staticmethod(_unit_trainable)
    evaluator_cls: type = _Evaluator

    def __init__(self, jobs: list[Job], data: dict[str, MultimodalData], options: SearchOptions,
                 listener: SearchListener) -> None:
        self.jobs = {j.label: j for j in jobs}
        self.data = data
        self.options = options
        self.listener = listener
        self.store = UnitStore(options.storage_uri)
        self.states = {label: JobState(job) for label, job in self.jobs.items()}
        self.pending: dict[Any, tuple[str, Any]] = {}  # evaluation ref -> (job label, evaluator actor or None)
        self.finished_jobs = 0
        self.total_units = sum(len(j.units()) for j in jobs)
        self.started = time.perf_counter()

    # -- resume ----------------------------------------------------------------------------------------
    def _load_stored(self) -> list[Unit]:
        """Record units a previous (interrupted) run finished; return the ones still to run."""
        todo = []
        for label, job in self.jobs.items():
            state = self.states[label]
            for unit in job.units():
                stored = self.store.load(job.unit_key(unit.config, unit.fold))
                if stored is None:
                    todo.append(unit)
                elif "stopped_at_epoch" in stored:
                    state.stopped.setdefault(unit.config, {})[unit.fold] = int(stored["stopped_at_epoch"])
                else:
                    state.val.setdefault(unit.config, {})[unit.fold] = stored["val"]
                    state.notes.setdefault(unit.config, {})[unit.fold] = stored["notes"]
        return todo

    # -- events ----------------------------------------------------------------------------------------
    def unit_finished(self, unit: Unit, val: dict[str, float] | None, notes: dict[str, float],
                      stopped_at: int | None = None) -> None:
        state = self.states[unit.job]
        if stopped_at is not None:
            if unit.fold in state.val.get(unit.config, {}):
                return
            state.stopped.setdefault(unit.config, {})[unit.fold] = stopped_at
            self.store.save(state.job.unit_key(unit.config, unit.fold), {"stopped_at_epoch": stopped_at})
        else:
            state.val.setdefault(unit.config, {})[unit.fold] = val
            state.notes.setdefault(unit.config, {})[unit.fold] = notes
        self._after_unit(state, unit.config)

    def _after_unit(self, state: JobState, config: int) -> None:
        if state.config_done(config) and config not in state.logged_configs:
            state.logged_configs.add(config)
            self.listener.on_trial(state.job, state.trial_record(config))
        if not state.submitted and state.finished_units() == len(state.job.units()):
            self._submit(state)

    def _submit(self, state: JobState) -> None:
        """Choose the configuration and start the job's test evaluation as a Ray task, while Tune goes on."""
        state.submitted = True
        try:
            chosen = choose_config(state.job, state.val)
        except RuntimeError as error:
            self._fail(state.job, str(error))
            return
        state.chosen = chosen
        self._start_evaluation(state)

    def _start_evaluation(self, state: JobState) -> None:
        state.evaluations += 1
        args = (state.job, [self._refs[state.job.dataset]], state.chosen, self.options.storage_uri)
        if state.job.neural and state.job.refit:  # retraining a network: the resources of a unit
            resources = self._resources(state.job)
            task = self._evaluate.options(num_cpus=resources.get("CPU", 1), num_gpus=resources.get("GPU", 0),
                                          max_retries=self.options.max_failures)
            self.pending[task.remote(*args)] = (state.job.label, None)
        else:
            evaluator = self._evaluator()
            self.pending[evaluator.evaluate.remote(*args)] = (state.job.label, evaluator)

    def collect_ready(self, timeout: float = 0.0) -> None:
        import ray

        if not self.pending:
            return
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        for ref in ready:
            label, evaluator = self.pending.pop(ref)
            state = self.states[label]
            try:
                evaluated = ray.get(ref)
            except Exception as error:  # one broken method must not sink the benchmark; it is reported
                if lost_with_cluster(error) and state.evaluations <= self.options.max_failures:
                    if evaluator is not None:
                        self._replace_evaluator(evaluator)
                    self.listener.on_retry(state.job, f"its evaluation was lost with its worker or node "
                                                      f"({type(error).__name__})")
                    self._start_evaluation(state)
                    continue
                self._fail(state.job, f"{type(error).__name__}: {error}")
                continue
            self.finished_jobs += 1
            job = state.job
            trials = [state.trial_record(c) for c in sorted(set(state.val) | set(state.stopped))]
            outcome = MethodOutcome(job.method, job.dataset, job.metric, job.config(state.chosen), trials,
                                    [f.name for f in job.folds], evaluated["fold_scores"], evaluated["predictions"],
                                    evaluated["notes"], time.perf_counter() - state.started, job.refit)
            self.listener.on_outcome(job, outcome, evaluated["models"])

    def _fail(self, job: Job, error: str) -> None:
        self.finished_jobs += 1
        self.listener.on_failure(job, error)

    def progress(self) -> None:
        done = sum(s.finished_units() for s in self.states.values())
        self.listener.on_progress(done, self.total_units, self.finished_jobs, len(self.jobs),
                                  time.perf_counter() - self.started)

    def _evaluator(self):
        """Evaluation actors of this search (one per 4 CPU slots), started on first use. They reserve no CPU:
        Tune's units hold every slot until the search ends, and a job's evaluation (a refit of a classical
        configuration per fold, one prediction of each test part) is short, so it runs beside them as soon as the
        job's units are done, in processes that import the stack once, instead of queueing behind the search."""
        import ray

        if not self._evaluators:  # one per 4 CPU slots: a cluster's evaluations do not queue behind one process
            count = max(1, int(ray.cluster_resources().get("CPU", 1)) // 4)
            self._evaluators = [self._new_evaluator() for _ in range(count)]
        self._evaluator_calls += 1
        return self._evaluators[self._evaluator_calls % len(self._evaluators)]

    def _new_evaluator(self):
        """An evaluation actor without Ray restarts: one that dies is replaced (`_replace_evaluator`) and its lost
        calls are submitted again by `collect_ready`, so a dead or restarting actor is never called again."""
        import ray

        return ray.remote(num_cpus=0)(self.evaluator_cls).remote()

    def _replace_evaluator(self, dead) -> None:
        """Kill `dead` (it may be half alive: unavailable, not yet known dead) and start a fresh actor in its place;
        every call lost with it goes to the fresh one when it is submitted again."""
        import ray

        index = next((i for i, actor in enumerate(self._evaluators) if actor is dead), None)
        if index is None:  # several calls were lost with it: replaced at the first
            return
        try:
            ray.kill(dead, no_restart=True)
        except Exception:  # already gone with its node
            pass
        self._evaluators[index] = self._new_evaluator()

    # -- resources -------------------------------------------------------------------------------------
    def _resources(self, job: Job) -> dict[str, float]:
        if job.neural and self._cluster_gpus > 0:
            return {"CPU": 1, "GPU": self.options.gpus_per_trial}
        return {"CPU": 1}

    # -- the Tune run ----------------------------------------------------------------------------------
    def run(self) -> None:
        import ray

        # GPUs the cluster can provide, also through its autoscaler when no GPU node is up yet (harness.runtime)
        self._cluster_gpus, self._gpu_source = cluster_gpu_capacity()
        self._evaluate = ray.remote(evaluate_job)
        self._evaluators: list = []
        self._evaluator_calls = 0
        todo = self._load_stored()
        self.listener.on_start(self.total_units - len(todo), len(todo))
        needed = {self.jobs[u.job].dataset for u in todo} | {
            s.job.dataset for s in self.states.values() if s.finished_units() == len(s.job.units())}
        self._refs = {name: ray.put(self.data[name]) for name in needed}  # each dataset moved once
        for state in self.states.values():  # jobs a previous run finished searching: evaluate now
            for config in sorted(set(state.val) | set(state.stopped)):
                if state.config_done(config) and len(state.job.folds):
                    self._after_unit(state, config)
        round_ = 0
        while todo:
            lost = self._tune(todo, round_)
            todo = [u for u in lost if not self.states[u.job].submitted]  # a failed job's other units: not again
            left = self._budget_left()
            if not todo or (left is not None and left <= 0):  # a spent budget: reported as unfinished below
                break
            round_ += 1
            for unit in todo:
                self.listener.on_retry(self.jobs[unit.job], f"unit {unit.id} lost with its worker or node "
                                                            f"({lost[unit]}) after Tune's retries, round {round_ + 1} "
                                                            f"of {self.options.max_failures + 1}")
        while self.pending:
            self.collect_ready(timeout=1.0)
            self.progress()
        for evaluator in self._evaluators:
            ray.kill(evaluator)
        for state in self.states.values():
            if not state.submitted:
                missing = len(state.job.units()) - state.finished_units()
                self._fail(state.job, f"{missing} of its units did not finish (time budget or errors)")

    def _budget_left(self) -> float | None:
        if self.options.time_budget_s is None:
            return None
        return self.options.time_budget_s - (time.perf_counter() - self.started)

    def _tune(self, todo: list[Unit], round_: int = 0) -> dict[Unit, str]:
        """One `Tuner.fit` over `todo`. Returns the units Tune gave up on with a cluster-loss error while another
        round is allowed (unit -> the error's type), to be run again in a new round: Tune's own retries can be
        spent by one node death (it may count the same dead actor twice). Any other failure fails its job here."""
        from ray import tune

        units = {u.id: u for u in todo}
        neural = {u.id: self.jobs[u.job].neural for u in todo}
        trainable = tune.with_parameters(_guarded_unit, unit_fn=self.unit_fn, jobs=self.jobs, units=units,
                                         data_refs=self._refs, store_uri=self.options.storage_uri)
        resources = {label: self._resources(job) for label, job in self.jobs.items()}
        trainable = tune.with_resources(
            trainable, lambda config: _placement(resources[units[config["unit"]].job]))
        events = _Events(self, units, rounds_left=self.options.max_failures - round_)
        budget = self.options.time_budget_s if round_ == 0 else self._budget_left()  # a new round: what is left
        use_asha = self.options.scheduler == "asha" or (self.options.scheduler == "auto" and any(neural.values()))
        scheduler = (per_fold_asha(units, neural, self.options.max_epochs, self.options.asha_grace_period)
                     if use_asha else None)
        tuner = tune.Tuner(
            trainable,
            # Units in the order they should start: the slowest (neural) first, so the tail is short.
            param_space={"unit": tune.grid_search(sorted(units, key=lambda u: (not neural[u], u)))},
            tune_config=tune.TuneConfig(reuse_actors=True, scheduler=scheduler, time_budget_s=budget),
            run_config=tune.RunConfig(name=f"search-{stable_hash(sorted(units))}",
                                      storage_path=self.options.storage_uri, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=self.options.max_failures),
                                      callbacks=[events]),
        )
        tuner.fit()
        return events.lost


def _placement(resources: dict[str, float]):
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory([resources])


class _Events(Callback):
    """Tune callback: turns trial results into unit events, and evaluates finished jobs while Tune runs."""

    def __init__(self, search: Search, units: dict[str, Unit], rounds_left: int = 0) -> None:
        self.search, self.units = search, units
        self.rounds_left = rounds_left
        self.lost: dict[Unit, str] = {}  # units to run again in a new round -> the error's type
        self.last_progress = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get(METHOD_ERROR):  # the method raised: its job fails once, with the method's message
            unit = self.units[trial.config["unit"]]
            state = self.search.states[unit.job]
            if not state.submitted:
                state.submitted = True
                self.search._fail(state.job, f"unit {unit.id} failed: {result[METHOD_ERROR]}")
        elif result.get("final"):
            unit = self.units[trial.config["unit"]]
            val = {m: float(result[f"val_{m}"]) for m in HEADLINE_METRICS}
            stored = self.search.store.load(self.search.jobs[unit.job].unit_key(unit.config, unit.fold))
            self.search.unit_finished(unit, val, stored["notes"] if stored else {})

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        if not result.get("final"):  # stopped by the scheduler before its fit finished
            unit = self.units[trial.config["unit"]]
            self.search.unit_finished(unit, None, {}, stopped_at=int(result.get("epoch", 0)))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        unit = self.units[trial.config["unit"]]
        state = self.search.states[unit.job]
        if state.submitted:  # the job failed already
            return
        error = _trial_error(trial)
        if lost_with_cluster(error) and self.rounds_left > 0:
            self.lost[unit] = type(error).__name__
            return
        state.submitted = True
        reason = one_line(error) if error is not None else _last_line(trial.error_file)
        self.search._fail(state.job, f"unit {unit.id} failed after {trial.num_failures} attempts: {reason}")

    def on_step_end(self, iteration, trials, **info) -> None:
        self.search.collect_ready()
        now = time.perf_counter()
        if now - self.last_progress >= 1.0:  # a terminal bar moves; a log file gets a line per 10 s (Progress)
            self.last_progress = now
            self.search.progress()
