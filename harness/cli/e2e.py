"""`harness e2e`: train the A-V cross-attention method end to end from decoded clips on Ray Train.

Example (CPU smoke run on the built-in corpus):  harness e2e --dataset synthetic --workers 2 --epochs 1
Resume the same run later with more epochs:      harness e2e --dataset synthetic --epochs 3 --resume

Each invocation is one MLflow result, av-xattn-e2e-<backbone>, in the experiment `harness run` writes to
(--tracking-uri, --experiment), so `harness report` lists it; the JSON report is written as well.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import add_ray_flags, add_settings_flags, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("e2e", help="end-to-end A-V cross-attention training on Ray Train (DDP)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", help="a dataset with audio and video (default: synthetic)")
    parser.add_argument("--fold", type=int, default=None,
                        help="train and test only this fold (default: every fold of the protocol)")
    parser.add_argument("--protocol", action="append", metavar="DATASET=NAME",
                        help="evaluate DATASET by its card's protocol alternative NAME (as in harness run)")
    parser.add_argument("--target", action="append", dest="targets", metavar="DATASET=NAME",
                        help="a card's label set or subset, e.g. ravdess=song (as in harness run)")
    parser.add_argument("--seed", type=int, help="seed for training (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray Train workers (default: one per GPU, else 2 CPU workers)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--backbone", choices=("tiny", "resnet", "r3d_101"), default="tiny",
                        help="tiny CNNs (CPU smoke runs), torchvision r3d_18 + resnet18 (not the paper's video "
                             "network), or a 3-D ResNet-101 + resnet18 (the depth the paper names)")
    parser.add_argument("--front-end", choices=("logmel", "stft"), default="logmel",
                        help="audio images: 32-bin log-mel, or a 256-bin Hamming-window STFT")
    parser.add_argument("--crop", choices=("frame", "face"), default="frame",
                        help="video from whole frames or from aligned face crops (--frame-size 224 for the paper)")
    parser.add_argument("--face-detector", choices=("mtcnn", "full-frame"), default="mtcnn",
                        help="detector for --crop face (full-frame: the whole frame as the face, for tests)")
    parser.add_argument("--video-weights", help="local state_dict file for the video backbone, loaded strictly "
                        "(e.g. Kinetics-400 r3d_18)")
    parser.add_argument("--audio-weights", help="local state_dict file for resnet18 (e.g. ImageNet)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--m-prime", type=int, default=None, help="fusion width m' (default: 32 tiny, 512 resnet)")
    parser.add_argument("--frame-size", type=int, default=None, help="frame side (default: 32 tiny, 112 resnet)")
    parser.add_argument("--frames-per-snippet", type=int, default=None, help="default: 4 tiny, 16 resnet")
    parser.add_argument("--no-augment", action="store_true", help="disable random crop / flip / brightness")
    parser.add_argument("--run-name", help="Ray Train run name prefix (default: e2e-<dataset>-<backbone>; the fold "
                        "name is appended)")
    parser.add_argument("--storage", type=Path, help="where runs and checkpoints go (default: <workspace>/e2e)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint folder, or the run's latest one when no path is given")
    parser.add_argument("--cpu", action="store_true", help="CPU workers even when GPUs are present")
    add_ray_flags(parser)
    add_settings_flags(parser)
    parser.set_defaults(func=cmd_e2e)


def cmd_e2e(args: argparse.Namespace) -> int:
    from harness.e2e.commands import cmd_e2e as train_end_to_end

    return train_end_to_end(settings_from_args(args), args)
