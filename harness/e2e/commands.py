"""`harness e2e`: train the A-V cross-attention method end to end from decoded clips on Ray Train, on every
fold of the dataset's protocol (`--protocol` picks a card alternative), and score each fold's test part once.

Example (CPU smoke run on the built-in corpus):  harness e2e --dataset synthetic --workers 2 --epochs 1
Resume the same run later with more epochs:      harness e2e --dataset synthetic --epochs 3 --resume

Each invocation is one MLflow result, `<variant>-e2e-<backbone>` (the variant trained with the same loss:
`av-xattn`, `av-xattn-emotion` or `av-xattn-triplet`), in the experiment `harness run` uses, so `harness report`
ranks it (in its own evaluation setting: the e2e options) beside the feature-mode results and the paper's claims.

The flags are parsed in `harness.cli.e2e` into `E2EOptions`; `run(settings, options)` returns an `E2EReport`, which
the command prints (and turns into its exit status).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class E2EError(ValueError):
    """A run that cannot start (a dataset without audio+video, a corpus not found, a `--resume` checkpoint it
    cannot continue); one line, before Ray."""


@dataclass(frozen=True)
class E2EOptions:
    """What one `harness e2e` run trains, beside the settings. The names are the command's flags (None: not
    given; `e2e_config` fills those from the paper preset or the CPU smoke setting)."""

    dataset: str = "synthetic"
    fold: int | None = None  # train and test only this fold (default: every fold of the protocol)
    workers: int | None = None  # Ray Train workers (default: one per GPU, else 2 CPU workers)
    epochs: int = 1
    backbone: str | None = None
    front_end: str | None = None
    crop: str | None = None
    face_detector: str = "mtcnn"
    video_weights: str | None = None
    audio_weights: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    loss: str | None = None
    preset: str | None = None
    m_prime: int | None = None
    frame_size: int | None = None
    spectrogram_size: int | None = None
    frames_per_snippet: int | None = None
    no_augment: bool = False
    run_name: str | None = None
    storage: Path | None = None  # default <workspace>/e2e
    resume: str | None = None  # a checkpoint folder, or "latest"
    cpu: bool = False  # CPU workers even when GPUs are present


@dataclass
class E2EReport:
    """What one `harness e2e` run did: the JSON record written beside the runs (`path`), and whether the result
    covers the protocol (`failed`: folds without a checkpoint; the MLflow run is then FAILED)."""

    record: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def failed(self) -> bool:
        return "error" in self.record


def run(settings: Any, options: E2EOptions) -> E2EReport:
    """Train every fold of the chosen protocol (or the one `options.fold`) end to end, then score each fold's
    test part once with its best-epoch weights; per-fold and mean +- std test metrics go into the report, which is
    also written to `<storage>/<run>-test.json`, and the result is logged to MLflow as the parent run
    `<variant>-e2e-<backbone>` (`harness.e2e.leaderboard`), which `harness report` ranks. A run that raises, or a
    fold without a checkpoint, marks the MLflow run FAILED. Raises E2EError before any work when the run cannot
    start."""
    import torch

    from harness.corpus import CorpusNotFound, open_corpus
    from harness.datasets import get_dataset
    from harness.e2e.clips import build_clip_cache
    from harness.e2e.leaderboard import start_run
    from harness.e2e.train import evaluate_split, run_e2e
    from harness.metrics import summarise_folds
    from harness.runtime import Progress, init_ray, log

    started = time.perf_counter()
    spec = (get_dataset(options.dataset).with_protocol(settings.protocols.get(options.dataset))
            .with_target(settings.targets.get(options.dataset)))
    if not {"audio", "video"} <= set(spec.modalities):
        raise E2EError(f"{spec.name} has no audio+video; the end-to-end mode needs both")
    try:
        corpus = open_corpus(settings, spec, say=log)
    except CorpusNotFound as error:
        raise E2EError(str(error)) from None
    manifest, folds = corpus.manifest, corpus.folds
    chosen = folds if options.fold is None else [folds[options.fold]]
    config = e2e_config(options, settings.seed)
    clips = config.clips
    storage = options.storage or settings.workspace / "e2e"
    base = options.run_name or f"e2e-{manifest.dataset}-{config.backbone}"
    # every fold's checkpoint is checked before clips are decoded and Ray starts: a refusal is one line, not a
    # traceback from a fold hours into the run, and leaves no FAILED MLflow run behind
    resumes = {fold.name: resume_checkpoint(options.resume, storage / f"{base}-{fold.name}", config)
               for fold in chosen}
    log(f"[e2e] decoding {len(manifest)} clips of {spec.name} (cached)")
    cache = build_clip_cache(manifest, clips, storage / "clips" / spec.name)
    use_gpu = torch.cuda.is_available() and not options.cpu
    workers = options.workers or (torch.cuda.device_count() if use_gpu else 2)
    init_ray(settings)
    record: dict[str, Any] = {"dataset": manifest.dataset, "protocol": spec.protocol.name,
                              "backbone": config.backbone, "front_end": clips.front_end, "crop": clips.crop,
                              "folds": []}
    tracked = start_run(settings, spec, manifest, folds, chosen, config, cache, workers, use_gpu)
    record.update(method=tracked.tags.method, mlflow_run_id=tracked.parent_id)
    log(f"[e2e] MLflow result {tracked.tags.method}@{manifest.dataset}: run {tracked.parent_id}")
    scores: list[Any] = []
    missing: list[str] = []
    # the folds train one after another, each a blocking Ray Train run that reports its epochs to the controller,
    # not to this driver: the display counts folds
    progress = Progress("e2e", f"{tracked.tags.method}@{manifest.dataset}", len(chosen), "folds")
    try:
        for fold in chosen:
            name = f"{base}-{fold.name}"
            result = run_e2e(cache, manifest.classes, fold.train, fold.val, config, storage, name, workers=workers,
                             use_gpu=use_gpu, polarity=dict(spec.polarity) or None, resume_from=resumes[fold.name])
            if result.checkpoint is None:
                log(f"[e2e] {name}: no checkpoint; its test part is not scored")
                missing.append(fold.name)
                progress.set(len(scores) + len(missing), f"{len(missing)} without a checkpoint")
                continue
            fold_scores, scored = evaluate_split(result.checkpoint, cache, fold.test, manifest.classes)
            val_scores, _ = evaluate_split(result.checkpoint, cache, fold.val, manifest.classes)
            epoch = scored["epoch"]
            scores.append(fold_scores)
            tracked.add_fold(fold.name, fold_scores, scored, val_scores,
                             {"best_epoch": epoch, "epochs_trained": scored["last_epoch"] + 1})
            headline = fold_scores.headline()
            log(f"[e2e] {name}: test " + ", ".join(f"{k} {v:.3f}" for k, v in headline.items())
                + f" (best epoch {epoch})")
            record["folds"].append({"fold": fold.name, "run": result.path, "checkpoint": result.checkpoint,
                                    "best_epoch": epoch, "test": headline, "validation": result.metrics,
                                    "validation_best_epoch": val_scores.headline()})
            progress.set(len(scores) + len(missing), progress.extra)
        progress.close()
        if scores:
            record["test_summary"] = summarise_folds(scores)
        if missing:
            error = (f"folds {', '.join(missing)} produced no checkpoint, so the result does not cover the "
                     f"protocol; see the Ray Train runs under {storage}")
            tracked.fail(error)
            record["error"] = error
            log(f"[e2e] {error}; MLflow run {tracked.parent_id} marked FAILED")
            return E2EReport(record, _write_record(storage, base, record))
        tracked.finish(time.perf_counter() - started, record)
    except BaseException as error:  # the parent must not stay RUNNING (Ctrl-C included)
        progress.close()
        tracked.fail(f"{type(error).__name__}: {error}")
        record["error"] = f"{type(error).__name__}: {error}"
        _write_record(storage, base, record)
        raise
    return E2EReport(record, _write_record(storage, base, record))


def resume_checkpoint(resume: str | None, run_dir: Path, config: Any) -> str | None:
    """The checkpoint folder one fold continues from (None: a fresh start), checked; E2EError naming the folder
    and the fix when the run cannot continue it. `resume` is `--resume`: None, "latest" (the newest checkpoint
    under `run_dir`, or a fresh start when there is none) or a folder."""
    from harness.e2e.train import check_resume, latest_checkpoint
    from harness.runtime import log
    from methods.neural.early_stopping import EarlyStoppingStateError

    if resume is None:
        return None
    folder = latest_checkpoint(run_dir) if resume == "latest" else resume
    if folder is None:
        log(f"[e2e] nothing to resume under {run_dir}; starting fresh")
        return None
    try:
        check_resume(folder, config)
    except FileNotFoundError as error:
        raise E2EError(f"--resume {error}; give a checkpoint_* folder of an earlier harness e2e run, or --resume "
                       "alone for the run's latest one") from None
    except EarlyStoppingStateError as error:
        paper = paper_stopping().get("select_by", "uar")
        raise E2EError(f"--resume {error} (--preset paper selects by {paper}, the default by uar; a fresh run: "
                       "another --run-name)") from None
    return folder


# `harness e2e --preset paper`: Mocanu et al. §4.2 for every option the command line leaves open (the stopping
# rule's `select_by` and `patience` are read from the method's own paper preset, `paper_stopping`).
PAPER = {"backbone": "r3d_101", "front_end": "stft", "crop": "face", "frame_size": 224, "spectrogram_size": 224,
         "frames_per_snippet": 16, "m_prime": 512, "batch_size": 16, "lr": 1e-4, "loss": "metric"}
LOSS_OPTIONS = {"metric": ("metric", "emotion"), "ce+metric": ("ce+metric", "emotion"),
                "triplet": ("metric", "triplet")}


def e2e_config(args: Any, seed: int) -> Any:
    """The run's E2EConfig from the parsed options (None: not given): a given option wins; else, under `--preset
    paper`, the paper's value; else the CPU smoke setting."""
    from harness.e2e.clips import ClipSettings
    from harness.e2e.train import E2EConfig

    paper = getattr(args, "preset", None) == "paper"

    def option(name: str, smoke: Any) -> Any:
        given = getattr(args, name, None)
        if given is not None:
            return given
        return PAPER.get(name, smoke) if paper else smoke

    backbone = option("backbone", "tiny")
    big = backbone != "tiny"
    clips = ClipSettings(frame_size=option("frame_size", None) or (112 if big else 32),
                         frames_per_snippet=option("frames_per_snippet", None) or (16 if big else 4),
                         front_end=option("front_end", "logmel"), crop=option("crop", "frame"),
                         face_detector=getattr(args, "face_detector", None) or "mtcnn",
                         image_size=option("spectrogram_size", None))
    loss, metric_loss = LOSS_OPTIONS[option("loss", "ce+metric")]
    stopping = paper_stopping() if paper else {}
    return E2EConfig(select_by=stopping.get("select_by", "uar"), patience=stopping.get("patience", 20),
                     backbone=backbone, video_weights=args.video_weights, audio_weights=args.audio_weights,
                     epochs=args.epochs, batch_size=option("batch_size", 16), lr=option("lr", 1e-4),
                     m_prime=option("m_prime", None) or (512 if big else 32), augment=not args.no_augment,
                     loss=loss, metric_loss=metric_loss, seed=seed, clips=clips)


def paper_stopping() -> dict[str, Any]:
    """`select_by` and `patience` as the A-V cross-attention method's paper preset states them (Mocanu §4.2: stop
    when the accuracy has not improved in 20 epochs), so the end-to-end run selects its best epoch as the paper
    and the feature-mode preset do, from one source."""
    from methods.neural.av_cross_attention import AVCrossAttention

    values = AVCrossAttention.presets["paper"].values
    return {k: values[k] for k in ("select_by", "patience") if k in values}


def _write_record(storage: Path, base: str, record: dict[str, Any]) -> Path:
    """The JSON report beside the runs (kept as it was before the MLflow result existed); returns its path."""
    out = Path(storage) / f"{base}-test.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str))
    return out
