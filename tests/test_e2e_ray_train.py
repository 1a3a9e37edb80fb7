"""End-to-end A-V cross-attention on Ray Train: tiny backbones, 2 CPU (gloo) workers, checkpoint and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.datasets import synthetic
from harness.e2e.clips import ClipSettings, build_clip_cache
from harness.e2e.models import EndToEndAV, build_backbones
from harness.e2e.train import STATE_FILE, E2EConfig, augment_frames


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, synthetic.SyntheticConfig(n_speakers=4, clips_per_emotion=2))
    return root


def test_tiny_end_to_end_model_shapes_and_augmentation() -> None:
    torch.manual_seed(0)
    cfg = E2EConfig()
    video_net, audio_net = build_backbones("tiny")
    model = EndToEndAV(video_net, audio_net, 4, 6, 4, 32, cfg.head_params()).eval()
    video = torch.randint(0, 256, (2, 6, 4, 32, 32, 3)).float()
    spectrogram = torch.randn(2, 6, 32, 16)
    out = model(video, spectrogram)
    assert out["logits"].shape == (2, 4)
    assert out["embedding"].shape == (2, 2 * 6 * cfg.m_prime)
    augmented = augment_frames(video, torch.Generator().manual_seed(1))
    assert augmented.shape == video.shape
    assert 0 <= float(augmented.min()) and float(augmented.max()) <= 255
    assert not torch.equal(augmented, video)
    again = augment_frames(video, torch.Generator().manual_seed(1))
    assert torch.equal(augmented, again)  # seeded: the same draw twice


def test_clip_cache_holds_snippets_and_segments(corpus: Path, tmp_path: Path) -> None:
    manifest = synthetic.scan(corpus)
    settings = ClipSettings()
    path = build_clip_cache(manifest, settings, tmp_path)
    arrays = np.load(path)
    assert arrays["video"].shape == (32, 6, 4, 32, 32, 3) and arrays["video"].dtype == np.uint8
    assert arrays["audio"].shape == (32, 6, settings.n_mels, settings.spec_frames)
    assert np.isfinite(arrays["audio"]).all()
    assert list(arrays["ids"]) == manifest.ids
    assert build_clip_cache(manifest, settings, tmp_path) == path  # reused, not decoded again


def _printed_result(out: str) -> dict:
    """The JSON summary the command prints last (Ray may print its own lines before it): the one fold's last
    validation metrics and checkpoint, plus its test scores and the summary over folds."""
    report = json.loads(out[out.rindex("\n{\n") + 1:] if "\n{\n" in out else out[out.index("{"):])
    (fold,) = report["folds"]
    return {**fold["validation"], "checkpoint": fold["checkpoint"], "test": fold["test"],
            "summary": report["test_summary"]}


def _cli(argv: list[str]) -> int:
    from harness.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_one_epoch_with_two_workers_then_resume(ray_session, corpus: Path, tmp_path: Path, capsys) -> None:
    common = ["e2e", "--dataset", "synthetic", "--data-dir", f"synthetic={corpus}", "--workspace",
              str(tmp_path / "ws"), "--workers", "2", "--batch-size", "8", "--cpu", "--run-name", "smoke",
              "--fold", "0", "--tracking-uri", f"sqlite:///{tmp_path}/mlruns.db"]  # each run is an MLflow result
    assert _cli(common + ["--epochs", "1"]) == 0
    first = _printed_result(capsys.readouterr().out)
    assert first["epoch"] == 0 and first["world_size"] == 2 and first["resumed_from_epoch"] == -1
    assert (Path(first["checkpoint"]) / STATE_FILE).exists()
    # the fold's test part was scored once, from the best epoch's weights, into the harness's metrics
    assert 0.0 <= first["test"]["uar"] <= 1.0 and first["summary"]["uar_mean"] == first["test"]["uar"]
    assert (tmp_path / "ws" / "e2e" / "smoke-test.json").exists()
    saved = torch.load(Path(first["checkpoint"]) / STATE_FILE, weights_only=False)
    assert saved["epoch"] == 0 and saved["best_model"] is not None

    assert _cli(common + ["--epochs", "2", "--resume"]) == 0
    second = _printed_result(capsys.readouterr().out)
    assert second["epoch"] == 1 and second["resumed_from_epoch"] == 0  # continued, not restarted
    resumed = torch.load(Path(second["checkpoint"]) / STATE_FILE, weights_only=False)
    assert resumed["epoch"] == 1
    # the optimiser state travelled too: Adam's step count is the sum of both epochs' steps
    steps = [s["step"] for s in resumed["optimizer"]["state"].values()]
    first_steps = [s["step"] for s in saved["optimizer"]["state"].values()]
    assert float(steps[0]) == 2 * float(first_steps[0])
