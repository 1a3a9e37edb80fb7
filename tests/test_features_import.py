"""Bring your own features: NPZ / Parquet / CSV tables stored like extracted features, problems reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import build_parser
from harness.datasets.synthetic import SyntheticConfig, generate, scan
from harness.features import commands
from harness.features.imports import ImportFormatError, import_features
from harness.features.runner import extract, load_features
from harness.features.store import FeatureStore


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=2, clips_per_emotion=1))  # 8 clips
    return scan(root)


def test_npz_pooled_with_unknown_missing_and_bad_rows(manifest, tmp_path: Path) -> None:
    ids = manifest.ids[:6] + ["not-a-clip"]
    pooled = np.arange(7 * 4, dtype=np.float32).reshape(7, 4)
    pooled[5, 0] = np.nan
    np.savez(tmp_path / "feats.npz", clip_id=np.array(ids), pooled=pooled)
    store = FeatureStore(str(tmp_path / "store"))
    report = import_features(manifest, "my-opensmile", tmp_path / "feats.npz", store, modality="audio")
    assert report.n_stored == 5 and report.unknown_ids == ["not-a-clip"]
    assert report.missing_ids == manifest.ids[6:] and report.bad_rows[0][0] == manifest.ids[5]
    assert "not in the manifest" in report.summary()
    stored, _ = load_features(manifest, "my-opensmile", store)
    np.testing.assert_array_equal(stored.pooled[stored.index()[manifest.ids[1]]], pooled[1])
    assert set(stored.failures["clip_id"]) == {manifest.ids[5], *manifest.ids[6:]}
    assert (stored.failures["stage"] == "import").all()
    assert extract(manifest, "my-opensmile", store, verbose=False).cached  # methods see it like an extraction


def test_npz_sequences_padded_and_concatenated(manifest, tmp_path: Path) -> None:
    lengths = np.arange(1, 9)
    padded = np.zeros((8, 8, 3), np.float32)
    for i, n in enumerate(lengths):
        padded[i, :n] = i
    np.savez(tmp_path / "padded.npz", clip_id=np.array(manifest.ids), sequence=padded, lengths=lengths)
    concat = np.concatenate([padded[i, :n] for i, n in enumerate(lengths)])
    np.savez(tmp_path / "concat.npz", clip_id=np.array(manifest.ids), sequence=concat, lengths=lengths)
    for name in ("padded", "concat"):
        store = FeatureStore(str(tmp_path / name))
        import_features(manifest, "seq", tmp_path / f"{name}.npz", store)
        stored, _ = load_features(manifest, "seq", store)
        assert [len(stored.sequences[stored.index()[i]]) for i in manifest.ids] == lengths.tolist()
    np.savez(tmp_path / "wrong.npz", clip_id=np.array(manifest.ids), sequence=concat[:-1], lengths=lengths)
    with pytest.raises(ImportFormatError, match="matches neither"):
        import_features(manifest, "seq", tmp_path / "wrong.npz", FeatureStore(str(tmp_path / "w")))


def test_csv_frames_openface_style_and_parquet(manifest, tmp_path: Path) -> None:
    frames = pd.DataFrame([{"clip_id": c, " frame": f, " AU01_r": float(f), " AU12_r": 1.0, "face_id": "x"}
                           for c in manifest.ids for f in (2, 1, 3)])
    frames.to_csv(tmp_path / "openface.csv", index=False)
    store = FeatureStore(str(tmp_path / "store"))
    report = import_features(manifest, "openface", tmp_path / "openface.csv", store)
    assert report.n_stored == 8 and report.ignored_columns == ["face_id"]
    stored, _ = load_features(manifest, "openface", store)
    np.testing.assert_array_equal(stored.sequences[0][:, 0], [1.0, 2.0, 3.0])  # ordered by frame
    pooled = pd.DataFrame({"clip_id": manifest.ids, "f0": np.arange(8.0), "f1": np.ones(8)})
    pooled.to_parquet(tmp_path / "glove.parquet")
    import_features(manifest, "glove", tmp_path / "glove.parquet", store)
    glove, _ = load_features(manifest, "glove", store)
    assert glove.pooled.shape == (8, 2) and glove.sequences[0].shape == (1, 2)


def test_pickle_and_name_clashes_are_refused(manifest, tmp_path: Path) -> None:
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(ImportFormatError, match="never loaded"):
        import_features(manifest, "x", tmp_path / "x.pkl", FeatureStore(str(tmp_path)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "obj.npz", clip_id=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ImportFormatError, match="pickle-free"):
        import_features(manifest, "x", tmp_path / "obj.npz", FeatureStore(str(tmp_path)))
    np.savez(tmp_path / "ok.npz", clip_id=np.array(manifest.ids), pooled=np.zeros((8, 2)))
    with pytest.raises(ValueError, match="built-in extractor"):
        import_features(manifest, "egemaps", tmp_path / "ok.npz", FeatureStore(str(tmp_path)))
    with pytest.raises(KeyError, match="harness features import"):
        load_features(manifest, "never-imported", FeatureStore(str(tmp_path)))


def test_cli_import_list_and_config_parsing(manifest, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_DATA_SYNTHETIC", str(manifest.root))
    parser = build_parser()
    np.savez(tmp_path / "mine.npz", clip_id=np.array(manifest.ids), pooled=np.ones((8, 3)))
    store = str(tmp_path / "store")
    args = parser.parse_args(["features", "import", "--dataset", "synthetic", "--name", "mine", "--store", store,
                              str(tmp_path / "mine.npz")])
    assert args.func(args) == 0 and "imported 8 clips" in capsys.readouterr().out
    args = parser.parse_args(["features", "list", "--store", store])
    assert args.func(args) == 0 and "synthetic/mine" in capsys.readouterr().out
    args = parser.parse_args(["extract", "--dataset", "synthetic", "--extractor", "wav2vec2", "--store", store])
    assert args.func(args) == 2 and "huggingface-cli download facebook/wav2vec2-base" in capsys.readouterr().err
    args = parser.parse_args(["extract", "--dataset", "synthetic", "--extractor", "logmel", "--local",
                              "--config", "logmel.n_mels=20", "--store", store])
    assert args.func(args) == 0 and "extracted 8 clips" in capsys.readouterr().out
    assert commands.parse_configs(["layer=6", "wav2vec2.checkpoint=/m/w2v.1", "x.y=1"][:2],
                                  ["wav2vec2", "hubert"]) == {"wav2vec2": {"layer": 6, "checkpoint": "/m/w2v.1"},
                                                              "hubert": {"layer": 6}}
    with pytest.raises(ValueError, match="not one of the --extractor"):
        commands.parse_configs(["x.y=1"], ["wav2vec2"])


def _without_video(manifest):
    """The same clips with no video media at all (as when only feature files were shared)."""
    import dataclasses

    table = manifest.table.copy()
    table["video_path"] = None
    return dataclasses.replace(manifest, dataset="synthetic-novideo", table=table)


def test_imported_modalities_make_a_modality_without_media(manifest, tmp_path: Path) -> None:
    from harness.features.imports import imported_modalities

    novideo = _without_video(manifest)
    assert "video" not in novideo.modalities()
    store = FeatureStore(str(tmp_path / "store"))
    assert imported_modalities(novideo, store, {"video": "openface"}) == {}
    au = pd.DataFrame([{"clip_id": c, "frame": f, "AU01_r": f * 0.5, "AU12_r": 1.0}
                       for c in novideo.ids[:7] for f in (1, 2)])
    au.to_csv(tmp_path / "au.csv", index=False)
    report = import_features(novideo, "openface", tmp_path / "au.csv", store, modality="video")
    assert report.missing_ids == novideo.ids[7:]
    assert imported_modalities(novideo, store, {"video": "openface", "audio": "egemaps"}) == {"video": "openface"}
    assert imported_modalities(novideo, store) == {"video": "openface"}
    # imports belong to one manifest: the manifest with video media has none
    assert imported_modalities(manifest, store) == {}
    with pytest.raises(ValueError, match=r"imported as video .* --modality audio"):
        imported_modalities(novideo, store, {"audio": "openface"})
    # a clip the import lacked is a failure row, so availability masks mark it missing
    stored, _ = load_features(novideo, "openface", store)
    assert set(stored.ids) == set(novideo.ids[:7])
    assert stored.failures["clip_id"].tolist() == novideo.ids[7:]


def test_imports_with_no_clips_duplicates_or_overlong_lengths_are_refused(manifest, tmp_path: Path) -> None:
    store = FeatureStore(str(tmp_path / "store"))
    np.savez(tmp_path / "good.npz", clip_id=np.array(manifest.ids), pooled=np.ones((8, 2)))
    import_features(manifest, "feats", tmp_path / "good.npz", store)
    np.savez(tmp_path / "empty.npz", clip_id=np.array(["nope-1", "nope-2"]), pooled=np.ones((2, 2)))
    with pytest.raises(ImportFormatError, match="no clip could be imported.*nothing was stored"):
        import_features(manifest, "feats", tmp_path / "empty.npz", store)
    stored, _ = load_features(manifest, "feats", store)  # the good import is still the one found
    assert len(stored.ids) == 8
    np.savez(tmp_path / "dup.npz", clip_id=np.array([manifest.ids[0]] * 2), pooled=np.ones((2, 2)))
    with pytest.raises(ImportFormatError, match="more than once"):
        import_features(manifest, "dup", tmp_path / "dup.npz", store)
    np.savez(tmp_path / "long.npz", clip_id=np.array(manifest.ids[:2]), sequence=np.ones((2, 3, 2)),
             lengths=np.array([3, 5]))
    with pytest.raises(ImportFormatError, match="lengths <= 3"):
        import_features(manifest, "long", tmp_path / "long.npz", store)
