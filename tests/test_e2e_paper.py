"""End-to-end mode: loss="metric" trains the classifier (CE on the detached embedding) and the metric alone shapes
the embedding; a finished run's checkpoint scores a test split once, in the driver."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from harness.e2e.clips import ClipSettings
from harness.e2e.models import EndToEndAV, build_backbones
from harness.e2e.train import STATE_FILE, E2EConfig, e2e_loss, score_checkpoint
from methods.neural.losses import polarity_vector

CLASSES = ["neutral", "happy", "angry", "sad"]
POLARITY = {"neutral": "neutral", "happy": "positive", "angry": "negative", "sad": "negative"}


def tiny_model(cfg: E2EConfig, detach_head: bool = False) -> EndToEndAV:
    torch.manual_seed(0)
    video_net, audio_net = build_backbones("tiny")
    return EndToEndAV(video_net, audio_net, len(CLASSES), cfg.clips.n_snippets, cfg.clips.frames_per_snippet,
                      cfg.clips.frame_size, cfg.head_params(), detach_head=detach_head)


def inputs(n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (n, 6, 4, 32, 32, 3), generator=generator).float()
    audio = torch.randn(n, 6, 32, 16, generator=generator)
    return video, audio, torch.arange(n) % len(CLASSES)


def test_metric_loss_trains_the_classifier_and_leaves_the_embedding_to_the_metric() -> None:
    cfg = E2EConfig(loss="metric")
    model = tiny_model(cfg, detach_head=True).train()
    video, audio, y = inputs()
    polarity = polarity_vector(CLASSES, POLARITY)
    out = model(video, audio)
    torch.nn.functional.cross_entropy(out["logits"], y).backward()
    assert model.head.classifier[1].weight.grad.abs().sum() > 0  # the classifier is trained (it was not before)
    assert model.head.fusion.weight.grad is None and model.video.layers[0].weight.grad is None
    model.zero_grad(set_to_none=True)
    e2e_loss(model(video, audio), y, cfg, polarity).backward()
    assert model.head.fusion.weight.grad.abs().sum() > 0 and model.video.layers[0].weight.grad.abs().sum() > 0
    assert model.head.classifier[1].weight.grad.abs().sum() > 0


def test_a_checkpoint_scores_a_test_split_with_the_best_epochs_weights(tmp_path: Path) -> None:
    cfg = E2EConfig(clips=ClipSettings())
    model = tiny_model(cfg).eval()
    best = {k: v.clone() for k, v in model.state_dict().items()}
    latest = {k: v + 0.5 if v.is_floating_point() else v for k, v in best.items()}  # a later, worse epoch
    video, audio, y = inputs(6)
    cache = tmp_path / "clips.npz"
    np.savez(cache, ids=np.array([f"c{i}" for i in range(6)]), video=video.numpy().astype(np.uint8),
             audio=audio.numpy(), labels=y.numpy())
    folder = tmp_path / "checkpoint_0"
    folder.mkdir()
    torch.save({"model": latest, "best_model": best, "epoch": 3, "config": asdict(cfg), "classes": CLASSES},
               folder / STATE_FILE)
    scored = score_checkpoint(folder, cache, ["c4", "c1"])
    with torch.no_grad():
        expected = torch.softmax(model(video[[4, 1]].to(torch.uint8).float(), audio[[4, 1]])["logits"], dim=1)
    assert scored["ids"] == ["c4", "c1"] and list(scored["labels"]) == [0, 1]
    assert np.allclose(scored["probabilities"], expected.numpy(), atol=1e-5)
    latest_scored = score_checkpoint(folder, cache, ["c4", "c1"], use_best=False)
    assert not np.allclose(latest_scored["probabilities"], scored["probabilities"])
