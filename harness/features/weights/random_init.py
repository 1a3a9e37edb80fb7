"""Randomly initialised `transformers` checkpoints, saved to a local directory.

Nothing can be downloaded in CI or on an offline cluster, yet the transformer extractors must be exercised
through their real loading path (`from_pretrained` on a local directory). These builders write seeded,
randomly initialised checkpoints: "tiny" ones for tests, and "base"-sized ones (wav2vec2-base geometry) for
throughput benchmarks, where only the compute matters, not what the weights learned.
"""

from __future__ import annotations

from pathlib import Path

TINY_SPEECH = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
               "conv_dim": (32, 32, 32), "conv_stride": (5, 8, 8), "conv_kernel": (10, 8, 8),
               "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
SMALL_SPEECH = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}
SIZES = ("tiny", "small", "base")
SPEECH_MODELS = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
TEXT_WORDS = ("the", "a", "is", "i", "you", "we", "this", "so", "not", "it", "and", "to", "of", "at", "on",
              "happy", "sad", "angry", "glad", "love", "hate", "news", "train", "station", "meeting", "today")


def speech_checkpoint(model: str, directory: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A random-init wav2vec2/hubert/wavlm/data2vec-audio checkpoint.

    "tiny": 2 x 32 with a 3-layer front end (tests); "small": 4 x 256 with the real 7-layer convolutional
    front end (CPU benchmarks); "base": the published base geometry, 12 x 768 (GPU benchmarks).
    """
    import torch
    import transformers

    classes = {"wav2vec2": "Wav2Vec2", "hubert": "Hubert", "wavlm": "WavLM", "data2vec-audio": "Data2VecAudio"}
    if model not in classes:
        raise ValueError(f"unknown speech model {model!r}; choose from {SPEECH_MODELS}")
    config_cls = getattr(transformers, f"{classes[model]}Config")
    model_cls = getattr(transformers, f"{classes[model]}Model")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    options = {"tiny": dict(TINY_SPEECH), "small": dict(SMALL_SPEECH), "base": {}}[size]
    if model == "data2vec-audio" and size == "tiny":
        options.pop("num_conv_pos_embedding_groups")
        options["conv_pos_kernel_size"] = 16
    torch.manual_seed(seed)
    path = Path(directory)
    model_cls(config_cls(**options)).save_pretrained(path)
    return path


def whisper_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """A tiny random-init Whisper (encoder and decoder) with Whisper's real 80-bin, 30 s input geometry."""
    import torch
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(seed)
    config = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                           max_target_positions=32)
    path = Path(directory)
    WhisperModel(config).save_pretrained(path)
    return path


def text_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """A tiny random-init BERT with a small word-piece vocabulary (model and tokenizer, loadable offline)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TEXT_WORDS,
             *"abcdefghijklmnopqrstuvwxyz", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"), ".", ",", "!", "?"]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # From the mapping, not the file: transformers 5 builds a vocab-file tokenizer with the 5 special tokens only,
    # which maps every word to [UNK] (the model would then see the same input for every sentence).
    BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    return path


def whisper_asr_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """A tiny random-init Whisper for speech recognition: model, generation config, tokenizer and processor.

    The tokenizer is byte-level BPE over the 256 byte symbols (no merges) plus Whisper's special tokens, so it
    is built offline. The generation config lets greedy decoding emit only letters, spaces and (not first) the
    end token, so the meaningless transcript is never empty nor all control bytes, which text tokenizers drop.
    Two languages make the multilingual `language=` path testable.
    """
    import string

    import torch
    from tokenizers import pre_tokenizers
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|translate|>", "<|transcribe|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    ids = {token: len(vocab) + i for i, token in enumerate(specials)}
    vocab.update(ids)
    path = Path(directory)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], extra_special_tokens=specials[1:])
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer).save_pretrained(path)
    end = ids["<|endoftext|>"]
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_target_positions=16, pad_token_id=end, bos_token_id=end,
                           eos_token_id=end, decoder_start_token_id=ids["<|startoftranscript|>"],
                           suppress_tokens=None, begin_suppress_tokens=None)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=end, eos_token_id=end, pad_token_id=end,
        max_length=16, begin_suppress_tokens=[end], suppress_tokens=[i for t, i in vocab.items() if i != end and not (
            t in string.ascii_lowercase or t == "\u0120")],  # Ġ: byte-level BPE's space
        is_multilingual=True, lang_to_id={t: ids[t] for t in ("<|en|>", "<|de|>")},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"])
    model.save_pretrained(path)
    return path
