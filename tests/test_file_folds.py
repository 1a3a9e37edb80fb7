"""Published fold files as protocols (`file-folds`): HiCMAE's and EmoBox's committed splits.

The expected actor lists below were read from the source repositories (sunlicai/HiCMAE at cdd28d481d7a,
saved/data/<corpus>/audio_visual/splitNN/test.csv; emo-box/EmoBox at 08280f279d47, data/<corpus>/fold_N/*.jsonl),
independently of the files in datasets/folds/ that tools/import_fold_files.py wrote from them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from fixtures.corpora import REAL_DATA, ravdess_tree, touch

from harness.config import Settings
from harness.datasets import get_dataset
from harness.datasets.cards import parse_card
from harness.protocols import FoldFileError, LeakageError, get_protocol, make_folds, read_fold_file

FOLDS = Path(__file__).resolve().parents[1] / "datasets" / "folds"
HICMAE_RAVDESS_TEST = [[f"{a:02d}" for a in range(s, s + 4)] for s in range(1, 25, 4)]
HICMAE_CREMA_TEST = [[str(a) for a in range(lo, hi + 1)]
                     for lo, hi in ((1001, 1018), (1019, 1036), (1037, 1054), (1055, 1072), (1073, 1091))]
EMOBOX_RAVDESS_TEST = [["01", "11", "20", "21"], ["04", "10", "12", "14"], ["08", "09", "19", "23"],
                       ["03", "05", "07", "24"], ["02", "15", "16", "18"], ["06", "13", "17", "22"]]
CREMA_INVENTORY = REAL_DATA / "crema-d" / "AudioWAV.sizes.tsv"


@pytest.mark.parametrize("path", sorted(FOLDS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_fold_file_names_its_source_commit_and_licence(path):
    data = yaml.safe_load(path.read_text())
    source = data["source"]
    assert source["repository"].startswith("https://github.com/")
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]) and source["licence"] and source["paths"]
    for fold in data["folds"]:
        assert all(re.fullmatch(r"[0-9a-f]{40}", b) for b in fold["source_blobs"].values())
    assert data["speaker_independent"] == (data["unit"] == "speaker")


@pytest.mark.parametrize("file, expected", [
    ("folds/hicmae-ravdess-6fold.yaml", HICMAE_RAVDESS_TEST),
    ("folds/hicmae-crema-d-5fold.yaml", HICMAE_CREMA_TEST),
    ("folds/emobox-ravdess-6fold.yaml", EMOBOX_RAVDESS_TEST),
    ("folds/emobox-iemocap-5fold.yaml", [[f"Ses0{s}F", f"Ses0{s}M"] for s in range(1, 6)]),
])
def test_fold_files_hold_the_source_test_actors(file, expected):
    data = read_fold_file(file)
    assert [sorted(f["test"]) for f in data["folds"]] == expected
    everyone = {s for group in expected for s in group}
    for fold in data["folds"]:  # train is every other actor, as in the source files
        assert set(fold["train"]) == everyone - set(fold["test"])


@pytest.fixture(scope="module")
def ravdess_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ravdess")
    ravdess_tree(root, wav=True, av=False)
    return root


@pytest.mark.parametrize("alternative, expected", [("hicmae-6fold", HICMAE_RAVDESS_TEST),
                                                    ("emobox-6fold", EMOBOX_RAVDESS_TEST)])
def test_ravdess_published_folds_plan_with_asserted_folds(ravdess_root, tmp_path, alternative, expected):
    """`harness run --protocol ravdess=hicmae-6fold`: the plan resolves the card alternative, and the corpus is
    opened with folds whose test actors are the source's, validated on 2 training actors, asserted disjoint."""
    from harness.corpus import open_corpus
    from harness.pipeline import RunOptions, plan

    settings = Settings(protocols={"ravdess": alternative}, data_dirs={"ravdess": ravdess_root},
                        workspace=tmp_path / "ws")
    spec = plan(settings, RunOptions(methods=["audio-svm"], datasets=["ravdess"])).datasets[0].spec
    assert spec.protocol.name == "file-folds" and spec.protocol.label().startswith(f"{alternative}: file-folds(")
    corpus = open_corpus(settings, spec, say=lambda _: None)
    manifest, folds = corpus.manifest, corpus.folds
    assert [sorted(manifest.speakers_of(f.test)) for f in folds] == expected
    for fold, test_actors in zip(folds, expected, strict=True):
        val = manifest.speakers_of(fold.val)
        assert len(val) == 2 and not val & set(test_actors)
        assert manifest.speakers_of(fold.train) | val == {f"{a:02d}" for a in range(1, 25)} - set(test_actors)
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(manifest)  # every clip, once
    again = make_folds(manifest, spec.protocol)
    assert again == folds  # seeded: the same validation actors every time
    other_seed = make_folds(manifest, type(spec.protocol)("file-folds", {**spec.protocol.params, "seed": 1}))
    assert [f.test for f in other_seed] == [f.test for f in folds]


@pytest.mark.skipif(not CREMA_INVENTORY.exists(), reason=f"real CREMA-D inventory not at {CREMA_INVENTORY}")
def test_crema_d_hicmae_folds_on_the_real_inventory(tmp_path):
    """`--protocol crema-d=hicmae-5fold` over every real CREMA-D file name: HiCMAE's actor ranges, its five
    omitted clips left out, 7 validation actors carved from each training part."""
    from harness.corpus import open_corpus
    from harness.pipeline import RunOptions, plan

    root = tmp_path / "crema-d"
    for line in CREMA_INVENTORY.read_text().splitlines():
        touch(root / "AudioWAV" / line.split("\t")[0])
    settings = Settings(protocols={"crema-d": "hicmae-5fold"}, data_dirs={"crema-d": root},
                        workspace=tmp_path / "ws")
    spec = plan(settings, RunOptions(methods=["audio-svm"], datasets=["crema-d"])).datasets[0].spec
    corpus = open_corpus(settings, spec, say=lambda _: None)
    manifest, folds = corpus.manifest, corpus.folds
    assert len(manifest) == 7442
    assert [sorted(manifest.speakers_of(f.test)) for f in folds] == HICMAE_CREMA_TEST
    # the source's clip counts per fold (train + test lines of each split's csv files)
    source = read_fold_file("folds/hicmae-crema-d-5fold.yaml")
    for fold, recorded in zip(folds, source["folds"], strict=True):
        assert len(fold.test) == recorded["source_clips"]["test"]
        assert len(fold.train) + len(fold.val) == recorded["source_clips"]["train"]
        assert len(manifest.speakers_of(fold.val)) == 7
    assert "1076_MTI_SAD_XX" not in {c for f in folds for c in f.train + f.val + f.test}


def _emodb_names() -> list[str]:
    data = read_fold_file("folds/emobox-emodb-5fold.yaml")
    return sorted({c for f in data["folds"] for c in f["test"]})


def test_emobox_emodb_folds_are_refused_as_speaker_independent(tmp_path):
    """EmoBox's EmoDB folds put every speaker in train and test: refused under `file-folds` both when a card is
    read (the file's record) and when folds are made (the manifest's speakers), usable only as overlapping."""
    spec = get_dataset("emodb")
    root = tmp_path / "emodb"
    for name in _emodb_names():
        touch(root / "wav" / f"{name}.wav")
    manifest = spec.scan(root)
    assert len(manifest) == 535
    with pytest.raises(LeakageError, match="not speaker-independent.*file-folds-speaker-overlapping"):
        make_folds(manifest, type(spec.protocol)("file-folds", {"file": "folds/emobox-emodb-5fold.yaml"}))

    card = yaml.safe_load(Path(spec.source).read_text())
    card["protocols"]["emobox-5fold"] = {"name": "file-folds", "params": {"file": "folds/emobox-emodb-5fold.yaml"}}
    (tmp_path / "emodb.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ValueError, match="emobox-emodb-5fold.yaml is not speaker-independent"):
        parse_card(tmp_path / "emodb.yaml")

    overlapping = spec.with_protocol("emobox-5fold-speaker-overlapping")
    assert not get_protocol(overlapping.protocol.name).speaker_independent
    folds = make_folds(manifest, overlapping.protocol)  # clip-disjoint, asserted
    assert len(folds) == 5 and all(manifest.speakers_of(f.test) == manifest.speakers_of(f.train) for f in folds)
    assert sum(len(f.test) for f in folds) == 535


def test_a_fold_file_that_does_not_describe_the_corpus_is_one_clear_error(ravdess_root):
    manifest = get_dataset("ravdess").scan(ravdess_root)
    spec = get_dataset("ravdess").protocol
    with pytest.raises(FoldFileError, match=r"speakers \['01', '02'.*in no fold of .*hicmae-crema-d-5fold"):
        make_folds(manifest, type(spec)("file-folds", {"file": "folds/hicmae-crema-d-5fold.yaml"}))
    with pytest.raises(FoldFileError, match="fold file 'folds/nope.yaml' not found"):
        make_folds(manifest, type(spec)("file-folds", {"file": "folds/nope.yaml"}))
