"""Bad input a new user types on day one: each is one line naming the option or file and the fix, exit status 2,
before Ray starts (issue 12). Broken dataset cards run in a fresh interpreter, because cards load at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.corpora import ravdess_tree

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("HARNESS_") or key == "RAY_ADDRESS":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"harness {command}: error: "), err
    return err


@pytest.mark.parametrize(("option", "fragment"), [
    ("egemaps.feature_set=NOPE", "option feature_set must be one of 'ComParE_2016', 'GeMAPS', "),
    ("egemaps.sample_rate=\"fast\"", "option sample_rate must be an integer >= 1, got 'fast'"),
    ("logmel.hop_ms=true", "option hop_ms must be a number > 0, got True"),
])
def test_bad_extractor_option_values_fail_before_ray(tmp_path, capsys, option, fragment):
    import ray

    code = main(["run", "--method", "audio-svm", "--dataset", "synthetic", "--extractor-config", option,
                 "--workspace", str(tmp_path / "ws"), "--no-report"])
    assert code == 2
    assert fragment in one_line_error(capsys, "run")
    assert not ray.is_initialized()
    assert main(["extract", "--dataset", "synthetic", "--extractor", option.split(".")[0],
                 "--extractor-config", option, "--workspace", str(tmp_path / "ws")]) == 2
    assert fragment in one_line_error(capsys, "extract")


def test_features_naming_neither_an_extractor_nor_an_import_fail_before_ray(tmp_path, capsys):
    import ray

    code = main(["run", "--method", "audio-svm", "--dataset", "synthetic", "--features", "audio=nosuchext",
                 "--workspace", str(tmp_path / "ws"), "--no-report"])
    assert code == 2
    err = one_line_error(capsys, "run")
    assert "--features audio=nosuchext: 'nosuchext' is neither an extractor nor features imported for synthetic" in err
    assert "egemaps" in err and "harness features import --dataset synthetic --name nosuchext --modality audio" in err
    assert not ray.is_initialized()


def test_an_imported_name_passes_the_check(tmp_path):
    from harness.features.imports import unknown_feature_names
    from harness.features.store import FeatureStore

    store = FeatureStore(str(tmp_path / "features"))
    store.write_spec(store.entry("ravdess", "openface-aus", "k1"),
                     {"dataset": "ravdess", "extractor": "openface-aus", "imported": True, "modality": "video"})
    assert unknown_feature_names({"video": "openface-aus", "audio": "egemaps"}, store, ["ravdess"]) is None
    assert unknown_feature_names({"video": "openface-aus"}, store, None) is None
    assert unknown_feature_names({"audio": "egemaps"}, store, ["emodb"]) is None
    assert "'openface-aus' is neither" in unknown_feature_names({"video": "openface-aus"}, store, ["emodb"])


@pytest.mark.parametrize("command", ["scan", "verify", "fetch"])
def test_data_commands_on_an_unknown_dataset(capsys, command):
    assert main(["data", command, "nosuchds"]) == 2
    assert "unknown dataset 'nosuchds'; choose from: crema-d" in one_line_error(capsys, f"data {command}")


BROKEN = """name: toy
title: Toy
classes: [angry, neutral]
modalities: [audio]
headline_metric: accuracyy
protocol: {name: leave-one-speaker-out}
reader:
  kind: filename
  files: [{glob: "wav/*.wav", role: audio}]
  pattern: 'wav/(?P<speaker>[a-z]+)_(?P<e>[a-z]+)'
clip_id: "{speaker}_{e}"
speaker: "{speaker}"
label: "{e}"
"""


def harness(*argv: str, cards: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")} | {"HARNESS_CARDS": str(cards)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_a_broken_card_blocks_only_its_own_dataset(tmp_path):
    """A broken card in HARNESS_CARDS (a new corpus, and a user's override of a shipped one) is no traceback at
    import: other datasets work, `data list` marks it broken, and using it names the file and the field."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(BROKEN)
    (cards / "emodb.yaml").write_text(BROKEN.replace("name: toy", "name: emodb").replace("accuracyy", "uar")
                                      .replace("leave-one-speaker-out", "leave-one-out"))
    ravdess_tree(tmp_path / "rav", actors=range(1, 3), av=False)

    other = harness("data", "scan", "ravdess", "--data-dir", f"ravdess={tmp_path / 'rav'}",
                    "--workspace", str(tmp_path / "ws"), cards=cards)
    assert other.returncode == 0 and "ravdess: 16 clips" in other.stdout, other.stderr
    assert "Traceback" not in other.stderr

    listing = harness("data", "list", cards=cards)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "BROKEN CARD" in rows["toy"] and "BROKEN CARD" in rows["emodb"] and " found" not in rows["toy"]
    assert "ravdess" in rows and "BROKEN" not in rows["ravdess"]
    assert f"broken card toy: {cards / 'toy.yaml'}: card.headline_metric: Input should be" in listing.stderr

    for argv in (["data", "scan", "toy"], ["run", "--method", "audio-svm", "--dataset", "emodb", "--no-report"]):
        used = harness(*argv, cards=cards)
        err = used.stderr.strip()
        assert used.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        name = argv[argv.index("--dataset") + 1] if "--dataset" in argv else argv[-1]
        assert f"dataset {name!r} cannot be used: {cards / (name + '.yaml')}: card" in err
    assert "card.protocol.name: unknown protocol 'leave-one-out'" in used.stderr
