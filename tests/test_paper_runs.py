"""The issue's acceptance commands: each seed paper's preset run end to end through `harness run`, at tiny scale.

Mocanu et al. (`av-xattn@paper`) runs under the card's `av-crossattention-10fold` protocol on a RAVDESS-named tree
of real media (the built-in corpus's clips renamed to RAVDESS's scheme), with the paper's snippet inputs
(`spectrogram-snippets` audio, `video-snippets` face snippets with a 2 x 2 spatial grid; random weights, small
frames), and so does Chaudhari et al.'s (`ima-hadamard@paper`, with CPU-sized inputs in place of wav2vec 1.0 and
RoBERTa-large); the leaderboard rendered from each run shows the paper's claim lines. Xie's and Babaali's presets
run on the built-in corpus: their claims are about MELD and IEMOCAP, whose media are not on the test machines,
so no claim line can meet them here. `--max-epochs 2` keeps each CPU-sized; the cap is recorded in the result's
setting. The paper-scale commands are in docs/methods.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest

from harness.cli import main

# One Ray instance for the module, shut down after it (the runs join it instead of leaving one running).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

RAVDESS_EMOTION = {"neutral": 1, "happy": 3, "sad": 4, "angry": 5}


@pytest.fixture(scope="module")
def ravdess_like(tmp_path_factory) -> Path:
    """10 actors x 4 emotions x 2 takes of real audio and video, named as RAVDESS names its files."""
    from harness.datasets.synthetic import SyntheticConfig, generate, scan

    source = tmp_path_factory.mktemp("synthetic")
    generate(source, SyntheticConfig(n_speakers=10, clips_per_emotion=2))
    root = tmp_path_factory.mktemp("ravdess")
    for row in scan(source).table.itertuples():
        actor = int(row.speaker.removeprefix("spk")) + 1
        take = int(row.clip_id.rsplit("_", 1)[1]) + 1
        stem = f"01-{RAVDESS_EMOTION[row.label]:02d}-01-01-{take:02d}-{actor:02d}"
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(exist_ok=True)
        shutil.copy(source / row.audio_path, folder / f"03-{stem}.wav")
        shutil.copy(source / row.video_path, folder / f"01-{stem}.mp4")
    return root


@pytest.fixture
def workdir(tmp_path) -> list[str]:
    return ["--workspace", str(tmp_path / "ws"), "--tracking-uri", f"sqlite:///{tmp_path}/mlruns.db",
            "--num-cpus", "2", "--no-report"]


def finished(argv: list[str]) -> dict[str, dict]:
    """Method -> the parent run's tags and metrics, read back from the run's MLflow store."""
    uri = argv[argv.index("--tracking-uri") + 1]
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mer-benchmark")
    runs = client.search_runs([experiment.experiment_id], "tags.`harness.role` = 'parent'")
    return {r.data.tags["method"]: {**r.data.tags, **r.data.metrics, "status": r.info.status} for r in runs}


def claim_lines(argv: list[str], tmp: Path) -> list[str]:
    """The "Paper claim ..." lines of the leaderboard rendered from the run's MLflow store."""
    from harness.report.leaderboard import render

    uri = argv[argv.index("--tracking-uri") + 1]
    markdown = render(uri, "mer-benchmark", tmp / "reports", figures=False).paths["md"].read_text()
    return [line for line in markdown.splitlines() if line.startswith("Paper claim for")]


def test_mocanu_paper_preset_under_the_papers_ten_fold_protocol(ravdess_like, workdir, one_torch_thread,
                                                                 tmp_path) -> None:
    snippets = ["--extractor-config", "video-snippets.weights=random", "--extractor-config",
                "video-snippets.detector=full-frame", "--extractor-config", "video-snippets.image_size=32",
                "--extractor-config", "video-snippets.snippet_frames=4", "--extractor-config",
                "video-snippets.spatial_grid=2", "--extractor-config", "spectrogram-snippets.weights=random"]
    argv = ["run", "--method", "av-xattn", "--dataset", "ravdess", "--preset", "paper", "--protocol",
            "ravdess=av-crossattention-10fold", "--data-dir", f"ravdess={ravdess_like}", "--features",
            "audio=spectrogram-snippets", "--features", "video=video-snippets", "--trials", "1", "--max-epochs", "2",
            *snippets, *workdir]
    assert main(argv) == 0
    result = finished(argv)["av-xattn@paper"]
    assert result["status"] == "FINISHED"
    assert result["protocol"].startswith("av-crossattention-10fold: speaker-kfold")
    assert "preset paper" in result["harness.setting_label"] and "capped at 2" in result["harness.setting_label"]
    assert 0.0 <= result["test_uar_mean"] <= 1.0
    lines = claim_lines(argv, tmp_path)
    (m1,) = [line for line in lines if line.startswith("Paper claim for `av-xattn@paper` (M1)")]
    assert "reports WA 0.8925" in m1 and "Not comparable (different-conditions)" in m1
    assert "different-protocol" not in m1  # the run used the paper's 10-fold protocol
    assert any("(M3)" in line and "no result of this method" in line for line in lines)
    assert any("(C1)" in line and "80.17" in line for line in lines)  # Chaudhari's claims, flagged


def test_ima_paper_preset_on_ravdess_shows_its_claims_as_unstated_split(ravdess_like, workdir, one_torch_thread,
                                                                         tmp_path) -> None:
    """Chaudhari et al. state no split: the run ranks, its claim lines say why the figures are not comparable."""
    argv = ["run", "--method", "ima-hadamard", "--dataset", "ravdess", "--preset", "paper", "--data-dir",
            f"ravdess={ravdess_like}", "--features", "audio=egemaps", "--features", "video=frame-grid",
            "--features", "text=minilm", "--trials", "1", "--max-epochs", "2", *workdir]
    assert main(argv) == 0
    assert finished(argv)["ima-hadamard@paper"]["status"] == "FINISHED"
    lines = [line for line in claim_lines(argv, tmp_path) if line.startswith("Paper claim for `ima-hadamard@paper`")]
    assert [line.split("(")[1].split(")")[0] for line in lines] == ["C1", "C2", "C3", "C4"]
    assert all("the paper states no split" in line for line in lines)


@pytest.mark.parametrize("method", ["ima-hadamard", "xmt-embracenet", "babaali-late-concat-svm"])
def test_the_other_papers_presets_on_the_built_in_corpus(method, small_synthetic, workdir, one_torch_thread) -> None:
    paper = method != "babaali-late-concat-svm"  # the Babaali rules are registered variants, with no preset
    # the papers' encoders (wav2vec 1.0, RoBERTa-large, GPT, BERT, wav2vec2) are not on the test machines: the
    # built-in corpus's CPU features stand in, and the result records each as a substitution
    cpu_inputs = ["--features", "audio=egemaps", "--features", "video=frame-grid", "--features", "text=minilm"]
    argv = ["run", "--method", method, "--dataset", "synthetic", "--preset", "paper", *cpu_inputs,
            "--trials", "1", "--max-epochs", "2", "--data-dir", f"synthetic={small_synthetic}", *workdir]
    assert main(argv) == 0
    (result,) = finished(argv).values()
    assert result["status"] == "FINISHED" and 0.0 <= result["test_uar_mean"] <= 1.0
    assert result["method"] == (f"{method}@paper" if paper else method)  # classical: Babaali's inputs, no preset
    assert "audio: egemaps (--features; the paper's input is" in result["inputs"]
