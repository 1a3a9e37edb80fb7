"""Paths from corpus data stay under the corpus root: `..` and absolute paths from CSV templates, and clip ids
with `..`, are manifest problems naming the file or row and why. Symlinks in the user's data tree are the
user's layout: followed, their real location recorded. A scan that makes (almost) nothing of what it read stops
with an error instead of becoming an empty corpus."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fixtures.corpora import touch

from harness.datasets.cards import parse_card
from harness.datasets.readers import outside_root
from harness.manifest import Manifest

CSV_CARD = """
name: toycsv
title: Toy CSV
modalities: [audio, text]
classes: [angry, neutral]
protocol: {name: official-split}
present: ["train.csv"]
reader:
  kind: csv
  tables:
    - {file: train.csv, split: train, media: {audio: "clips/{Dialogue}_{File}"}}
clip_id: "train_dia{Dialogue}_{File}"
speaker: "{Speaker}"
label: "{Emotion}"
text: "{Utterance}"
split: "{split}"
"""

FILENAME_CARD = """
name: toyfiles
title: Toy files
modalities: [audio]
classes: [angry, neutral]
protocol: {name: leave-one-speaker-out}
present: ["wav/*.wav"]
reader:
  kind: filename
  files: [{glob: "wav/*.wav", role: audio}]
  pattern: 'wav/(?P<speaker>s\\d)_(?P<emotion>ang|neu)'
derive:
  emotion_name: {from: emotion, values: {ang: angry, neu: neutral}}
clip_id: "{speaker}_{emotion}"
speaker: "{speaker}"
label: "{emotion_name}"
"""


def _card(tmp_path: Path, text: str):
    name = text.split("name: ", 1)[1].split("\n", 1)[0]
    path = tmp_path / "cards" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return parse_card(path)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file next to (not inside) the corpus root."""
    return touch(tmp_path / "secret" / "passwd.wav", b"not yours")


def test_csv_rows_with_dotdot_or_absolute_media_are_problems_not_clips(tmp_path, outside):
    root = tmp_path / "corpus"
    touch(root / "clips" / "1_a.wav", b"x")
    rows = [
        {"Dialogue": "1", "File": "a.wav", "Speaker": "s1", "Emotion": "angry", "Utterance": "fine"},
        # a crafted Dialogue puts ../ into both the media path and the clip id
        {"Dialogue": "../../secret/x", "File": "a.wav", "Speaker": "s2", "Emotion": "neutral", "Utterance": "a"},
        # ../ in another templated field
        {"Dialogue": "2", "File": "../../secret/passwd.wav", "Speaker": "s3", "Emotion": "neutral",
         "Utterance": "b"},
    ]
    root.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    manifest = _card(tmp_path, CSV_CARD).scan(root)
    assert manifest.ids == ["train_dia1_a.wav"]
    rejected = manifest.problems[manifest.problems["path"].isin(["train.csv:3", "train.csv:4"])]
    assert len(rejected) == 2
    assert rejected["reason"].str.contains("climbs out with '..'").all()


def test_absolute_path_from_a_template_is_a_problem(tmp_path, outside):
    root = tmp_path / "corpus"
    root.mkdir()
    card = CSV_CARD.replace('"clips/{Dialogue}_{File}"', '"{File}"')
    pd.DataFrame([{"Dialogue": "1", "File": str(outside), "Speaker": "s1", "Emotion": "angry",
                   "Utterance": "hi"}]).to_csv(root / "train.csv", index=False)
    manifest = _card(tmp_path, card).scan(root)
    assert len(manifest) == 0
    (reason,) = manifest.problems.loc[manifest.problems["path"] == "train.csv:2", "reason"]
    assert "absolute media path" in reason and str(outside) in reason


def test_symlinks_in_the_users_tree_are_followed_and_recorded(tmp_path, outside):
    """A symlink in the data tree is the user's layout (an archive cannot plant one: `harness data fetch`
    filters members): followed, with its real location in the manifest and its fingerprint."""
    root = tmp_path / "corpus"
    touch(root / "wav" / "s1_ang.wav", b"inside")
    (root / "wav" / "s2_neu.wav").symlink_to(outside)
    (root / "wav" / "s3_neu.wav").symlink_to(root / "wav" / "s1_ang.wav")  # inside the corpus: fine too
    manifest = _card(tmp_path, FILENAME_CARD).scan(root)
    assert sorted(manifest.ids) == ["s1_ang", "s2_neu", "s3_neu"]
    real = manifest.table.set_index("clip_id")["audio_resolved"]
    assert real["s2_neu"] == str(outside.resolve())
    assert real["s3_neu"] == str((root / "wav" / "s1_ang.wav").resolve())
    assert real["s1_ang"] is None  # where its path says
    assert outside_root(root, "wav/s2_neu.wav") is None
    # pointing the link at another copy changes the cache key, even at the same size
    other = touch(tmp_path / "elsewhere" / "passwd.wav", b"not yours")
    (root / "wav" / "s2_neu.wav").unlink()
    (root / "wav" / "s2_neu.wav").symlink_to(other)
    assert _card(tmp_path, FILENAME_CARD).scan(root).fingerprint() != manifest.fingerprint()


def test_a_symlinked_media_folder_keeps_every_clip(tmp_path):
    """`datasets/x/wav -> /data/x/wav`: the usual way to keep a large corpus out of a checkout."""
    store = tmp_path / "store" / "wav"
    names = ("s1_ang", "s2_neu", "s3_neu")
    for name in names:
        touch(store / f"{name}.wav", name.encode())
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "wav").symlink_to(store, target_is_directory=True)
    manifest = _card(tmp_path, FILENAME_CARD).scan(root)
    assert sorted(manifest.ids) == list(names) and manifest.problems.empty
    assert set(manifest.table["audio_path"]) == {f"wav/{n}.wav" for n in names}
    assert all(Path(p).parent == store.resolve() for p in manifest.table["audio_resolved"])
    # a corpus without links has no such column, so its fingerprint is what it was before links were recorded
    plain = tmp_path / "plain"
    touch(plain / "wav" / "s1_ang.wav", b"x")
    assert "audio_resolved" not in _card(tmp_path, FILENAME_CARD).scan(plain).table


def test_a_corpus_root_that_is_a_symlink_stays_inside(tmp_path):
    root = tmp_path / "corpus"
    touch(root / "wav" / "s1_ang.wav", b"inside")
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert outside_root(alias, "wav/s1_ang.wav") is None
    assert _card(tmp_path, FILENAME_CARD).scan(alias).ids == ["s1_ang"]


@pytest.mark.parametrize("clip_id", ["../evil", "a/../../b", "/abs", "x\\..\\y"])
def test_clip_ids_with_dotdot_are_problems(tmp_path, clip_id):
    table = pd.DataFrame([{"clip_id": "ok", "speaker": "s", "label": "a"},
                          {"clip_id": clip_id, "speaker": "s", "label": "a"}])
    manifest = Manifest("toy", tmp_path, ["a"], table)
    assert manifest.ids == ["ok"]
    (reason,) = manifest.problems.loc[manifest.problems["path"] == clip_id, "reason"]
    assert "clip id" in reason and "card's clip_id template" in reason


def test_ordinary_ids_and_paths_pass(tmp_path):
    assert outside_root(tmp_path, "a/b..c/d.wav") is None  # '..' inside a name is not a component
    table = pd.DataFrame([{"clip_id": "dia1..2_utt3", "speaker": "s", "label": "a"}])
    assert Manifest("toy", tmp_path, ["a"], table).ids == ["dia1..2_utt3"]


def _open(tmp_path: Path, root: Path, card: str = FILENAME_CARD, with_folds: bool = False):
    from harness.config import Settings
    from harness.corpus import open_corpus

    spec = _card(tmp_path, card).to_spec()
    settings = Settings(workspace=tmp_path / "ws", data_dirs={spec.name: root})
    return open_corpus(settings, spec, with_folds=with_folds, say=lambda _: None)


def test_a_scan_that_makes_no_clip_is_an_error_naming_reasons_and_table(tmp_path):
    from harness.corpus import CorpusUnusable

    root = tmp_path / "corpus"
    for name in ("s1_xxx", "s2_yyy"):  # files the card's pattern cannot read
        touch(root / "wav" / f"{name}.wav", b"x")
    with pytest.raises(CorpusUnusable) as caught:
        _open(tmp_path, root)
    message = str(caught.value)
    assert "0 clips from 2 files" in message and "does not match the card's pattern" in message
    assert str(tmp_path / "ws") in message and "problems.csv" in message and "\n" not in message
    assert (tmp_path / "ws").exists() and not list((tmp_path / "ws").rglob("folds.json"))


def test_a_scan_that_loses_too_many_files_is_an_error(tmp_path, monkeypatch):
    from harness.corpus import CorpusUnusable

    root = tmp_path / "corpus"
    touch(root / "wav" / "s1_ang.wav", b"x")
    for name in ("s1_xxx", "s2_yyy"):
        touch(root / "wav" / f"{name}.wav", b"x")
    with pytest.raises(CorpusUnusable, match="2 of 3 files or rows lost"):
        _open(tmp_path, root)
    monkeypatch.setenv("HARNESS_MAX_LOST_SHARE", "0.7")
    assert _open(tmp_path, root).manifest.ids == ["s1_ang"]


def test_a_csv_whose_every_row_escapes_is_an_error_not_an_empty_corpus(tmp_path):
    from harness.corpus import CorpusUnusable

    root = tmp_path / "corpus"
    root.mkdir()
    pd.DataFrame([{"Dialogue": "../../x", "File": "a.wav", "Speaker": "s1", "Emotion": "angry",
                   "Utterance": "hi"}]).to_csv(root / "train.csv", index=False)
    with pytest.raises(CorpusUnusable, match="climbs out with '..'"):
        _open(tmp_path, root, CSV_CARD)


def test_emodb_through_a_symlinked_wav_folder_scans_all_535(tmp_path, shared_data):
    """The issue's layout, datasets/emodb/wav -> the real EmoDB, opened as every command opens a corpus."""
    from harness.config import Settings
    from harness.corpus import open_corpus
    from harness.datasets import get_dataset

    root = tmp_path / "datasets" / "emodb"
    root.mkdir(parents=True)
    (root / "wav").symlink_to(shared_data / "emodb" / "wav", target_is_directory=True)
    settings = Settings(workspace=tmp_path / "ws", data_root=tmp_path / "datasets")
    corpus = open_corpus(settings, get_dataset("emodb"), say=lambda _: None)
    assert len(corpus.manifest) == 535 and corpus.manifest.problems.empty
    real = corpus.manifest.table["audio_resolved"].map(Path)
    assert all(p.parent == (shared_data / "emodb" / "wav").resolve() and p.is_file() for p in real)
    assert len(corpus.folds) == 10


@pytest.mark.slow
def test_emodb_through_a_symlinked_wav_folder_extracts_all_535(tmp_path, shared_data):
    """The issue's acceptance: a symlinked datasets/emodb/wav extracts every clip (eGeMAPS, in-process loop)."""
    from harness.config import Settings
    from harness.features.commands import load_manifest
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    root = tmp_path / "datasets" / "emodb"
    root.mkdir(parents=True)
    (root / "wav").symlink_to(shared_data / "emodb" / "wav", target_is_directory=True)
    manifest = load_manifest("emodb", Settings(workspace=tmp_path / "ws", data_root=tmp_path / "datasets"))
    result = extract(manifest, "egemaps", FeatureStore(str(tmp_path / "store")), executor="local", verbose=False)
    assert len(result.stored.ids) == 535 and len(result.stored.failures) == 0


def test_an_extraction_that_stores_no_clip_is_an_error(tmp_path):
    """Every clip undecodable: `harness extract` reports it as an error (exit 1), with the first reasons."""
    from harness.features.commands import extraction_problem
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    root = tmp_path / "corpus"
    for name in ("s1_ang", "s2_neu"):
        touch(root / "wav" / f"{name}.wav", b"not a wav file")
    manifest = _card(tmp_path, FILENAME_CARD).scan(root)
    result = extract(manifest, "egemaps", FeatureStore(str(tmp_path / "store")), executor="local", verbose=False)
    message = extraction_problem(result, 0.25)
    assert message is not None and "no clip extracted from 2" in message and "s1_ang" in message
    assert "\n" not in message
