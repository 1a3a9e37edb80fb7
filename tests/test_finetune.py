"""Stage 1 of a two-stage run (harness.finetune): the dialogue history, the text pair with its history cut from the
left, one fold's fine-tuning (the encoder really changes and its training loss falls), the shard reused on the next
run, and the settings/CLI checks. Tiny randomly initialised encoders only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.config import FinetuneOptions, Settings, SettingsError
from harness.protocols import Fold

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_bert(directory: Path) -> Path:
    """A tiny random BERT whose tokenizer knows its word list."""
    from harness.features.weights import random_init

    return random_init.text_checkpoint(directory)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    from transformers import ViTConfig, ViTModel

    from harness.features.weights import random_init

    root = tmp_path_factory.mktemp("checkpoints")
    # a wide initialisation: at the default 0.02 a one-layer ViT maps every face to nearly the same vector, and
    # the toy task then needs many more epochs than a test should run
    ViTModel(ViTConfig(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, initializer_range=1.0)).save_pretrained(root / "vit")
    return {"bert": tiny_bert(root / "bert"), "wav2vec2": random_init.speech_checkpoint("wav2vec2", root / "w2v"),
            "face-embed": root / "vit"}


# extractor options beside the checkpoint: face-embed on whole frames (no detector weights) at the ViT's size
OPTIONS = {"face-embed": {"detector": "full-frame", "image_size": 64}}


@pytest.fixture(scope="module")
def synthetic(small_synthetic):
    from harness.datasets.synthetic import scan

    return scan(small_synthetic)


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    """A text-only corpus whose words carry the class (each class its own word among shared filler words)."""
    import pandas as pd

    from harness.manifest import Manifest

    rng = np.random.default_rng(0)
    cue = {"happy": "glad", "sad": "sad", "angry": "hate", "neutral": "station"}
    filler = ["the", "a", "is", "we", "you", "this", "so", "it", "and", "to"]
    rows = []
    for speaker in range(4):
        for label, word in cue.items():
            for k in range(3):
                text = " ".join([*rng.choice(filler, 3), word, *rng.choice(filler, 2)])
                rows.append({"clip_id": f"s{speaker}_{label}_{k}", "label": label, "speaker": f"s{speaker}",
                             "text": text})
    return Manifest("words", tmp_path_factory.mktemp("words"), list(cue), pd.DataFrame(rows))


def speaker_fold(manifest) -> Fold:
    """Two speakers train, one validates, one is tested (what a speaker-independent protocol gives a fold)."""
    table = manifest.table
    speakers = sorted(table["speaker"].unique())
    part = {s: [str(c) for c in table.loc[table["speaker"] == s, "clip_id"]] for s in speakers}
    return Fold("fold0", part[speakers[0]] + part[speakers[1]], part[speakers[2]], part[speakers[3]])


# ---- dialogue context -----------------------------------------------------------------------------------------
def test_dialogue_history_on_the_real_meld_train_csv(shared_data):
    from harness.datasets import get_dataset
    from harness.finetune.context import dialogue_history, dialogue_layout

    meld = shared_data / "meld"
    if not (meld / "train_sent_emo.csv").exists():
        pytest.skip(f"MELD's train_sent_emo.csv is not at {meld}")
    manifest = get_dataset("meld").scan(meld)
    assert dialogue_layout(manifest.table) == (("split", "dialogue"), "utterance")
    history = dialogue_history(manifest, 2)
    text = manifest.table.set_index("clip_id")["text"]
    assert history["train_dia0_utt0"] == []  # a dialogue's first utterance has no history
    assert history["train_dia0_utt3"] == [text["train_dia0_utt1"], text["train_dia0_utt2"]]  # the last 2, in order
    assert history["dev_dia0_utt1"] == [text["dev_dia0_utt0"]]  # dev dialogue 0 is not train dialogue 0
    assert history["train_dia0_utt10"] == [text["train_dia0_utt8"], text["train_dia0_utt9"]]  # 10 sorts after 9
    assert dialogue_history(manifest, 0)["train_dia0_utt3"] == []
    assert len(dialogue_history(manifest, 50)["train_dia0_utt3"]) == 3


def test_a_corpus_without_dialogues_gets_no_context(synthetic):
    from harness.finetune.context import dialogue_history, dialogue_layout

    assert dialogue_layout(synthetic.table) is None
    assert set(map(len, dialogue_history(synthetic, 5).values())) == {0}


def test_history_is_cut_from_the_left_and_the_utterance_kept_whole(checkpoints):
    from harness.features.base import build_extractor
    from harness.finetune.encoders import TextEncoder, TextItem

    extractor = build_extractor("bert", {"checkpoint": str(checkpoints["bert"]), "max_tokens": 12})
    encoder = TextEncoder(extractor, 4, "cpu", FinetuneOptions())
    tokenizer = encoder.tokenizer
    item = TextItem(("the train station meeting", "we hate the news"), "i love it")
    ids = encoder.tokens([item])["input_ids"][0].tolist()
    words = tokenizer.convert_ids_to_tokens(ids)
    assert len(ids) == 12 and words[0] == "[CLS]"
    assert words[-5:] == ["[SEP]", "i", "love", "it", "[SEP]"]  # the utterance whole, as segment B
    assert words[1:8] == ["station", "meeting", "we", "hate", "the", "news", "[SEP]"]  # the most recent history
    assert "train" not in words  # ... and the oldest words are the ones cut
    alone = tokenizer.convert_ids_to_tokens(encoder.tokens([TextItem((), "i love it")])["input_ids"][0].tolist())
    assert alone == ["[CLS]", "i", "love", "it", "[SEP]"]


# ---- one fold -------------------------------------------------------------------------------------------------
def frozen(manifest, name: str, config: dict, ids: list[str]) -> dict[str, np.ndarray]:
    from harness.features.base import build_extractor
    from harness.features.decode import decode_clip, media_rows

    extractor = build_extractor(name, config)
    extractor.setup()
    rows = media_rows(manifest, set(ids)).to_dict("records")
    return {row["clip_id"]: extractor.extract(decode_clip(row, extractor)).pooled for row in rows}


@pytest.mark.parametrize("modality, name, corpus, lr, epochs", [("text", "bert", "words", 2e-3, 8),
                                                                ("audio", "wav2vec2", "synthetic", 5e-3, 8),
                                                                ("video", "face-embed", "synthetic", 1e-3, 12)])
def test_one_fold_changes_the_encoder_lowers_training_loss_and_is_reused(modality, name, corpus, lr, epochs,
                                                                         checkpoints, request, tmp_path):
    from harness.features.base import ExtractorRef
    from harness.features.store import FeatureStore
    from harness.finetune.stage import finetune_fold
    from methods.neural.early_stopping import EarlyStopping

    manifest = request.getfixturevalue(corpus)
    config = {"checkpoint": str(checkpoints[name]), **OPTIONS.get(name, {})}
    ref, fold = ExtractorRef(name, config), speaker_fold(manifest)
    options = FinetuneOptions(epochs=epochs, patience=epochs, lr=lr, batch_size=4)
    base_key = ref.cache_key(manifest.fingerprint())
    args = dict(manifest=manifest, fold=fold, extractor=ref, modality=modality, options=options,
                store_root=str(tmp_path / "store"), seed=0, history={}, base_key=base_key)
    first = finetune_fold(**args)
    assert not first.reused and len(first.train_loss) == epochs
    assert first.train_loss[-1] < first.train_loss[0]  # the encoder + head fit the training part ...
    assert first.train_loss[-1] < 0.9 * np.log(4)  # ... below chance (4 balanced classes): it learned, not only
    rule = EarlyStopping(options.patience, options.select_by)  # the shared rule: ties go to the lower loss
    for epoch, (uar, loss) in enumerate(zip(first.val_uar, first.val_loss, strict=True), start=1):
        rule.update(epoch, uar=uar, accuracy=0.0, loss=loss)
    assert first.best_epoch == rule.best_epoch  # the best validation epoch's weights were kept
    store = FeatureStore(str(tmp_path / "store"))
    tuned = store.load(first.entry)
    assert sorted(tuned.ids) == sorted(manifest.ids)  # every clip re-encoded, the test part included
    assert "+finetuned" in first.entry and "fold0-" in first.entry
    before = frozen(manifest, name, config, tuned.ids[:4])
    index = tuned.index()
    for clip_id, vector in before.items():  # same shape as the frozen features, different values
        assert vector.shape == tuned.pooled[index[clip_id]].shape
        assert not np.allclose(vector, tuned.pooled[index[clip_id]], atol=1e-4)

    again = finetune_fold(**args)  # the next run finds the shard and trains nothing
    assert again.reused and again.entry == first.entry and not again.train_loss
    assert np.array_equal(store.load(again.entry).pooled, tuned.pooled)
    other = finetune_fold(**{**args, "options": replace(options, epochs=1)})
    assert not other.reused and other.entry != first.entry  # other options: another shard, never a reused one


def test_the_key_holds_only_the_options_that_act_on_a_modality():
    from harness.finetune.stage import effective_options, run_key

    options = FinetuneOptions(context_turns=4, max_seconds=3.0, modalities=("text", "audio"))
    text, audio = effective_options(options, "text", 4), effective_options(options, "audio", 4)
    assert (text.context_turns, text.max_seconds, text.modalities) == (4, 8.0, None)
    assert (audio.context_turns, audio.max_seconds) == (0, 3.0)
    assert effective_options(options, "text", 0).context_turns == 0  # a corpus without dialogues: no context
    assert run_key("k", audio, 0) == run_key("k", effective_options(replace(options, context_turns=1), "audio", 1), 0)
    assert run_key("k", text, 0) != run_key("k", effective_options(options, "text", 1), 0)
    assert run_key("k", text, 0) != run_key("k", replace(text, lr=1e-4), 0) != run_key("k", text, 1)


def test_speech_front_end_stays_frozen(checkpoints, synthetic):
    import torch

    from harness.features.base import build_extractor
    from harness.finetune.encoders import SpeechEncoder

    extractor = build_extractor("wav2vec2", {"checkpoint": str(checkpoints["wav2vec2"])})
    encoder = SpeechEncoder(extractor, 4, "cpu", FinetuneOptions(max_seconds=0.5))
    front = [p for n, p in encoder.network.named_parameters() if n.startswith("feature_extractor.")]
    assert front and not any(p.requires_grad for p in front)
    assert encoder.network.config.layerdrop == 0.0
    assert all(p.requires_grad for p in encoder.head.parameters())
    audio = [np.random.default_rng(0).normal(size=n).astype(np.float32) for n in (16_000, 4_000)]
    logits = encoder.logits(audio, True, np.random.default_rng(0))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_untrainable_extractors_are_named(synthetic):
    from harness.features.base import ExtractorRef, build_extractor
    from harness.finetune.encoders import NotTrainable, build_encoder
    from harness.finetune.stage import FinetuneError, finetune_modalities

    with pytest.raises(NotTrainable, match="egemaps"):
        build_encoder("audio", build_extractor("egemaps"), 4, "cpu", FinetuneOptions())
    settings = Settings(finetune=True, finetune_options={"modalities": ["audio"]})
    with pytest.raises(FinetuneError, match="cannot fine-tune audio: extractor 'egemaps'"):
        finetune_modalities(settings, {"audio": ExtractorRef("egemaps")}, ["audio"], None)
    # by default, an untrainable modality keeps its frozen features instead of failing the run
    planned = {"audio": ExtractorRef("egemaps"), "text": ExtractorRef("bert")}  # as DatasetPlan.extractors
    assert finetune_modalities(Settings(finetune=True), planned, ["audio", "text"], None) == {"text": "bert"}


# ---- settings and flags ---------------------------------------------------------------------------------------
def test_finetune_options_are_validated_and_merge_with_the_file(tmp_path):
    settings = Settings.validated({"finetune": True, "finetune_options": {"epochs": 1, "context_turns": 3}})
    assert settings.finetune_options == FinetuneOptions(epochs=1, context_turns=3)
    with pytest.raises(SettingsError, match="finetune_options: unknown option 'epoch'; valid: .*'epochs'"):
        Settings.validated({"finetune_options": {"epoch": 1}})
    with pytest.raises(SettingsError, match="finetune_options.patience must be >= 1"):
        Settings.validated({"finetune_options": {"patience": 0}})
    with pytest.raises(SettingsError, match="finetune_options.modalities: \\['face'\\] cannot be fine-tuned"):
        Settings.validated({"finetune_options": {"modalities": ["face"]}})
    file = tmp_path / "settings.yaml"
    file.write_text("finetune: true\nfinetune_options: {epochs: 5, lr: 1.0e-4}\n")
    merged = Settings.from_env(file, finetune_options={"epochs": 2})
    assert (merged.finetune, merged.finetune_options.epochs, merged.finetune_options.lr) == (True, 2, 1e-4)


def test_cli_flags_reach_the_settings(capsys):
    import argparse

    from harness.cli import run as run_command
    from harness.cli.common import UsageError, settings_from_args

    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "--all", "--finetune", "--finetune-option", "epochs=1",
                              "--finetune-option", 'modalities=["text"]', "--finetune-option", "lr=0.001"])
    assert args.finetune and run_command.finetune_options(args.finetune_option) == {
        "epochs": 1, "modalities": ["text"], "lr": 0.001}
    settings = settings_from_args(args, finetune=True, finetune_options=run_command.finetune_options(
        args.finetune_option))
    assert settings.finetune_options == FinetuneOptions(epochs=1, modalities=("text",), lr=0.001)
    with pytest.raises(UsageError, match="--finetune-option expects KEY=VALUE"):
        run_command.finetune_options(["bert.epochs=1"])
    from harness.cli import main

    assert main(["run", "--all", "--finetune-option", "nope=1"]) == 2
    assert "finetune_options: unknown option 'nope'" in capsys.readouterr().err
