"""`harness e2e`: train the A-V cross-attention method end to end from decoded clips on Ray Train.

Example (CPU smoke run on the built-in corpus):  harness e2e --dataset synthetic --workers 2 --epochs 1
Resume the same run later with more epochs:      harness e2e --dataset synthetic --epochs 3 --resume

The flags are parsed in `harness.cli.e2e`; `cmd_e2e` takes the resolved settings and the parsed options.
"""

from __future__ import annotations

import json
from typing import Any


def cmd_e2e(settings: Any, args: Any) -> int:
    """Train one fold end to end; `args` holds the options `harness.cli.e2e` defines (dataset, fold, epochs...)."""
    import torch

    from harness.datasets import get_dataset
    from harness.e2e.clips import ClipSettings, build_clip_cache
    from harness.e2e.train import E2EConfig, latest_checkpoint, run_e2e
    from harness.pipeline import load_manifest, locate_dataset
    from harness.protocols import load_or_make_folds
    from harness.runtime import init_ray, log

    spec = get_dataset(args.dataset)
    if not {"audio", "video"} <= set(spec.modalities):
        log(f"[e2e] {spec.name} has no audio+video; the end-to-end mode needs both")
        return 2
    ok, why = locate_dataset(settings, spec)
    if not ok:
        log(f"[e2e] {spec.name}: {why}")
        return 2
    manifest = load_manifest(settings, spec)
    folds = load_or_make_folds(settings.manifest_dir(spec.name) / "folds.json", manifest, spec.protocol)
    fold = folds[args.fold]
    resnet = args.backbone == "resnet"
    clips = ClipSettings(frame_size=args.frame_size or (112 if resnet else 32),
                         frames_per_snippet=args.frames_per_snippet or (16 if resnet else 4))
    config = E2EConfig(backbone=args.backbone, video_weights=args.video_weights, audio_weights=args.audio_weights,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       m_prime=args.m_prime or (512 if resnet else 32), augment=not args.no_augment,
                       seed=settings.seed, clips=clips)
    storage = args.storage or settings.workspace / "e2e"
    log(f"[e2e] decoding {len(manifest)} clips of {spec.name} (cached)")
    cache = build_clip_cache(manifest, clips, storage / "clips" / spec.name)
    name = args.run_name or f"e2e-{spec.name}-{fold.name}-{args.backbone}"
    resume = latest_checkpoint(storage / name) if args.resume == "latest" else args.resume
    if args.resume == "latest" and resume is None:
        log(f"[e2e] nothing to resume under {storage / name}; starting fresh")
    use_gpu = torch.cuda.is_available() and not args.cpu
    workers = args.workers or (torch.cuda.device_count() if use_gpu else 2)
    init_ray(settings)
    result = run_e2e(cache, manifest.classes, fold.train, fold.val, config, storage, name, workers=workers,
                     use_gpu=use_gpu, polarity=dict(spec.polarity) or None, resume_from=resume)
    print(json.dumps({"run": result.path, "checkpoint": result.checkpoint, **result.metrics}, indent=2))
    return 0
