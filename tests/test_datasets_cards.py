"""Dataset cards: the repository's cards load and document their corpus; bad cards fail naming file and field;
a new file-name-labelled corpus needs only a card."""

from __future__ import annotations

import pytest
from fixtures.corpora import touch

import harness.datasets as registry
from harness.datasets import dataset_names, get_dataset
from harness.datasets.cards import CARD_DIRS_ENV, default_card_dirs, parse_card, register_card_dir
from harness.datasets.readers import CardError
from harness.protocols import get_protocol

CARDS = ("crema-d", "emodb", "iemocap", "meld", "ravdess", "savee")


@pytest.fixture
def isolated_registry(monkeypatch):
    """Cards registered by a test disappear after it."""
    registry.dataset_names()  # load every card before taking a copy
    monkeypatch.setattr(registry._DATASETS, "items", dict(registry._DATASETS.items))


@pytest.mark.parametrize("name", CARDS)
def test_repository_cards_document_their_corpus(name):
    spec = get_dataset(name)
    assert name in dataset_names()
    assert spec.citation and spec.licence and spec.homepage and spec.layout
    assert spec.obtain.get("instructions")
    assert spec.protocol.name in ("speaker-kfold", "leave-one-speaker-out", "leave-one-session-out",
                                  "official-split")
    for alternative in spec.protocols.values():
        protocol = get_protocol(alternative.name)
        assert protocol.speaker_independent or "speaker-overlapping" in str(alternative) + protocol.description.lower()
    assert set(spec.polarity) <= set(spec.classes) and set(spec.features) <= set(spec.modalities)
    assert spec.card is not None and spec.card.name == f"{name}.yaml"


def test_expected_protocols_and_metrics():
    assert get_dataset("ravdess").protocol.label() == "speaker-kfold(k=6)"
    assert get_dataset("iemocap").protocol.label() == "leave-one-session-out(val=speaker)"
    assert get_dataset("emodb").protocol.label() == "leave-one-speaker-out"
    assert (get_dataset("meld").protocol.label(), get_dataset("meld").headline_metric) == (
        "official-split", "weighted_f1")
    assert get_dataset("iemocap").targets == {"6class": ("neutral", "happy", "sad", "angry", "excited",
                                                         "frustrated")}


GOOD = """
name: toy
title: Toy
modalities: [audio]
classes: [angry, neutral]
protocol: {name: leave-one-speaker-out}
reader:
  kind: filename
  files: [{glob: "wav/*.wav", role: audio}]
  pattern: 'wav/(?P<speaker>s\\d)_(?P<emotion>ang|neu)_(?P<take>\\d)'
derive:
  emotion_name: {from: emotion, values: {ang: angry, neu: neutral}}
clip_id: "{speaker}_{emotion}_{take}"
speaker: "{speaker}"
label: "{emotion_name}"
"""


def write_card(directory, text: str = GOOD):
    path = directory / "toy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("change", "message"), [
    (("title: Toy", "title: Toy\ncolour: red"), r"card: unknown field\(s\) \['colour'\]"),
    (("title: Toy\n", ""), r"card\.title: missing"),
    (("pattern: 'wav/(?P<speaker>", "pattern: 'wav/((?P<speaker>"), r"card\.reader\.pattern: invalid regular"),
    (('clip_id: "{speaker}_', 'clip_id: "{actor}_'), r"clip_id: template .* names \['actor'\]"),
    (("name: leave-one-speaker-out", "name: leave-one-out"), r"protocol\.name: unknown protocol"),
    (("role: audio", "role: sound"), r"files\[0\]\.role: 'sound' is not one of"),
    (("modalities: [audio]", "modalities: [smell]"), r"card\.modalities"),
    (("kind: filename", "kind: spreadsheet"), r"reader\.kind: unknown reader 'spreadsheet'"),
    (("title: Toy", "title: Toy\nobtain: {archives: [{name: a.zip, colour: red}]}"),
     r"card\.obtain\.archives\[0\]: unknown field\(s\) \['colour'\]; allowed: \['approx_size', 'extract', 'name'"),
    (("title: Toy", "title: Toy\nobtain: {archives: [{name: a.zip, sha256: abc}]}"),
     r"card\.obtain\.archives\[0\]\.sha256: expected 64 lower-case hex digits, got 'abc'"),
    (("values: {ang: angry, neu: neutral}", "values: {ang: angry}, match: {a: angry}"),
     r"card\.derive\.emotion_name: expected `from` and exactly one of `values` or `match`"),
    (("classes: [angry, neutral]", "classes: angry"), r"card\.classes: .*got 'angry'"),
    (("classes: [angry, neutral]", "classes: [angry, neutral]\npolarity: {happy: positive}"),
     r"card: polarity: \{'happy': 'positive'\}: keys must be classes"),
    (("protocol: {name: leave-one-speaker-out}", "protocol: {name: leave-one-speaker-out, k: 3}"),
     r"card\.protocol: unknown field\(s\) \['k'\]; allowed: \['name', 'params'\]"),
    (("title: Toy", "title: Toy\nheadline_metric: accuracyy"),
     r"card\.headline_metric: Input should be 'accuracy', 'uar', 'macro_f1' or 'weighted_f1', got 'accuracyy'"),
])
def test_bad_cards_name_the_file_and_the_field(tmp_path, change, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    path = write_card(tmp_path, text=text)
    with pytest.raises(CardError, match=message) as error:
        parse_card(path)
    assert str(path) in str(error.value)


def test_card_name_must_match_its_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(GOOD)
    with pytest.raises(CardError, match="must equal the file name"):
        parse_card(path)


TESS = """
name: tess
title: Toronto emotional speech set (TESS)
modalities: [audio]
features: {audio: egemaps}
classes: [angry, disgust, fear, happy, neutral, pleasant_surprise, sad]
protocol: {name: random-kfold, params: {k: 5}}   # two speakers only: no speaker-independent split exists
present: ["*/*.wav"]
reader:
  kind: filename
  files: [{glob: "*/*.wav", role: audio}]
  pattern: '[^/]+/(?P<speaker>OAF|YAF)_(?P<word>[a-z]+)_(?P<emotion>angry|disgust|fear|happy|neutral|ps|sad)'
derive:
  emotion_name: {from: emotion, values: {angry: angry, disgust: disgust, fear: fear, happy: happy,
                                         neutral: neutral, ps: pleasant_surprise, sad: sad}}
clip_id: "{speaker}_{word}_{emotion}"
speaker: "{speaker}"
label: "{emotion_name}"
text: "Say the word {word}."
columns: {word: "{word}"}
"""


def test_a_new_corpus_needs_only_a_card(tmp_path, monkeypatch, isolated_registry):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "tess.yaml").write_text(TESS)
    monkeypatch.setenv(CARD_DIRS_ENV, str(cards))
    assert cards in default_card_dirs()
    register_card_dir(cards)
    spec = get_dataset("tess")
    root = tmp_path / "data"
    for speaker in ("OAF", "YAF"):
        for word, emotion, folder in (("back", "angry", "angry"), ("bar", "ps", "Pleasant_surprise")):
            touch(root / f"{speaker}_{folder}" / f"{speaker}_{word}_{emotion}.wav")
    touch(root / "YAF_sad" / "YAF_bath_sadd.wav")
    manifest = spec.scan(root)
    assert sorted(manifest.ids) == ["OAF_back_angry", "OAF_bar_ps", "YAF_back_angry", "YAF_bar_ps"]
    assert manifest.table.set_index("clip_id").loc["OAF_bar_ps", ["label", "text"]].tolist() == [
        "pleasant_surprise", "Say the word bar."]
    assert manifest.problems["path"].tolist() == ["YAF_sad/YAF_bath_sadd.wav"]


@pytest.mark.parametrize("name", CARDS)
def test_absent_corpora_are_cheaply_reported_absent(tmp_path, name):
    """`harness run --all` skips a corpus when `is_present` is False: an empty or missing folder must say so."""
    spec = get_dataset(name)
    assert not spec.is_present(tmp_path / "missing")
    assert not spec.is_present(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        spec.scan(tmp_path / "missing")


def test_a_card_may_name_exactly_the_headline_metrics_the_harness_scores():
    from typing import get_args

    from harness.datasets.card_schema import HeadlineMetric
    from harness.metrics import HEADLINE_METRICS

    assert set(get_args(HeadlineMetric)) == set(HEADLINE_METRICS)
