"""End-to-end front ends and backbones: STFT images, face crops, the 3-D bottleneck ResNet, strict weights, and
scoring a fold's test part into the harness's metrics."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.datasets.synthetic import SyntheticConfig, generate, scan
from harness.e2e.clips import ClipSettings, _segment_spectrograms, build_clip_cache
from harness.e2e.models import (
    R3D_101_LAYERS,
    EndToEndAV,
    R3DBottleneckBackbone,
    TinyAudioBackbone,
    WeightsMismatchError,
    build_backbones,
    load_weights_strictly,
)
from harness.e2e.train import STATE_FILE, E2EConfig, score_checkpoint, score_test_fold
from harness.metrics import score

CLASSES = ["neutral", "happy", "angry", "sad"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stft_front_end_has_256_hamming_bins_and_puts_a_tone_in_its_bin() -> None:
    settings = ClipSettings(front_end="stft", spec_frames=8)
    rate, tone = 16_000, 1_000.0
    wave = np.sin(2 * np.pi * tone * np.arange(rate * 2) / rate).astype(np.float32)
    images = _segment_spectrograms(wave, settings)
    assert images.shape == (6, 256, 8) and settings.spectrogram_bins == 256
    n_fft = 2 * (256 - 1)
    assert int(images[0].mean(axis=1).argmax()) == round(tone * n_fft / rate)  # bin spacing rate / n_fft
    logmel = _segment_spectrograms(wave, ClipSettings(spec_frames=8))
    assert logmel.shape == (6, 32, 8)
    with pytest.raises(ValueError, match="front_end must be one of"):
        ClipSettings(front_end="mfcc")


def test_face_crops_feed_the_snippets_and_an_stft_image_feeds_the_audio_backbone(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    generate(root, SyntheticConfig(n_speakers=1, clips_per_emotion=1))
    manifest = scan(root)
    settings = ClipSettings(frame_size=48, crop="face", face_detector="full-frame", front_end="stft",
                            stft_bins=64, spec_frames=8)
    arrays = np.load(build_clip_cache(manifest, settings, tmp_path / "cache"))
    assert arrays["video"].shape == (len(manifest), 6, 4, 48, 48, 3)
    assert arrays["audio"].shape == (len(manifest), 6, 64, 8)
    frames_cache = np.load(build_clip_cache(manifest, ClipSettings(frame_size=48), tmp_path / "cache"))
    assert not np.array_equal(frames_cache["video"], arrays["video"])  # a crop, not the whole frame
    torch.manual_seed(0)
    model = EndToEndAV(R3DBottleneckBackbone((1, 1, 1, 1)), TinyAudioBackbone(), len(manifest.classes), 6, 4, 48,
                       E2EConfig(m_prime=16).head_params())
    out = model(torch.from_numpy(arrays["video"][:2]).float(), torch.from_numpy(arrays["audio"][:2]))
    assert out["logits"].shape == (2, len(manifest.classes))


def _torchvision_state(layers: tuple[int, ...]) -> dict:
    from torchvision.models.video.resnet import BasicStem, Bottleneck, Conv3DSimple, VideoResNet

    net = VideoResNet(Bottleneck, [Conv3DSimple] * 4, list(layers), BasicStem)
    net.fc = torch.nn.Identity()
    return net.state_dict()


def test_backbone_weights_load_strictly_and_a_mismatch_names_the_keys(tmp_path: Path) -> None:
    state = _torchvision_state((1, 1, 1, 1))
    wrapped = tmp_path / "wrapped.pt"  # a training checkpoint: {"state_dict": {"module.<key>": ...}}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    backbone = R3DBottleneckBackbone((1, 1, 1, 1), str(wrapped))
    torch.testing.assert_close(backbone.layers[0][0].weight, state["stem.0.weight"])
    assert backbone.out_channels == 2048
    from torchvision.models.video import r3d_18

    other = tmp_path / "r3d18.pt"
    torch.save(r3d_18(weights=None).state_dict(), other)
    with pytest.raises(WeightsMismatchError, match=r"missing keys: .*conv3.*unexpected keys: .*fc\.weight"):
        R3DBottleneckBackbone((1, 1, 1, 1), str(other))
    deeper = tmp_path / "deeper.pt"
    torch.save(_torchvision_state((1, 2, 1, 1)), deeper)
    with pytest.raises(WeightsMismatchError, match=r"unexpected keys: layer2\.1\."):
        R3DBottleneckBackbone((1, 1, 1, 1), str(deeper))
    with pytest.raises(FileNotFoundError, match="backbone weights not found"):
        load_weights_strictly(torch.nn.Linear(2, 2), str(tmp_path / "absent.pt"))
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbones("r3d_152")


@pytest.mark.slow
def test_r3d_101_has_the_resnet_101_depth() -> None:
    from torchvision.models.video.resnet import Bottleneck

    video, _ = build_backbones("r3d_101")
    assert video.layers_per_stage == R3D_101_LAYERS == (3, 4, 23, 3)
    assert sum(isinstance(m, Bottleneck) for m in video.modules()) == 33 and video.out_channels == 2048


def test_a_fold_test_part_is_scored_into_the_harness_metrics(tmp_path: Path) -> None:
    cfg = E2EConfig(clips=ClipSettings())
    torch.manual_seed(0)
    video_net, audio_net = build_backbones("tiny")
    model = EndToEndAV(video_net, audio_net, len(CLASSES), 6, 4, 32, cfg.head_params()).eval()
    generator = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (8, 6, 4, 32, 32, 3), generator=generator).to(torch.uint8)
    audio = torch.randn(8, 6, 32, 16, generator=generator)
    labels = np.arange(8) % 4
    cache = tmp_path / "clips.npz"
    np.savez(cache, ids=np.array([f"c{i}" for i in range(8)]), video=video.numpy(), audio=audio.numpy(),
             labels=labels)
    folder = tmp_path / "checkpoint_0"
    folder.mkdir()
    torch.save({"model": model.state_dict(), "best_model": model.state_dict(), "epoch": 2, "best_epoch": 1,
                "config": asdict(cfg), "classes": CLASSES}, folder / STATE_FILE)
    test_ids = ["c0", "c3", "c5", "c6"]
    scores, epoch = score_test_fold(folder, cache, test_ids, CLASSES)
    predicted = score_checkpoint(folder, cache, test_ids)["probabilities"].argmax(axis=1)
    expected = score(labels[[0, 3, 5, 6]], predicted, CLASSES)
    assert epoch == 1  # the best epoch (whose weights are scored), not the last
    assert scores.uar == expected.uar and scores.accuracy == expected.accuracy
    assert int(scores.confusion.sum()) == 4
    with pytest.raises(ValueError, match="trained on classes"):
        score_test_fold(folder, cache, test_ids, ["a", "b", "c", "d"])
