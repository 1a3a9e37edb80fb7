"""Every extractor on tiny inputs: declared output shapes, determinism, offline behaviour, cache keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets.synthetic import SyntheticConfig, generate, scan
from harness.features.base import (
    ExtractorConfigError,
    MissingWeightsError,
    build_extractor,
    extractor_names,
    get_extractor,
)
from harness.features.decode import decode_clip
from harness.features.decode import media_rows as _media_rows
from harness.features.extractors.face import NoFaceError, align_crop
from harness.features.store import FeatureStore
from harness.features.weights import random_init

SPEECH = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=1, clips_per_emotion=1))
    manifest = scan(root)
    return _media_rows(manifest, set(manifest.ids)).to_dict("records")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {m: random_init.speech_checkpoint(m, root / m) for m in SPEECH}
    paths["whisper-encoder"] = random_init.whisper_checkpoint(root / "whisper")
    paths["bert"] = random_init.text_checkpoint(root / "bert")
    return paths


def run(name: str, config: dict, row: dict, cache: FeatureStore | None = None):
    extractor = build_extractor(name, config)
    extractor.cache = cache
    extractor.setup()
    return extractor.extract(decode_clip(row, extractor))


def test_registry_declares_modality_and_output() -> None:
    expected = {"egemaps", "compare", "logmel", "spectrogram-snippets", *SPEECH, "whisper-encoder",
                "frame-grid", "mtcnn-landmarks", "face-landmarks", "face-expression", "face-embed", "video-snippets",
                "minilm", "roberta", "bert", "text-transformer"}
    assert expected <= set(extractor_names())
    for name in expected:
        cls = get_extractor(name)
        assert cls.modality in ("audio", "video", "text") and cls.description


@pytest.mark.parametrize(("name", "config", "seq_dim", "pooled_dim"), [
    ("egemaps", {}, 25, 88),
    ("compare", {}, 65, 6373),
    ("logmel", {"n_mels": 40}, 40, 80),
    ("spectrogram-snippets", {"weights": "random", "image_size": 64}, 512, 512),
    ("spectrogram-snippets", {"encoder": "none", "image_size": 32}, 32 * 32, 32 * 32),
])
def test_audio_extractors_shapes_and_determinism(rows, name, config, seq_dim, pooled_dim) -> None:
    first = run(name, config, rows[0])
    again = run(name, config, rows[0])
    assert first.sequence.shape[1] == seq_dim and first.pooled.shape == (pooled_dim,)
    np.testing.assert_allclose(first.pooled, again.pooled, rtol=1e-5, atol=1e-5)
    if name == "spectrogram-snippets":
        assert first.sequence.shape[0] == 6  # six one-second segments
    if name == "logmel":
        assert 140 <= len(first.sequence) <= 160  # 1.5 s at a 10 ms hop


@pytest.mark.parametrize("name", [*SPEECH, "whisper-encoder"])
def test_speech_encoders_layers_pooling_chunking(rows, checkpoints, name) -> None:
    path = str(checkpoints[name])
    base = run(name, {"checkpoint": path}, rows[1])
    assert abs(len(base.sequence) - 75) <= 2 and base.sequence.shape[1] == 32  # 1.5 s at 20 ms frames
    assert base.pooled.shape == (32,)
    np.testing.assert_allclose(base.pooled, run(name, {"checkpoint": path}, rows[1]).pooled, atol=1e-5)
    mean_std = run(name, {"checkpoint": path, "layer": "mean", "pooling": "mean+std"}, rows[1])
    assert mean_std.pooled.shape == (64,)
    weighted = run(name, {"checkpoint": path, "layer": [0, 0, 1]}, rows[1])  # = the last hidden state
    np.testing.assert_allclose(weighted.sequence, base.sequence, atol=1e-4)
    chunked = run(name, {"checkpoint": path, "chunk_seconds": 0.5}, rows[1])
    assert abs(len(chunked.sequence) - 75) <= 3


def test_named_checkpoints_fail_offline_with_the_download_command() -> None:
    for name in (*SPEECH, "whisper-encoder", "roberta", "bert"):
        extractor = build_extractor(name)
        with pytest.raises(MissingWeightsError, match=r"huggingface-cli download .*"):
            extractor.check_weights()
        assert extractor.weights_identity().endswith(":missing")
    with pytest.raises(MissingWeightsError, match="resnet18-.*pth"):
        build_extractor("spectrogram-snippets").check_weights()
    with pytest.raises(MissingWeightsError, match="r3d_18"):
        build_extractor("video-snippets", {"detector": "full-frame"}).check_weights()


def test_text_extractors(rows, checkpoints) -> None:
    minilm = run("minilm", {}, rows[0])
    assert minilm.sequence.shape[1] == 384 and minilm.pooled.shape == (384,)
    assert np.linalg.norm(minilm.pooled) == pytest.approx(1.0, abs=1e-4)
    cls = run("bert", {"checkpoint": str(checkpoints["bert"])}, rows[0])
    mean = run("text-transformer", {"checkpoint": str(checkpoints["bert"]), "pooling": "mean"}, rows[0])
    assert cls.sequence.shape[1] == 32 and cls.sequence.shape[0] >= 3
    np.testing.assert_allclose(cls.pooled, cls.sequence[0])
    np.testing.assert_allclose(mean.pooled, cls.sequence.mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="transcript"):
        decode_clip({**rows[0], "text": " "}, build_extractor("minilm"))


def test_face_extractors_on_full_frame_crops(rows, tmp_path: Path) -> None:
    from transformers import VideoMAEConfig, VideoMAEModel, ViTConfig, ViTModel

    ViTModel(ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64)).save_pretrained(tmp_path / "vit")
    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                                 num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
                  ).save_pretrained(tmp_path / "videomae")
    store = FeatureStore(str(tmp_path / "store"))
    face = {"detector": "full-frame"}
    landmarks = run("mtcnn-landmarks", face, rows[0], store)
    assert landmarks.sequence.shape == (9, 10) and landmarks.pooled.shape == (20,)  # 1.5 s at 6 fps
    assert len(list((tmp_path / "store" / "_cache" / "face-crops").iterdir())) == 1  # crops cached
    expression = run("face-expression", face, rows[0], store)
    assert expression.sequence.shape == (9, 263)
    np.testing.assert_allclose(expression.sequence[:, 256:].sum(axis=1), 1.0, atol=1e-5)
    embed = run("face-embed", {**face, "checkpoint": str(tmp_path / "vit"), "image_size": 32}, rows[0], store)
    assert embed.sequence.shape == (9, 32)
    small = {**face, "image_size": 32, "snippet_frames": 4}
    r3d = run("video-snippets", {**small, "weights": "random"}, rows[0], store)
    r2p1 = run("video-snippets", {**small, "backbone": "r2plus1d_18", "weights": "random"}, rows[0], store)
    mae = run("video-snippets", {**small, "backbone": "videomae", "checkpoint": str(tmp_path / "videomae")},
              rows[0], store)
    assert r3d.sequence.shape == (6, 512) and r2p1.sequence.shape == (6, 512) and mae.sequence.shape == (6, 32)
    again = run("video-snippets", {**small, "weights": "random"}, rows[0], store)
    np.testing.assert_allclose(r3d.pooled, again.pooled, atol=1e-5)


def test_mtcnn_records_frames_without_a_face(rows) -> None:
    """The synthetic corpus's drawn faces are not real faces: MTCNN finds none, and says so."""
    with pytest.raises(NoFaceError, match="no face detected in any of 9 frames"):
        run("mtcnn-landmarks", {}, rows[0])


def test_alignment_levels_the_eyes() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    eyes_tilted = np.array([[30.0, 40.0], [70.0, 50.0], [50, 60], [35, 75], [65, 80]])
    crop, marks = align_crop(frame, np.array([20.0, 20.0, 80.0, 90.0]), eyes_tilted, 56, 0.0, True)
    assert crop.shape == (56, 56, 3)
    assert marks[0, 1] == pytest.approx(marks[1, 1], abs=1e-4)  # eyes level after alignment
    assert 0 <= marks.min() and marks.max() <= 1


def test_config_validation() -> None:
    with pytest.raises(ExtractorConfigError, match="unknown options"):
        build_extractor("egemaps", {"sample_rte": 8000})
    with pytest.raises(ExtractorConfigError, match="layer"):
        build_extractor("wav2vec2", {"layer": "middle"})
    with pytest.raises(ExtractorConfigError, match="pooling"):
        build_extractor("bert", {"pooling": "max"})
    with pytest.raises(ExtractorConfigError, match="detector"):
        build_extractor("mtcnn-landmarks", {"detector": "haar"})
    with pytest.raises(KeyError, match="unknown extractor"):
        build_extractor("nope")


def test_cache_key_sensitivity(checkpoints, tmp_path: Path) -> None:
    key = build_extractor("egemaps").cache_key("m1")
    assert key == build_extractor("egemaps").cache_key("m1")
    assert key != build_extractor("egemaps").cache_key("m2")  # manifest content
    assert key != build_extractor("egemaps", {"sample_rate": 8000}).cache_key("m1")  # config
    assert key != build_extractor("compare").cache_key("m1")  # extractor name
    path = str(checkpoints["wav2vec2"])
    w2v = build_extractor("wav2vec2", {"checkpoint": path}).cache_key("m1")
    assert w2v != build_extractor("wav2vec2", {"checkpoint": path, "layer": 1}).cache_key("m1")
    other = random_init.speech_checkpoint("wav2vec2", tmp_path / "other", seed=1)
    (other / "extra.txt").write_text("different weights file set")
    assert w2v != build_extractor("wav2vec2", {"checkpoint": str(other)}).cache_key("m1")  # weights identity


def test_the_tiny_text_checkpoints_tokenizer_knows_its_words(tmp_path) -> None:
    """Not every word [UNK] (as a vocab-file tokenizer is under transformers 5): sentences must differ as input."""
    from transformers import AutoTokenizer

    from harness.features.weights import random_init

    tokenizer = AutoTokenizer.from_pretrained(random_init.text_checkpoint(tmp_path))
    ids = tokenizer("this is wonderful news")["input_ids"]
    assert tokenizer.unk_token_id not in ids and len(set(ids)) == len(ids)
