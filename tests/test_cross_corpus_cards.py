"""Cards join the cross-corpus axis: a card declares its map (or needs none when its classes carry the shared
names), a user's `--label-map FILE` wins, and every check happens while planning, before Ray or extraction.
A two-speaker corpus whose own protocol cannot be built still serves as a test target."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.corpora import touch

from harness import datasets as registry
from harness.config import Settings
from harness.corpus import ProtocolUnbuildable
from harness.datasets import get_dataset
from harness.datasets.cards import parse_card, register_card_dir
from harness.datasets.readers import CardError
from harness.robustness.cross_corpus import LabelMapError, load_label_map, resolve_pair

CARD = """
name: NAME
title: A new two-speaker corpus
modalities: [audio]
classes: CLASSES
protocol: {name: leave-one-speaker-out}
present: ["wav/*.wav"]
reader:
  kind: filename
  files: [{glob: "wav/*.wav", role: audio}]
  pattern: 'wav/(?P<speaker>s\\d)_(?P<emotion>[a-z]+)_(?P<take>\\d)'
clip_id: "{speaker}_{emotion}_{take}"
speaker: "{speaker}"
label: "{emotion}"
"""


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Cards registered here vanish after each test (other tests list every registered corpus)."""
    registry.dataset_names()  # load every card before taking a copy
    monkeypatch.setattr(registry._DATASETS, "items", dict(registry._DATASETS.items))


def new_card(folder: Path, name: str, classes: list[str], extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(CARD.replace("NAME", name).replace("CLASSES", str(classes).replace("'", "")) + extra)
    return path


def new_corpus(root: Path, classes: list[str]) -> None:
    for speaker in ("s1", "s2"):
        for emotion in classes:
            for take in range(2):
                touch(root / "wav" / f"{speaker}_{emotion}_{take}.wav", b"x")


def sides(*names: str) -> dict:
    specs = [get_dataset(n) for n in names]
    return {s.name: (list(s.classes), s.cross_corpus, str(s.card or "")) for s in specs}


def test_shared_class_names_need_no_declaration(tmp_path):
    new_card(tmp_path, "plainnames", ["angry", "happy", "sad"])
    register_card_dir(tmp_path)
    resolved, pair = resolve_pair(load_label_map(), sides("synthetic", "plainnames"))
    assert resolved.corpora["plainnames"] == {"angry": "angry", "happy": "happy", "sad": "sad"}
    assert pair.shared == ["happy", "sad", "angry"]


def test_a_card_declares_its_map_and_errors_name_the_card(tmp_path):
    new_card(tmp_path, "ownnames", ["wut", "freude", "ruhe", "langeweile"],
                    "cross_corpus: {wut: angry, freude: happy, ruhe: neutral, langeweile: null}\n")
    register_card_dir(tmp_path)
    resolved, pair = resolve_pair(load_label_map(), sides("synthetic", "ownnames"))
    assert resolved.corpora["ownnames"]["langeweile"] is None and pair.dropped["ownnames"] == ["langeweile"]
    undeclared = new_card(tmp_path / "b", "undeclared", ["wut", "angry"])
    register_card_dir(tmp_path / "b")
    with pytest.raises(LabelMapError, match=r"classes \['wut'\] are not in the shared.*declare `cross_corpus") as e:
        resolve_pair(load_label_map(), sides("synthetic", "undeclared"))
    assert str(undeclared) in str(e.value)
    new_card(tmp_path / "c", "badtarget", ["wut", "angry"], "cross_corpus: {wut: rage}\n")
    register_card_dir(tmp_path / "c")
    with pytest.raises(LabelMapError, match="outside the shared set"):
        resolve_pair(load_label_map(), sides("synthetic", "badtarget"))
    with pytest.raises(CardError, match=r"cross_corpus: \['zorn'\] are not classes"):
        parse_card(new_card(tmp_path / "d", "typo", ["wut"], "cross_corpus: {zorn: angry}\n"))
    assert "ownnames" not in load_label_map().corpora  # nothing was written into package data


def test_a_users_label_map_wins(tmp_path):
    new_card(tmp_path, "usermapped", ["wut", "angry"], "cross_corpus: {wut: angry}\n")
    register_card_dir(tmp_path)
    mine = tmp_path / "mine.yaml"
    mine.write_text("shared: [angry, calm]\ncorpora:\n  usermapped: {wut: calm, angry: angry}\n"
                    "  synthetic: {neutral: calm, happy: null, angry: angry, sad: null}\n")
    resolved, pair = resolve_pair(load_label_map(mine), sides("synthetic", "usermapped"))
    assert resolved.corpora["usermapped"] == {"wut": "calm", "angry": "angry"} and pair.shared == ["angry", "calm"]


def test_planning_checks_maps_and_protocols_before_ray(tmp_path, monkeypatch):
    """plan_cross_corpus needs no Ray: a two-speaker test target is fine; as a training corpus its protocol is a
    one-line error naming the card."""
    import harness.runtime
    from harness.robustness.run import plan_cross_corpus

    monkeypatch.setattr(harness.runtime, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    card = new_card(tmp_path / "cards", "duo", ["angry", "happy", "sad", "neutral"])
    register_card_dir(tmp_path / "cards")
    new_corpus(tmp_path / "data" / "duo", ["angry", "happy", "sad", "neutral"])
    settings = Settings(workspace=tmp_path / "ws", data_root=tmp_path / "data")
    resolved = plan_cross_corpus(settings, "synthetic", "duo", None)
    assert resolved.corpora["duo"] == {c: c for c in ["angry", "happy", "sad", "neutral"]}
    with pytest.raises(ProtocolUnbuildable, match=f"{card}: protocol leave-one-speaker-out"):
        plan_cross_corpus(settings, "duo", "synthetic", None)


@pytest.mark.slow
def test_a_new_two_speaker_card_runs_cross_corpus_against_a_built_in_corpus(small_synthetic, tmp_path,
                                                                            ray_session):
    """The issue's acceptance, with the built-in synthetic corpus in RAVDESS's place: a generated card whose
    classes carry the shared names, two speakers (its own protocol cannot be built), no package data edited."""
    import shutil

    from harness.robustness.run import RobustnessOptions, run

    root = tmp_path / "data" / "duo"
    for speaker in ("spk00", "spk01"):
        shutil.copytree(small_synthetic / speaker, root / speaker, ignore=shutil.ignore_patterns("*.mp4"))
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "duo.yaml").write_text("""
name: duo
title: Two speakers of the synthetic corpus, as a new card
modalities: [audio]
features: {audio: egemaps}
classes: [neutral, happy, angry, sad]
protocol: {name: leave-one-speaker-out}
present: ["spk*/*.wav"]
reader:
  kind: filename
  files: [{glob: "spk*/*.wav", role: audio}]
  pattern: 'spk(?P<speaker>\\d\\d)/spk\\d\\d_(?P<emotion>[a-z]+)_(?P<take>\\d\\d)'
clip_id: "duo_{speaker}_{emotion}_{take}"
speaker: "{speaker}"
label: "{emotion}"
""")
    register_card_dir(cards)
    settings = Settings(workspace=tmp_path / "ws", data_root=tmp_path / "data",
                        data_dirs={"synthetic": small_synthetic},
                        tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}", num_cpus=2)
    report = run(settings, RobustnessOptions(cross_corpus=(("synthetic", "duo"),), methods=("audio-svm",)))
    assert not report.failed and report.ran == ["cross:audio-svm@synthetic->duo"], report
    table = report.frame("cross")
    assert set(table["test_on"]) == {"duo", "synthetic"} and table["value"].between(0, 1).all()


def test_a_users_label_map_is_read_like_settings_and_cards(tmp_path):
    """No YAML aliases (a few hundred bytes once expanded to 10^9 elements in a settings file), one line."""
    bomb = tmp_path / "map.yaml"
    bomb.write_text('a: &a ["x", "x"]\nb: &b [*a, *a]\nshared: [*b, *b]\ncorpora: {}\n')
    with pytest.raises(LabelMapError, match=r"label map .*map\.yaml, line \d+: YAML aliases") as caught:
        load_label_map(bomb)
    assert "\n" not in str(caught.value)
