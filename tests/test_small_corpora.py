"""Small corpora: a protocol that cannot split a corpus is one line naming the card and the protocol, raised
while planning (before Ray); a 2-speaker corpus can declare leave-one-speaker-out with validation from training
clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.corpora import touch

from harness.config import Settings
from harness.corpus import ProtocolUnbuildable, check_protocol
from harness.datasets.cards import parse_card

TWO_SPEAKERS = """
name: duo
title: Two speakers
modalities: [audio]
classes: [angry, neutral]
protocol: {PROTOCOL}
present: ["wav/*.wav"]
reader:
  kind: filename
  files: [{glob: "wav/*.wav", role: audio}]
  pattern: 'wav/(?P<speaker>s\\d)_(?P<emotion>angry|neutral)_(?P<take>\\d)'
clip_id: "{speaker}_{emotion}_{take}"
speaker: "{speaker}"
label: "{emotion}"
"""


def _setup(tmp_path: Path, protocol: str):
    root = tmp_path / "data" / "duo"
    for speaker in ("s1", "s2"):
        for emotion in ("angry", "neutral"):
            for take in range(3):
                touch(root / "wav" / f"{speaker}_{emotion}_{take}.wav", b"x")
    card = tmp_path / "cards" / "duo.yaml"
    card.parent.mkdir()
    card.write_text(TWO_SPEAKERS.replace("{PROTOCOL}", protocol))
    return parse_card(card).to_spec(), Settings(workspace=tmp_path / "ws", data_root=tmp_path / "data"), card


def test_a_two_speaker_card_under_a_speaker_protocol_is_one_line_naming_card_and_protocol(tmp_path):
    spec, settings, card = _setup(tmp_path, "{name: leave-one-speaker-out}")
    with pytest.raises(ProtocolUnbuildable) as caught:
        check_protocol(settings, spec)
    message = str(caught.value)
    assert "\n" not in message and str(card) in message and "leave-one-speaker-out" in message
    assert "2 speakers" in message and "val: clips" in message
    spec, settings, card = _setup(tmp_path / "k", "{name: speaker-kfold, params: {k: 5}}")
    with pytest.raises(ProtocolUnbuildable, match=r"speaker-kfold\(k=5\).*cannot fill 5 speaker folds"):
        check_protocol(settings, spec)


def test_a_two_speaker_card_with_validation_from_training_clips_builds(tmp_path):
    spec, settings, _ = _setup(tmp_path, "{name: leave-one-speaker-out, params: {val: clips}}")
    check_protocol(settings, spec)  # builds and stores the folds
    stored = list((tmp_path / "ws").rglob("folds.json"))
    assert len(stored) == 1 and "test-s1" in stored[0].read_text()


def test_an_absent_corpus_is_left_to_the_run(tmp_path):
    spec, settings, _ = _setup(tmp_path, "{name: leave-one-speaker-out}")
    check_protocol(Settings(workspace=tmp_path / "ws", data_root=tmp_path / "nowhere"), spec)


def test_the_report_states_the_weaker_guarantee():
    from harness.protocols import ProtocolSpec
    from harness.report.text import protocol_note

    weak = ProtocolSpec("leave-one-speaker-out", {"val": "clips"}).label()
    assert "weaker guarantee" in protocol_note(weak)
    assert protocol_note(ProtocolSpec("leave-one-speaker-out").label()) == ""
    assert protocol_note(ProtocolSpec("speaker-kfold", {"k": 5}).label()) == ""


def test_harness_run_plans_the_protocol_before_ray(tmp_path, monkeypatch):
    """`harness run --dataset duo`: the unbuildable protocol is a PlanError (one usage line), Ray never starts."""
    import harness.runtime
    from harness import datasets as registry
    from harness import pipeline
    from harness.datasets.cards import register_card_dir

    registry.dataset_names()
    monkeypatch.setattr(registry._DATASETS, "items", dict(registry._DATASETS.items))
    monkeypatch.setattr(harness.runtime, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    _, settings, card = _setup(tmp_path, "{name: leave-one-speaker-out}")
    register_card_dir(card.parent)
    with pytest.raises(pipeline.PlanError, match=f"{card}: protocol leave-one-speaker-out cannot split duo"):
        pipeline.plan(settings, pipeline.RunOptions(methods=["audio-svm"], datasets=["duo"]))


def test_a_one_class_corpus_is_refused_while_planning_in_one_line(tmp_path):
    """A corpus whose clips all carry one class once ranked `test UAR 1.000`: planning refuses it, before Ray."""
    from harness.corpus import CorpusUnusable

    spec, settings, card = _setup(tmp_path, "{name: leave-one-speaker-out, params: {val: clips}}")
    for path in (tmp_path / "data" / "duo" / "wav").glob("*_neutral_*.wav"):
        speaker, _, take = path.stem.split("_")
        path.rename(path.with_name(f"{speaker}_angry_{int(take) + 3}.wav"))
    with pytest.raises(CorpusUnusable) as caught:
        check_protocol(settings, spec)
    message = str(caught.value)
    assert "\n" not in message and str(card) in message and "only 1 class present (angry)" in message


def test_data_scan_of_a_one_class_corpus_exits_1_with_the_reason(tmp_path):
    import os
    import subprocess
    import sys

    _, _, card = _setup(tmp_path, "{name: leave-one-speaker-out, params: {val: clips}}")
    for path in (tmp_path / "data" / "duo" / "wav").glob("*_neutral_*.wav"):
        path.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")} | {"HARNESS_CARDS": str(card.parent)}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "data", "scan", "duo", "--data-root",
                           str(tmp_path / "data"), "--workspace", str(tmp_path / "ws")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "only 1 class present (angry)" in done.stderr, done.stderr
