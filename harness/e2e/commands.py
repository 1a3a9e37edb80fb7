"""`harness e2e`: train the A-V cross-attention method end to end from decoded clips on Ray Train, on every
fold of the dataset's protocol (`--protocol` picks a card alternative), and score each fold's test part once.

Example (CPU smoke run on the built-in corpus):  harness e2e --dataset synthetic --workers 2 --epochs 1
Resume the same run later with more epochs:      harness e2e --dataset synthetic --epochs 3 --resume

Each invocation is one MLflow result, `<variant>-e2e-<backbone>` (the variant trained with the same loss:
`av-xattn`, `av-xattn-emotion` or `av-xattn-triplet`), in the experiment `harness run` uses, so `harness report`
ranks it (in its own evaluation setting: the e2e options) beside the feature-mode results and the paper's claims.

The flags are parsed in `harness.cli.e2e`; `cmd_e2e` takes the resolved settings and the parsed options.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def cmd_e2e(settings: Any, args: Any) -> int:
    """Train every fold of the chosen protocol (or the one `--fold`) end to end, then score each fold's test
    part once with its best-epoch weights; per-fold and mean +- std test metrics are printed and written to
    `<storage>/<run>-test.json`, and the result is logged to MLflow as the parent run `<variant>-e2e-<backbone>`
    (`harness.e2e.leaderboard`), which `harness report` ranks. A run that raises, or a fold without a
    checkpoint, marks the MLflow run FAILED. `args` holds the options `harness.cli.e2e` defines."""
    import torch

    from harness.corpus import CorpusNotFound, open_corpus
    from harness.datasets import get_dataset
    from harness.e2e.clips import build_clip_cache
    from harness.e2e.leaderboard import start_run
    from harness.e2e.train import evaluate_split, latest_checkpoint, run_e2e
    from harness.metrics import summarise_folds
    from harness.runtime import init_ray, log

    started = time.perf_counter()
    spec = (get_dataset(args.dataset).with_protocol(settings.protocols.get(args.dataset))
            .with_target(settings.targets.get(args.dataset)))
    if not {"audio", "video"} <= set(spec.modalities):
        log(f"[e2e] {spec.name} has no audio+video; the end-to-end mode needs both")
        return 2
    try:
        corpus = open_corpus(settings, spec, say=log)
    except CorpusNotFound as error:
        log(f"[e2e] {error}")
        return 2
    manifest, folds = corpus.manifest, corpus.folds
    chosen = folds if args.fold is None else [folds[args.fold]]
    config = e2e_config(args, settings.seed)
    clips = config.clips
    storage = args.storage or settings.workspace / "e2e"
    log(f"[e2e] decoding {len(manifest)} clips of {spec.name} (cached)")
    cache = build_clip_cache(manifest, clips, storage / "clips" / spec.name)
    use_gpu = torch.cuda.is_available() and not args.cpu
    workers = args.workers or (torch.cuda.device_count() if use_gpu else 2)
    init_ray(settings)
    base = args.run_name or f"e2e-{manifest.dataset}-{config.backbone}"
    report: dict[str, Any] = {"dataset": manifest.dataset, "protocol": spec.protocol.name, "backbone": config.backbone,
                              "front_end": clips.front_end, "crop": clips.crop, "folds": []}
    tracked = start_run(settings, spec, manifest, folds, chosen, config, cache, workers, use_gpu)
    report.update(method=tracked.tags.method, mlflow_run_id=tracked.parent_id)
    log(f"[e2e] MLflow result {tracked.tags.method}@{manifest.dataset}: run {tracked.parent_id}")
    scores: list[Any] = []
    missing: list[str] = []
    try:
        for fold in chosen:
            name = f"{base}-{fold.name}"
            resume = latest_checkpoint(storage / name) if args.resume == "latest" else args.resume
            if args.resume == "latest" and resume is None:
                log(f"[e2e] nothing to resume under {storage / name}; starting fresh")
            result = run_e2e(cache, manifest.classes, fold.train, fold.val, config, storage, name, workers=workers,
                             use_gpu=use_gpu, polarity=dict(spec.polarity) or None, resume_from=resume)
            if result.checkpoint is None:
                log(f"[e2e] {name}: no checkpoint; its test part is not scored")
                missing.append(fold.name)
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
            report["folds"].append({"fold": fold.name, "run": result.path, "checkpoint": result.checkpoint,
                                    "best_epoch": epoch, "test": headline, "validation": result.metrics,
                                    "validation_best_epoch": val_scores.headline()})
        if scores:
            report["test_summary"] = summarise_folds(scores)
        if missing:
            error = (f"folds {', '.join(missing)} produced no checkpoint, so the result does not cover the "
                     f"protocol; see the Ray Train runs under {storage}")
            tracked.fail(error)
            report["error"] = error
            _write_report(storage, base, report)
            log(f"[e2e] {error}; MLflow run {tracked.parent_id} marked FAILED")
            return 1
        tracked.finish(time.perf_counter() - started, report)
    except BaseException as error:  # the parent must not stay RUNNING (Ctrl-C included)
        tracked.fail(f"{type(error).__name__}: {error}")
        report["error"] = f"{type(error).__name__}: {error}"
        _write_report(storage, base, report)
        raise
    _write_report(storage, base, report)
    return 0


# `harness e2e --preset paper`: Mocanu et al. §4.2 for every option the command line leaves open.
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
    return E2EConfig(backbone=backbone, video_weights=args.video_weights, audio_weights=args.audio_weights,
                     epochs=args.epochs, batch_size=option("batch_size", 16), lr=option("lr", 1e-4),
                     m_prime=option("m_prime", None) or (512 if big else 32), augment=not args.no_augment,
                     loss=loss, metric_loss=metric_loss, seed=seed, clips=clips)


def _write_report(storage: Path, base: str, report: dict[str, Any]) -> None:
    """The JSON report beside the runs (kept as it was before the MLflow result existed) and on stdout."""
    out = Path(storage) / f"{base}-test.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
