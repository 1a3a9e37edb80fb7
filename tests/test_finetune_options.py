"""Per-modality fine-tuning options: one setting per encoder, as Babaali §3.2 gives them."""

from __future__ import annotations

import pytest

from harness.cli.run import finetune_options
from harness.config import Settings, SettingsError


def test_modality_prefixed_options_override_that_encoder_only() -> None:
    raw = finetune_options(["lr=1e-5", "text.lr=2e-5", "text.epochs=20", "text.batch_size=32", "audio.lr=3e-5",
                            "audio.epochs=15", "audio.max_seconds=10"])
    options = Settings.from_env(finetune=True, finetune_options=raw).finetune_options
    text, audio, video = (options.for_modality(m) for m in ("text", "audio", "video"))
    assert (text.lr, text.epochs, text.batch_size) == (2e-5, 20, 32)
    assert (audio.lr, audio.epochs, audio.max_seconds, audio.batch_size) == (3e-5, 15, 10.0, 8)
    assert (video.lr, video.epochs) == (1e-5, 3)  # no override: the shared options
    assert text.per_modality == {} and text.weight_decay == 0.01


@pytest.mark.parametrize("overrides,message", [
    ({"speech": {"lr": 1e-5}}, "'speech' cannot be fine-tuned"),
    ({"text": {"context_turns": 2}}, r"unknown options \['context_turns'\]"),
    ({"audio": {"epochs": 0}}, "finetune_options.audio.epochs must be >= 1"),
])
def test_a_bad_per_modality_option_is_one_clear_error(overrides: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(finetune_options={"per_modality": overrides})


def test_stage_one_trains_each_encoder_with_its_own_options_and_keys_them() -> None:
    """The fold's training reads the effective options of its modality, and the shard key hashes them, so a
    text-only change leaves the speech encoder's stored features valid."""
    from harness.finetune.stage import effective_options, run_key

    options = Settings.from_env(finetune_options=finetune_options(["text.lr=2e-5", "text.epochs=20"])
                                ).finetune_options
    text, audio = effective_options(options, "text", 0), effective_options(options, "audio", 0)
    assert (text.lr, text.epochs, text.per_modality) == (2e-5, 20, {})
    assert (audio.lr, audio.epochs) == (options.lr, options.epochs)
    plain = Settings.from_env().finetune_options
    assert run_key("k", audio, 0) == run_key("k", effective_options(plain, "audio", 0), 0)
    assert run_key("k", text, 0) != run_key("k", effective_options(plain, "text", 0), 0)
