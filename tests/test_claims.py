"""The papers' published figures as validated data, looked up by dataset and method."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.claims import CLAIMS_FILE, FLAGS, METRICS, ClaimsError, claims_for, claims_frame, load_claims
from methods import method_names


def test_bundled_claims_are_valid_and_name_registered_methods_and_cards() -> None:
    from harness.datasets import dataset_names

    claims = load_claims()
    assert claims, "the bundled table holds at least one sourced figure"
    for claim in claims:
        assert claim.method.split("@")[0] in method_names()
        assert claim.dataset in dataset_names()
        assert claim.metric in METRICS and claim.flag in FLAGS and 0.0 <= claim.value <= 1.0
        assert claim.source and (claim.comparable or claim.why)


def test_claims_for_matches_dataset_subset_and_method_presets() -> None:
    xie = claims_for("meld", "xmt-embracenet")
    assert [(c.metric, c.value, c.flag) for c in xie] == [("accuracy", 0.65, "different-conditions"),
                                                            ("weighted_f1", 0.64, "different-conditions"),
                                                            ("uar", 0.422, "different-conditions")]
    assert claims_for("meld", "xmt-embracenet@paper") == xie  # a preset runs the same variant
    assert claims_for("meld@sentiment", "xmt-embracenet") == []  # another subset is another figure
    assert claims_for("ravdess", "xmt-embracenet") == []
    assert xie[0].gap(0.60) == pytest.approx(-0.05)


def test_end_to_end_results_and_equivalent_variants_meet_their_method_claims() -> None:
    """`harness e2e` names its result `<variant>-e2e-<backbone>`: it is that variant trained from pixels, so it
    meets the variant's claims (M1-M12); av-xattn-emotion runs the paper's full model (Eq. 16 alone)."""
    from harness.claims import is_end_to_end

    assert [c.id for c in claims_for("ravdess", "av-xattn-e2e-r3d_101")] == ["M1"]
    assert [c.id for c in claims_for("ravdess", "av-xattn-emotion-e2e-tiny")] == ["M1"]
    assert [c.id for c in claims_for("crema-d", "av-xattn-triplet-e2e-resnet")] == ["M4"]
    assert [c.id for c in claims_for("ravdess", "av-xattn-t1-full@paper")] == ["M3"]
    assert [c.id for c in claims_for("crema-d", "av-xattn-emotion")] == ["M2"]
    assert claims_for("ravdess", "av-xattn-ce-e2e-tiny") == []
    assert is_end_to_end("av-xattn-e2e-tiny") and not is_end_to_end("av-xattn-t1-at")


def test_the_checklist_figures_the_texts_confirm_are_all_rows() -> None:
    """Every headline and main-table figure of CLAIMS-CHECKLIST.md that the texts confirm (context rows
    without a harness method excepted), with its metric: RAVDESS averages are accuracy, CREMA-D ones UAR."""
    expected = {
        "M1": ("ravdess", "accuracy", 0.8925), "M2": ("crema-d", "uar", 0.8457),
        "M3": ("ravdess", "accuracy", 0.8785), "M4": ("crema-d", "uar", 0.8171),
        "M5": ("ravdess", "accuracy", 0.7642), "M6": ("ravdess", "accuracy", 0.7754),
        "M7": ("ravdess", "accuracy", 0.7917), "M8": ("ravdess", "accuracy", 0.8202),
        "M9": ("crema-d", "uar", 0.6277), "M10": ("crema-d", "uar", 0.7614),
        "M11": ("crema-d", "uar", 0.7712), "M12": ("crema-d", "uar", 0.7951),
        "X1": ("meld", "accuracy", 0.65), "X2": ("meld", "weighted_f1", 0.64), "X3": ("meld", "uar", 0.422),
        "B1": ("iemocap", "accuracy", 0.7542),
        "C1": ("ravdess", "accuracy", 0.864), "C2": ("ravdess", "accuracy", 0.876),
        "C3": ("ravdess", "macro_f1", 0.8168), "C4": ("ravdess", "uar", 0.7954),
    }
    got = {c.id: (c.dataset, c.metric, c.value) for c in load_claims()}
    assert got == expected
    by_id = {c.id: c for c in load_claims()}
    assert {by_id[i].protocol for i in expected if i.startswith("M")} == {"av-crossattention-10fold"}
    assert {by_id[i].protocol for i in ("C1", "C2", "C3", "C4")} == {"unstated"}
    assert by_id["C1"].flag == by_id["C2"].flag == "implausible"
    assert "80.17" in by_id["C1"].why and "79.54" in by_id["C1"].why  # the arithmetic, not just the verdict


PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"
PAPER_FILES = {"Mocanu": "mocanu2023-av-cross-attention.txt", "Xie": "xie2021-xmt-embracenet.txt",
               "Shayaninasab": "babaali-pretrained-transformers.txt", "Chaudhari": "chaudhari2023-ima-hadamard.txt"}


@pytest.mark.skipif(not PAPERS.is_dir(), reason=f"{PAPERS} (the papers' full texts) is absent")
def test_every_claimed_value_stands_in_its_papers_text() -> None:
    """The value, as the paper prints it (89.25, 65.0, 0.876 -> 87.6), occurs in the paper's text file."""
    for claim in load_claims():
        text = (PAPERS / PAPER_FILES[claim.paper.split(",")[0].split(" ")[0].rstrip(".")]).read_text()
        percent = claim.value * 100
        printed = {f"{percent:.2f}", f"{percent:.1f}"}
        assert any(p in text for p in printed), (claim.id, printed)


@pytest.mark.skipif(not PAPERS.is_dir(), reason=f"{PAPERS} (the papers' full texts) is absent")
def test_mocanu_averages_are_accuracy_on_ravdess_and_uar_on_crema_d() -> None:
    """Recomputed from the per-class rows of the paper's Tables 1 and 2: RAVDESS's "Average" is the class-size
    weighted mean (neutral has half the clips), CREMA-D's the unweighted mean."""
    import re

    text = (PAPERS / PAPER_FILES["Mocanu"]).read_text()
    one = text[text.index("Table 1. Ablation"):text.index("Table 2. Ablation")]
    two = text[text.index("Table 2. Ablation"):text.index("In addition, it can be observed")]
    rows1 = [list(map(float, re.findall(r"\d+\.\d+", line))) for line in one.splitlines()
             if re.match(r"^(AT|VS)", line)]
    rows2 = [list(map(float, re.findall(r"\d+\.\d+", line))) for line in two.splitlines()
             if re.match(r"^(AT|VS)", line)]
    assert len(rows1) == len(rows2) == 5
    weights = [2, 2, 2, 1, 2, 2, 2, 2]  # surprise angry fearful NEUTRAL calm happy sad disgust
    for *classes, average in rows1:
        weighted, plain = sum(w * c for w, c in zip(weights, classes, strict=True)) / 15, sum(classes) / 8
        assert weighted == pytest.approx(average, abs=0.011) and abs(weighted - average) < abs(plain - average)
    sizes = [1271, 1271, 1087, 1271, 1271, 1271]  # anger fear NEUTRAL happy sad disgust (CREMA-D clips)
    for *classes, average in rows2:
        weighted, plain = sum(w * c for w, c in zip(sizes, classes, strict=True)) / sum(sizes), sum(classes) / 6
        assert plain == pytest.approx(average, abs=0.015) and abs(plain - average) < abs(weighted - average)


def test_claims_frame_has_one_row_per_claim() -> None:
    frame = claims_frame()
    assert len(frame) == len(load_claims())
    assert {"paper", "method", "dataset", "subset", "protocol", "metric", "value", "source", "flag",
            "comparable"} <= set(frame.columns)
    assert not frame.loc[frame.method == "xmt-embracenet", "comparable"].iloc[0]


@pytest.mark.parametrize("row,message", [
    ("{paper: P, method: m, dataset: d, metric: accuracy, value: 65, source: T1, flag: comparable}",
     r"claims\[0\].value: 65; write a fraction"),
    ("{paper: P, method: m, dataset: d, metric: wa, value: 0.6, source: T1, flag: comparable}",
     r"claims\[0\].metric"),
    ("{paper: P, method: m, dataset: d, metric: uar, value: 0.6, source: T1, flag: implausible}",
     r"claims\[0\].why: a claim flagged"),
    ("{paper: P, method: m, dataset: d, metric: uar, value: 0.6, flag: comparable}", r"missing \['source'\]"),
    ("{paper: P, method: m, dataset: d, metric: uar, value: 0.6, source: T, flag: comparable, year: 2021}",
     r"unknown fields \['year'\]"),
])
def test_bad_rows_name_the_file_the_row_and_the_field(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(f"version: 1\nclaims:\n  - {row}\n")
    with pytest.raises(ClaimsError, match=message) as error:
        load_claims(path)
    assert str(path) in str(error.value)


def test_the_bundled_file_sits_in_the_package() -> None:
    assert CLAIMS_FILE.exists() and CLAIMS_FILE.parent.name == "harness"


def test_a_claim_is_compared_only_under_its_own_protocol() -> None:
    """The result's protocol label names the card alternative it ran under; a claim made under another
    protocol is flagged "different-protocol" instead of being set against it as if comparable."""
    from harness.claims import Claim
    from harness.datasets import get_dataset

    ravdess = get_dataset("ravdess")
    alternative = next(iter(ravdess.protocols))
    label = ravdess.with_protocol(alternative).protocol.label()
    assert label.startswith(f"{alternative}: ") and not ravdess.protocol.label().startswith(alternative)
    claim = Claim(paper="p", method="av-xattn", dataset="ravdess", metric="accuracy", value=0.8, source="Table 2",
                  flag="comparable", protocol=alternative)
    assert claim.caveat(label) == ""
    assert "different-protocol" in claim.caveat(ravdess.protocol.label())
    default_claim = Claim(paper="p", method="av-xattn", dataset="ravdess", metric="accuracy", value=0.8,
                          source="Table 2", flag="unstated-split", why="no split given")
    words = default_claim.caveat(ravdess.protocol.label())
    assert "unstated-split" in words and "different-protocol" not in words
    assert "different-protocol" in default_claim.caveat(label)


def test_the_babaali_figure_is_the_abstracts_with_the_bodys_protocol() -> None:
    """§3.1 and §3.3 state four classes (exc->hap) and 5-fold leave-one-session-out: not an unstated split."""
    (claim,) = claims_for("iemocap", "early-concat-svm")
    assert claim.value == 0.7542 and claim.metric == "accuracy" and claim.flag == "different-conditions"
    assert "2402.07327" in claim.paper and "§3.3" in claim.conditions


def test_the_report_lists_every_claim_on_the_dataset_met_or_not_and_why() -> None:
    """Each claim about a dataset appears under its table: beside the method's row when one is ranked, else
    with what would meet it (the protocol to run) or why nothing can (the paper states no split)."""
    from types import SimpleNamespace

    import pandas as pd

    from harness.report.text import claim_cell, claim_texts

    rows = pd.DataFrame([{"method": "av-xattn-e2e-tiny", "accuracy_mean": 0.5, "uar_mean": 0.5,
                          "protocol": "av-crossattention-10fold: speaker-kfold(k=10)"}])
    texts = claim_texts(SimpleNamespace(rows=rows, dataset="ravdess"))
    met = [t for t in texts if t.startswith("Paper claim for `av-xattn-e2e-tiny` (M1)")]
    assert len(met) == 1 and "reports WA 0.8925" in met[0] and "reproduced here 0.500 (-0.392)" in met[0]
    missing = {t.split("(")[1].split(")")[0]: t for t in texts if "no result of this method" in t}
    assert set(missing) == {"M3", "M5", "M6", "M7", "M8", "C1", "C2", "C3", "C4"}
    assert "--protocol ravdess=av-crossattention-10fold" in missing["M5"]
    assert "the paper states no split" in missing["C1"] and "80.17" in missing["C1"]  # the arithmetic shows
    assert claim_cell(rows.iloc[0], "ravdess").startswith("M1 0.8925 WA (-0.392, not comparable)")


def test_the_claim_line_and_cell_say_which_inputs_were_the_papers() -> None:
    from types import SimpleNamespace

    import pandas as pd

    from harness.report.text import claim_cell, claim_texts

    inputs = ("audio: wav2vec1 (the paper's); text: roberta (the paper's); video: face-expression (stand-in for "
              "Fab-Net)")
    rows = pd.DataFrame([{"method": "ima-hadamard@paper", "accuracy_mean": 0.5, "uar_mean": 0.5,
                          "macro_f1_mean": 0.5, "protocol": "speaker-kfold(k=6)", "inputs": inputs}])
    (c1, *_) = claim_texts(SimpleNamespace(rows=rows, dataset="ravdess"))
    assert c1.startswith("Paper claim for `ima-hadamard@paper` (C1)") and f"Inputs of this result: {inputs}." in c1
    assert claim_cell(rows.iloc[0], "ravdess").endswith("; inputs substituted: video")
    rows.loc[0, "inputs"] = "audio: wav2vec1 (the paper's); text: roberta (the paper's)"
    assert claim_cell(rows.iloc[0], "ravdess").endswith("; the paper's inputs")
