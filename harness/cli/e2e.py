"""`harness e2e`: train the A-V cross-attention method end to end from decoded clips on Ray Train.

Example (CPU smoke run on the built-in corpus):  harness e2e --dataset synthetic --workers 2 --epochs 1
Resume the same run later with more epochs:      harness e2e --dataset synthetic --epochs 3 --resume

Each invocation is one MLflow result, <variant>-e2e-<backbone> (av-xattn-e2e-* for --loss ce+metric,
av-xattn-emotion-e2e-* for metric, av-xattn-triplet-e2e-* for triplet), in the experiment `harness run` writes to
(--tracking-uri, --experiment), so `harness report` lists it beside the paper's claims; the JSON report is
written as well.

The paper's setting (Mocanu et al. 2023, §4.2), with your ImageNet/Kinetics 3-D ResNet-101 state_dict:
  harness e2e --dataset ravdess --protocol ravdess=av-crossattention-10fold --preset paper \
      --video-weights r3d101_kinetics.pt --audio-weights resnet18_imagenet.pt --epochs 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import add_ray_flags, add_settings_flags, fail, settings_from_args

LOSSES = ("metric", "ce+metric", "triplet")  # --loss; harness.e2e.commands maps them onto E2EConfig


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
    parser.add_argument("--backbone", choices=("tiny", "resnet", "r3d_101"), default=None,
                        help="tiny CNNs (CPU smoke runs; the default), torchvision r3d_18 + resnet18 (not the "
                             "paper's video network), or a 3-D ResNet-101 + resnet18 (the depth the paper names)")
    parser.add_argument("--front-end", choices=("logmel", "stft"), default=None,
                        help="audio images: 32-bin log-mel (the default), or a 256-bin Hamming-window STFT "
                             "(paper §4.2)")
    parser.add_argument("--crop", choices=("frame", "face"), default=None,
                        help="video from whole frames (the default) or from aligned face crops (the paper, with "
                             "--frame-size 224)")
    parser.add_argument("--face-detector", choices=("mtcnn", "full-frame"), default="mtcnn",
                        help="detector for --crop face (full-frame: the whole frame as the face, for tests)")
    parser.add_argument("--video-weights", help="local state_dict file for the video backbone, loaded strictly "
                        "(e.g. Kinetics-400 r3d_18)")
    parser.add_argument("--audio-weights", help="local state_dict file for resnet18 (e.g. ImageNet)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 (paper §4.2)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate, default 1e-4 (paper §4.2)")
    parser.add_argument("--loss", choices=LOSSES, default=None,
                        help="metric: the emotion metric loss (Eq. 16) alone shapes the network, the classifier "
                             "learns from cross-entropy on the detached embedding (the paper, §3.4; the default "
                             "under --preset paper); ce+metric: cross-entropy + Eq. 16 through the whole network "
                             "(the default otherwise); triplet: the plain triplet loss alone (Table 3's baseline)")
    parser.add_argument("--preset", choices=("default", "paper"), default=None,
                        help="paper: Mocanu et al.'s setting for every option not given on the command line "
                             "(--loss metric, r3d_101, STFT front end, 224x224 face crops and spectrogram images, "
                             "16 frames per snippet, m' 512, batch 16, lr 1e-4); default: the CPU smoke setting")
    parser.add_argument("--m-prime", type=int, default=None, help="fusion width m' (default: 32 tiny, 512 resnet)")
    parser.add_argument("--frame-size", type=int, default=None,
                        help="frame side (default: 32 tiny, 112 resnet, 224 under --preset paper: §4.2)")
    parser.add_argument("--spectrogram-size", type=int, default=None,
                        help="resize each audio segment's image to this square (paper §4.2: 224; default: "
                             "bins x 16 frames, or 224 under --preset paper)")
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
    """Flags -> `E2EOptions`; the engine's report printed as JSON; exit 1 when a fold has no checkpoint, 2 when
    the run cannot start. The run writes its result to the experiment `harness run` uses, so it takes the same
    preflight checks and the experiment's lease (one driver per experiment: a `harness run` starting meanwhile
    would mark this run's RUNNING parent KILLED), given back on every exit but SIGKILL."""
    import json
    from dataclasses import fields

    from harness.cli.preflight import preflight
    from harness.e2e.commands import E2EError, E2EOptions, run

    settings = settings_from_args(args)
    options = E2EOptions(**{f.name: getattr(args, f.name) for f in fields(E2EOptions)})
    try:
        with preflight(settings):  # before Ray starts; released on every exit path
            report = run(settings, options)
    except E2EError as error:
        return fail(args, str(error))
    print(json.dumps(report.record, indent=2, default=str))
    return 1 if report.failed else 0
