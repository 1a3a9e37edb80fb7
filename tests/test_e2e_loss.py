"""`harness e2e --loss` and `--preset paper`: the paper's loss and sizes, and results named so claims meet them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.claims import claims_for
from harness.cli import build_parser
from harness.e2e.clips import ClipSettings, _segment_spectrograms
from harness.e2e.commands import e2e_config
from harness.e2e.leaderboard import method_name
from methods import method_names


def parse(*flags: str):
    return build_parser().parse_args(["e2e", *flags])


def test_e2e_help_lists_the_loss_and_the_paper_preset() -> None:
    out = subprocess.run([sys.executable, "-m", "harness.cli", "e2e", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--loss {metric,ce+metric,triplet}" in out and "--preset" in out and "--spectrogram-size" in out


def test_without_a_preset_the_smoke_setting_and_ce_plus_metric_stay_the_defaults() -> None:
    config = e2e_config(parse(), seed=0)
    assert (config.backbone, config.loss, config.metric_loss, config.batch_size, config.lr) == (
        "tiny", "ce+metric", "emotion", 16, 1e-4)
    assert (config.clips.frame_size, config.clips.front_end, config.clips.image_size) == (32, "logmel", None)


def test_the_paper_preset_fills_every_option_not_given_with_the_papers_value() -> None:
    """Mocanu §4.2/§3.4: Eq. 16 alone, 3-D ResNet-101, STFT, 224x224 faces and spectrograms, 16 frames, m' 512."""
    config = e2e_config(parse("--preset", "paper"), seed=0)
    assert (config.backbone, config.loss, config.metric_loss, config.m_prime, config.batch_size, config.lr) == (
        "r3d_101", "metric", "emotion", 512, 16, 1e-4)
    clips = config.clips
    assert (clips.front_end, clips.crop, clips.frame_size, clips.image_size, clips.frames_per_snippet) == (
        "stft", "face", 224, 224, 16)
    small = e2e_config(parse("--preset", "paper", "--backbone", "tiny", "--frame-size", "32", "--spectrogram-size",
                             "32", "--frames-per-snippet", "4", "--m-prime", "32"), seed=0)
    assert (small.backbone, small.clips.frame_size, small.clips.image_size, small.loss) == ("tiny", 32, 32, "metric")


@pytest.mark.parametrize("flag,loss,metric_loss,variant,ravdess_claim", [
    ("metric", "metric", "emotion", "av-xattn-emotion", "M1"),
    ("triplet", "metric", "triplet", "av-xattn-triplet", "M3"),
    ("ce+metric", "ce+metric", "emotion", "av-xattn", "M1"),
])
def test_each_loss_names_its_variant_and_meets_that_variants_claims(flag: str, loss: str, metric_loss: str,
                                                                     variant: str, ravdess_claim: str) -> None:
    config = e2e_config(parse("--loss", flag), seed=0)
    assert (config.loss, config.metric_loss) == (loss, metric_loss)
    name = method_name("tiny", config.loss, config.metric_loss)
    assert name == f"{variant}-e2e-tiny" and variant in method_names()
    assert [c.id for c in claims_for("ravdess", name)] == [ravdess_claim]


def test_spectrogram_images_are_resized_to_the_papers_224_squares() -> None:
    wave = np.random.default_rng(0).normal(size=16_000 * 3).astype(np.float32)
    images = _segment_spectrograms(wave, ClipSettings(front_end="stft", image_size=224))
    assert images.shape == (6, 224, 224) and np.isfinite(images).all()
    assert ClipSettings(front_end="stft", image_size=224).spectrogram_bins == 224
    assert _segment_spectrograms(wave, ClipSettings(front_end="stft")).shape == (6, 256, 16)
