"""Manifest schema, persistence and fingerprint; fold storage and leakage detection."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.manifest import Manifest, ManifestError
from harness.protocols import Fold, LeakageError, ProtocolSpec, assert_speaker_independent, load_or_make_folds


def _manifest(tmp_path, n_speakers=4, per_speaker=4) -> Manifest:
    rows = [{"clip_id": f"s{s}_{i}", "speaker": f"s{s}", "label": ["a", "b"][i % 2], "audio_path": f"s{s}/{i}.wav"}
            for s in range(n_speakers) for i in range(per_speaker)]
    return Manifest("toy", tmp_path, ["a", "b"], pd.DataFrame(rows))


def test_schema_errors_name_the_problem(tmp_path):
    table = pd.DataFrame([{"clip_id": "x", "speaker": "s", "label": "zzz"}])
    with pytest.raises(ManifestError, match="zzz"):
        Manifest("toy", tmp_path, ["a"], table)
    dup = pd.DataFrame([{"clip_id": "x", "speaker": "s", "label": "a"}] * 2)
    with pytest.raises(ManifestError, match="duplicate"):
        Manifest("toy", tmp_path, ["a"], dup)


def test_save_load_roundtrip_and_fingerprint(tmp_path):
    manifest = _manifest(tmp_path)
    manifest.save(tmp_path / "m")
    loaded = Manifest.load(tmp_path / "m")
    assert loaded.fingerprint() == manifest.fingerprint()
    assert loaded.resolve("s0/0.wav") == tmp_path / "s0/0.wav"
    changed = _manifest(tmp_path)
    changed.table.loc[0, "audio_path"] = "other.wav"
    assert changed.fingerprint() != manifest.fingerprint()
    # media replaced in place (same path, new content of another size) must not reuse cached features
    media = tmp_path / "s0" / "0.wav"
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_bytes(b"x" * 10)
    before = _manifest(tmp_path).fingerprint()
    media.write_bytes(b"x" * 20)
    assert _manifest(tmp_path).fingerprint() != before
    assert manifest.modalities() == ["audio"]


def test_fingerprint_is_computed_once_per_manifest(tmp_path, monkeypatch):
    """A run asks for the fingerprint several times; the media files are statted once per manifest."""
    manifest = _manifest(tmp_path)
    calls = []
    original = Manifest._size
    monkeypatch.setattr(Manifest, "_size", lambda self, relative: calls.append(relative) or original(self, relative))
    first = manifest.fingerprint()
    assert len(calls) == 2 * len(manifest)  # audio_path and video_path of every clip
    assert manifest.fingerprint() == first and len(calls) == 2 * len(manifest)
    import dataclasses

    assert dataclasses.replace(manifest, dataset="other").fingerprint() != first  # a new manifest computes anew


def test_folds_are_stored_and_reused(tmp_path):
    manifest = _manifest(tmp_path)
    spec = ProtocolSpec("speaker-kfold", {"k": 4})
    path = tmp_path / "folds.json"
    first = load_or_make_folds(path, manifest, spec)
    stamp = path.stat().st_mtime_ns
    again = load_or_make_folds(path, manifest, spec)
    assert again == first and path.stat().st_mtime_ns == stamp
    for fold in first:
        assert manifest.speakers_of(fold.train).isdisjoint(manifest.speakers_of(fold.test))
        assert manifest.speakers_of(fold.val).isdisjoint(manifest.speakers_of(fold.test))


def test_leakage_is_detected(tmp_path):
    manifest = _manifest(tmp_path)
    leaky = Fold("bad", train=["s0_0", "s1_0"], val=["s2_0"], test=["s0_1"])
    with pytest.raises(LeakageError, match="s0"):
        assert_speaker_independent(manifest, [leaky])
