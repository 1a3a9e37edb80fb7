"""harness/sota.yaml and its one line per leaderboard table."""

from __future__ import annotations

import pytest
import yaml

from harness.datasets import get_dataset
from harness.sota import SOTA_FILE, SotaError, best_published_line, load


def test_every_entry_names_a_real_card_protocol_and_a_checked_source():
    version, entries = load()
    assert version >= 1 and entries
    for entry in entries:
        spec = get_dataset(entry.corpus)
        for alternative in entry.harness_protocols:
            assert alternative == "default" or alternative in spec.protocols, (entry.system, alternative)
        assert entry.checked_at and entry.source and 2000 < entry.year < 2100
        assert entry.protocol_match != "yes" or entry.harness_protocols  # a match names what it matches


@pytest.mark.parametrize("dataset, protocol, metric, fragments", [
    ("ravdess", "hicmae-6fold: file-folds(file=folds/hicmae-ravdess-6fold.yaml,val_speakers=2)", "uar",
     ["under this protocol: 87.96 UAR (audio-visual; HiCMAE-B", "75.28 UAR (audio; WavLM-Plus", "not verified"]),
    ("ravdess", "emobox-6fold: file-folds(file=folds/emobox-ravdess-6fold.yaml,val_speakers=2)", "uar",
     ["75.32 UAR (audio; EmoBox, Whisper large v3"]),
    ("ravdess", "speaker-kfold(k=6)", "uar",
     ["none comparable: no recorded result used this protocol (default)", "ravdess=emobox-6fold, hicmae-6fold"]),
    ("crema-d", "hicmae-5fold: file-folds(file=folds/hicmae-crema-d-5fold.yaml,val_speakers=7)", "uar",
     ["84.94 UAR (audio-visual; HiCMAE-B", "higher, 86.02 UAR (audio-visual; AVF-MAE++ (H)"]),
    ("crema-d@perceived-voice", "hicmae-5fold: file-folds(x)", "uar", ["not the perceived-voice target"]),
    ("iemocap", "leave-one-session-out(val=speaker)", "uar", ["73.54 UAR (audio; EmoBox"]),
    ("meld", "official-split", "weighted_f1", ["67.37 weighted_f1", "TelME", "speaker-dependent"]),
    ("meld", "official-split", "uar", ["none comparable: results under this protocol report weighted_f1"]),
    ("emodb", "leave-one-speaker-out", "uar", ["none comparable: no published result for emodb"]),
])
def test_the_line_beside_a_table(dataset, protocol, metric, fragments):
    line = best_published_line(dataset, protocol, metric).replace("`", "")
    for fragment in fragments:
        assert fragment in line, line


def test_an_unquoted_yes_is_refused(tmp_path):
    data = yaml.safe_load(SOTA_FILE.read_text())
    data["results"][0]["protocol_match"] = True  # what a bare `yes` becomes
    path = tmp_path / "sota.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SotaError, match=r"results\[0\].protocol_match is True"):
        load(path)
