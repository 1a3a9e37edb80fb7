"""`harness e2e`: train the A-V cross-attention method end to end from decoded clips on Ray Train.

Example (CPU smoke run on the built-in corpus):  harness e2e --dataset synthetic --workers 2 --epochs 1
Resume the same run later with more epochs:      harness e2e --dataset synthetic --epochs 3 --resume
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("e2e", help="end-to-end A-V cross-attention training on Ray Train (DDP)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from harness.cli import add_settings_flags

    add_settings_flags(parser)
    parser.add_argument("--dataset", default="synthetic", help="a dataset with audio and video (default: synthetic)")
    parser.add_argument("--fold", type=int, default=0, help="which fold of the dataset's protocol (default: 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray Train workers (default: one per GPU, else 2 CPU workers)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--backbone", choices=("tiny", "resnet"), default="tiny",
                        help="tiny CNNs (CPU smoke runs) or torchvision r3d_18 + resnet18 (the paper's setting)")
    parser.add_argument("--video-weights", help="local state_dict file for r3d_18 (e.g. Kinetics-400)")
    parser.add_argument("--audio-weights", help="local state_dict file for resnet18 (e.g. ImageNet)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--m-prime", type=int, default=None, help="fusion width m' (default: 32 tiny, 512 resnet)")
    parser.add_argument("--frame-size", type=int, default=None, help="frame side (default: 32 tiny, 112 resnet)")
    parser.add_argument("--frames-per-snippet", type=int, default=None, help="default: 4 tiny, 16 resnet")
    parser.add_argument("--no-augment", action="store_true", help="disable random crop / flip / brightness")
    parser.add_argument("--run-name", help="Ray Train run name (default: e2e-<dataset>-fold<k>-<backbone>)")
    parser.add_argument("--storage", type=Path, help="where runs and checkpoints go (default: <workspace>/e2e)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint folder, or the run's latest one when no path is given")
    parser.add_argument("--cpu", action="store_true", help="CPU workers even when GPUs are present")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray instance")
    parser.add_argument("--address", help="an existing Ray cluster")
    parser.set_defaults(func=cmd_e2e)


def cmd_e2e(args: argparse.Namespace) -> int:
    import torch

    from harness.cli import settings_from_args
    from harness.datasets import get_dataset
    from harness.e2e.clips import ClipSettings, build_clip_cache
    from harness.e2e.train import E2EConfig, latest_checkpoint, run_e2e
    from harness.pipeline import init_ray, load_manifest, locate_dataset, log
    from harness.protocols import load_or_make_folds

    settings = settings_from_args(args)
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
