"""Media outside the corpus root never become clips: `..` and absolute paths from CSV templates, symlinks that
resolve elsewhere, and clip ids with `..` are manifest problems naming the file or row and why."""

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


def test_symlink_resolving_outside_the_root_is_a_problem(tmp_path, outside):
    root = tmp_path / "corpus"
    touch(root / "wav" / "s1_ang.wav", b"inside")
    (root / "wav" / "s2_neu.wav").symlink_to(outside)
    # a symlink that stays inside the corpus is fine
    (root / "wav" / "s3_neu.wav").symlink_to(root / "wav" / "s1_ang.wav")
    manifest = _card(tmp_path, FILENAME_CARD).scan(root)
    assert sorted(manifest.ids) == ["s1_ang", "s3_neu"]
    (reason,) = manifest.problems.loc[manifest.problems["path"] == "wav/s2_neu.wav", "reason"]
    assert "outside the corpus root" in reason and "symlink" in reason
    # the same through a symlinked directory inside the corpus
    (root / "wav" / "linked").symlink_to(outside.parent, target_is_directory=True)
    assert outside_root(root, "wav/linked/passwd.wav") is not None
    # a corpus root that is itself a symlink is resolved first, so its own files stay inside
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert outside_root(alias, "wav/s1_ang.wav") is None


def test_verify_never_sees_an_outside_file(tmp_path, outside):
    """What `harness data verify` decodes is the manifest's media: none of them may resolve outside the root."""
    root = tmp_path / "corpus"
    touch(root / "wav" / "s1_ang.wav", b"inside")
    (root / "wav" / "s2_neu.wav").symlink_to(outside)
    manifest = _card(tmp_path, FILENAME_CARD).scan(root)
    resolved = [manifest.resolve(p).resolve() for p in manifest.table["audio_path"]]
    assert outside.resolve() not in resolved
    assert all(p.is_relative_to(root.resolve()) for p in resolved)


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
