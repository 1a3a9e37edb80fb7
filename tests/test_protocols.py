"""Protocols: speaker-independent folds are asserted, the random split is labelled, folds are stored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.manifest import Manifest
from harness.protocols import (
    Fold,
    LeakageError,
    ProtocolSpec,
    assert_speaker_independent,
    get_protocol,
    load_or_make_folds,
    make_folds,
    protocol_names,
)


def manifest(n_speakers: int = 10, clips: int = 4, sessions: int | None = None) -> Manifest:
    rows = []
    for s in range(n_speakers):
        session = f"S{s // 2 + 1}" if sessions else None
        speaker = f"{session}{'FM'[s % 2]}" if sessions else f"spk{s:02d}"
        rows += [{"clip_id": f"{speaker}_{c}", "speaker": speaker, "label": "ab"[c % 2], "session": session}
                 for c in range(clips)]
    return Manifest("toy", Path("."), ["a", "b"], pd.DataFrame(rows))


def speakers(m: Manifest, fold: Fold) -> tuple[set[str], set[str], set[str]]:
    return m.speakers_of(fold.train), m.speakers_of(fold.val), m.speakers_of(fold.test)


def test_registry_names_the_protocols():
    assert {"speaker-kfold", "leave-one-speaker-out", "leave-one-session-out", "official-split",
            "random-kfold"} <= set(protocol_names())
    assert ProtocolSpec("speaker-kfold", {"k": 6}).label() == "speaker-kfold(k=6)"


@pytest.mark.parametrize("k", [3, 5, 10])
def test_speaker_kfold_tests_every_speaker_once(k):
    m = manifest(n_speakers=20)
    folds = make_folds(m, ProtocolSpec("speaker-kfold", {"k": k}))
    assert len(folds) == k
    tested = [s for f in folds for s in speakers(m, f)[2]]
    assert sorted(tested) == sorted(m.table.speaker.unique())
    for fold in folds:
        train, val, test = speakers(m, fold)
        assert not (train & val or train & test or val & test)
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(m)


def test_val_speakers_are_drawn_from_the_non_test_speakers():
    m = manifest(n_speakers=24)
    folds = make_folds(m, ProtocolSpec("speaker-kfold", {"k": 6, "val_speakers": 2}))
    for fold in folds:
        train, val, test = speakers(m, fold)
        assert (len(train), len(val), len(test)) == (18, 2, 4)
    with pytest.raises(ValueError, match="val_speakers=20"):
        make_folds(m, ProtocolSpec("speaker-kfold", {"k": 6, "val_speakers": 20}))


def test_leave_one_speaker_out_has_one_fold_per_speaker():
    m = manifest(n_speakers=5)
    folds = make_folds(m, ProtocolSpec("leave-one-speaker-out"))
    assert sorted(f.name for f in folds) == [f"test-spk{i:02d}" for i in range(5)]
    assert all(speakers(m, f)[2] == {f.name.removeprefix("test-")} for f in folds)
    assert all(len(speakers(m, f)[1]) == 1 for f in folds)


@pytest.mark.parametrize("val", ["speaker", "session"])
def test_leave_one_session_out(val):
    m = manifest(n_speakers=10, sessions=5)
    folds = make_folds(m, ProtocolSpec("leave-one-session-out", {"val": val}))
    table = m.table.set_index("clip_id")
    assert [f.name for f in folds] == [f"test-S{i}" for i in range(1, 6)]
    for i, fold in enumerate(folds):
        test_sessions, val_sessions = set(table.loc[fold.test, "session"]), set(table.loc[fold.val, "session"])
        assert test_sessions == {f"S{i + 1}"} and len(val_sessions) == 1 and not val_sessions & test_sessions
        assert len(speakers(m, fold)[1]) == (1 if val == "speaker" else 2)
        assert not set(table.loc[fold.train, "session"]) & test_sessions
    if val == "speaker":  # successive folds alternate which speaker of the validation session is held out
        assert {next(iter(speakers(m, f)[1]))[-1] for f in folds} == {"F", "M"}


def test_leave_one_session_out_needs_sessions():
    with pytest.raises(ValueError, match="needs a session for every clip"):
        make_folds(manifest(), ProtocolSpec("leave-one-session-out"))


def test_leakage_is_detected():
    m = manifest(n_speakers=3)
    ids = m.table.groupby("speaker")["clip_id"].apply(list)
    leaky = Fold("bad", ids["spk00"] + ids["spk01"][:2], ids["spk01"][2:], ids["spk02"])
    with pytest.raises(LeakageError, match="speakers in both train and val: \\['spk01'\\]"):
        assert_speaker_independent(m, [leaky])


def test_random_split_is_labelled_and_not_checked_for_speakers():
    protocol = get_protocol("random-kfold")
    assert not protocol.speaker_independent and "SPEAKER-OVERLAPPING" in protocol.description
    m = manifest(n_speakers=3, clips=10)
    folds = make_folds(m, ProtocolSpec("random-kfold", {"k": 5}))
    assert any(speakers(m, f)[0] & speakers(m, f)[2] for f in folds)


def test_folds_are_stored_and_reused(tmp_path):
    m = manifest(n_speakers=6)
    spec = ProtocolSpec("speaker-kfold", {"k": 3, "seed": 1})
    path = tmp_path / "folds.json"
    first = load_or_make_folds(path, m, spec)
    stored = json.loads(path.read_text())
    assert stored["protocol"] == "speaker-kfold" and stored["manifest"] == m.fingerprint()
    assert load_or_make_folds(path, m, spec) == first
    # A tampered file that leaks a speaker is caught on load.
    stored["folds"][0]["val"] = stored["folds"][0]["val"] + stored["folds"][0]["test"][:1]
    path.write_text(json.dumps(stored))
    with pytest.raises(LeakageError):
        load_or_make_folds(path, m, spec)


@pytest.mark.parametrize("n_speakers", [2, 3])
def test_leave_one_speaker_out_with_validation_from_training_clips(n_speakers):
    """A 2-3-speaker corpus: the test speaker is unseen; validation is drawn from the training speakers' clips
    (the weaker guarantee the report states)."""
    from harness.protocols import validates_on_training_speakers

    m = manifest(n_speakers=n_speakers, clips=10)
    spec = ProtocolSpec("leave-one-speaker-out", {"val": "clips"})
    folds = make_folds(m, spec)
    assert len(folds) == n_speakers and validates_on_training_speakers(spec)
    for fold in folds:
        train, val, test = speakers(m, fold)
        assert test == {fold.name.removeprefix("test-")} and not (train | val) & test
        assert val <= train and len(fold.val) == round(0.2 * (n_speakers - 1) * 10)
    assert not validates_on_training_speakers(ProtocolSpec("leave-one-speaker-out"))
    with pytest.raises(ValueError, match="for corpora of 2-3 speakers"):
        make_folds(manifest(n_speakers=4), spec)
    # the ordinary form refuses 2 speakers with the way out in the message
    with pytest.raises(ValueError, match=r"val: clips"):
        make_folds(manifest(n_speakers=2), ProtocolSpec("leave-one-speaker-out"))


def test_speaker_leakage_between_train_and_test_is_still_caught_with_val_from_training():
    from harness.protocols import assert_disjoint

    m = manifest(n_speakers=2, clips=4)
    leaky = [Fold("f", ["spk00_0", "spk01_1"], ["spk00_2"], ["spk01_0"])]
    with pytest.raises(LeakageError, match="speakers in both train and test"):
        assert_disjoint(m, leaky, by_speaker=True, val_from_train=True)


# ---- the folds cache is keyed by everything the folds depend on ------------------------------------------------
@pytest.mark.parametrize("changed", [{"k": 4}, {"seed": 2}, {"val_speakers": 2}])
def test_stored_folds_are_remade_when_a_protocol_parameter_changes(tmp_path, changed):
    m = manifest(n_speakers=12)
    path = tmp_path / "folds.json"
    base = {"k": 3, "seed": 1}
    first = load_or_make_folds(path, m, ProtocolSpec("speaker-kfold", base))
    other = ProtocolSpec("speaker-kfold", {**base, **changed})
    again = load_or_make_folds(path, m, other)
    assert again == make_folds(m, other) and again != first  # made anew, not the stored k=3/seed=1 folds
    assert load_or_make_folds(path, m, ProtocolSpec("speaker-kfold", base)) == first


def test_a_parameter_left_at_its_default_is_the_same_folds(tmp_path):
    """The key holds the parameters as the protocol receives them: `k` unset is k=5, so the stored folds of
    `{}` are reused for `{"k": 5}` (and the file not rewritten), and `{"k": 4}` is another split."""
    from harness.protocols import folds_key

    m = manifest(n_speakers=10)
    path = tmp_path / "folds.json"
    first = load_or_make_folds(path, m, ProtocolSpec("speaker-kfold"))
    stamp = path.stat().st_mtime_ns
    assert load_or_make_folds(path, m, ProtocolSpec("speaker-kfold", {"k": 5, "seed": 0})) == first
    assert path.stat().st_mtime_ns == stamp
    assert folds_key(m, ProtocolSpec("speaker-kfold")) != folds_key(m, ProtocolSpec("speaker-kfold", {"k": 4}))
    with pytest.raises(TypeError):  # as when the folds are made: a parameter the protocol does not take
        folds_key(m, ProtocolSpec("speaker-kfold", {"folds": 4}))


def _fold_file(path: Path, tests: list[list[str]], speakers: list[str]) -> None:
    import yaml

    path.write_text(yaml.safe_dump({"unit": "speaker", "speaker_independent": True, "folds": [
        {"name": f"fold{i}", "train": [s for s in speakers if s not in test], "test": test}
        for i, test in enumerate(tests)]}))


def test_an_edited_fold_file_with_the_same_path_makes_new_folds(tmp_path):
    m = manifest(n_speakers=6)
    names = sorted(m.table["speaker"].unique())
    file = tmp_path / "published.yaml"
    _fold_file(file, [names[:2], names[2:4], names[4:]], names)
    spec = ProtocolSpec("file-folds", {"file": str(file)})
    path = tmp_path / "folds.json"
    first = load_or_make_folds(path, m, spec)
    assert speakers(m, first[0])[2] == set(names[:2])
    _fold_file(file, [names[4:], names[:2], names[2:4]], names)  # same path, the folds rotated
    again = load_or_make_folds(path, m, spec)
    assert speakers(m, again[0])[2] == set(names[4:]) and again == make_folds(m, spec)


def test_an_unreadable_folds_file_is_made_again(tmp_path):
    m = manifest(n_speakers=6)
    spec = ProtocolSpec("speaker-kfold", {"k": 3})
    path = tmp_path / "folds.json"
    path.write_text('{"protocol": "speaker-kfold", "fol')  # a write cut short
    assert load_or_make_folds(path, m, spec) == make_folds(m, spec)
    assert json.loads(path.read_text())["protocol"] == "speaker-kfold"
