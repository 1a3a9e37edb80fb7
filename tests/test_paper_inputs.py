"""`--preset paper` chooses the papers' inputs: extractors and options per modality, user choices recorded."""

from __future__ import annotations

import pytest

from harness.config import Settings
from harness.paper_inputs import InputConflict, apply_paper_inputs, paper_inputs
from methods import get_method


def test_a_paper_preset_extracts_with_the_papers_encoders_or_named_stand_ins() -> None:
    inputs = paper_inputs([get_method("ima-hadamard@paper")], Settings.from_env())
    assert inputs.features == {"audio": "wav2vec1", "text": "roberta", "video": "face-expression"}
    assert inputs.extractor_config["roberta"]["checkpoint"] == "roberta-large"
    assert inputs.words["audio"] == "wav2vec1 (the paper's)"
    assert inputs.words["video"] == "face-expression (stand-in for Fab-Net)"
    mocanu = paper_inputs([get_method("av-xattn@paper")], Settings.from_env())
    assert mocanu.features == {"video": "video-snippets", "audio": "spectrogram-snippets"}
    assert mocanu.extractor_config["video-snippets"]["snippet_frames"] == 16
    assert mocanu.extractor_config["spectrogram-snippets"]["image_size"] == 224


def test_the_users_choice_wins_and_is_recorded_as_a_substitution() -> None:
    settings = Settings.from_env(features={"audio": "egemaps"},
                                 extractor_config={"roberta": {"checkpoint": "/local/roberta"}})
    changed, inputs = apply_paper_inputs(settings, [get_method("ima-hadamard@paper")])
    assert changed.features["audio"] == "egemaps" and changed.features["text"] == "roberta"
    assert changed.extractor_config["roberta"]["checkpoint"] == "/local/roberta"
    assert inputs.words["audio"] == "egemaps (--features; the paper's input is wav2vec1 (the paper's))"
    assert "audio: egemaps (--features" in inputs.label()


def test_classical_methods_alone_take_the_fourth_papers_inputs_and_fine_tuning() -> None:
    settings = Settings.from_env(finetune=True, finetune_options={"per_modality": {"audio": {"epochs": 2}}})
    changed, inputs = apply_paper_inputs(settings, [get_method("early-concat-svm")])
    assert changed.features == {"text": "bert", "audio": "wav2vec2", "video": "video-snippets"}
    assert inputs.papers == ("babaali2024",) and "stand-in for VideoMAE" in inputs.words["video"]
    text = changed.finetune_options.for_modality("text")
    assert (text.lr, text.epochs, text.batch_size, text.select_by) == (2e-5, 20, 32, "accuracy")  # §3.2
    assert changed.finetune_options.for_modality("audio").epochs == 2  # the user's per-modality choice wins
    assert paper_inputs([get_method("early-concat-svm"), get_method("xmt-embracenet")],
                        Settings.from_env()).features == {}  # a neural method without its preset: no inputs


def test_two_papers_wanting_different_encoders_for_one_modality_is_one_clear_error() -> None:
    with pytest.raises(InputConflict, match="different (audio|text) inputs.*--features (audio|text)=EXTRACTOR"):
        paper_inputs([get_method("ima-hadamard@paper"), get_method("xmt-embracenet@paper")], Settings.from_env())
    fine = paper_inputs([get_method("ima-hadamard@paper"), get_method("xmt-embracenet@paper")],
                        Settings.from_env(features={"audio": "wav2vec2", "text": "roberta"}))
    assert fine.features["video"] == "face-expression"


def test_a_paper_run_plans_with_the_papers_inputs_and_tags_them() -> None:
    """`harness run --preset paper` (the plan): Mocanu's snippet front ends at the paper's sizes replace the
    card's eGeMAPS / frame-grid; the result's tag says which inputs were the paper's."""
    from harness.pipeline import RunOptions, _paper_inputs_label, plan

    settings = Settings.from_env(preset="paper", extractor_config={"video-snippets": {"weights": "random"},
                                                                   "spectrogram-snippets": {"weights": "random"}})
    run_plan = plan(settings, RunOptions(["av-xattn"], ["synthetic"]))
    assert run_plan.settings.features == {"video": "video-snippets", "audio": "spectrogram-snippets"}
    options = run_plan.settings.extractor_config["video-snippets"]
    assert (options["snippet_frames"], options["image_size"], options["weights"]) == (16, 224, "random")
    label = _paper_inputs_label(run_plan.methods[0], run_plan.settings)
    assert "audio: spectrogram-snippets (the paper's), options changed: weights random" in label
    assert "stand-in for 3-D ResNet-101" in label


def test_paper_preset_with_only_classical_methods_applies_the_fourth_papers_inputs() -> None:
    """No usage error: the classical methods take Babaali's inputs (here all substituted by --features, so the
    plan needs no pretrained weights), and the substitutions are what the result records."""
    from harness.pipeline import RunOptions, _paper_inputs_label, plan

    settings = Settings.from_env(preset="paper", features={"text": "minilm", "audio": "egemaps",
                                                            "video": "frame-grid"})
    run_plan = plan(settings, RunOptions(["early-concat-svm"], ["synthetic"]))
    label = _paper_inputs_label(run_plan.methods[0], run_plan.settings)
    assert "audio: egemaps (--features; the paper's input is wav2vec2 (the paper's))" in label
    assert "text: minilm (--features; the paper's input is bert" in label
