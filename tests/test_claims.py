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
    assert [(c.metric, c.value, c.flag) for c in xie] == [("accuracy", 0.65, "different-conditions")]
    assert claims_for("meld", "xmt-embracenet@paper") == xie  # a preset runs the same variant
    assert claims_for("meld@sentiment", "xmt-embracenet") == []  # another subset is another figure
    assert claims_for("ravdess", "xmt-embracenet") == []
    assert xie[0].gap(0.60) == pytest.approx(-0.05)


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


def test_the_babaali_figure_is_the_abstracts() -> None:
    (claim,) = claims_for("iemocap", "early-concat-svm")
    assert claim.value == 0.7542 and claim.metric == "accuracy" and claim.flag == "unstated-split"
    assert "2402.07327" in claim.paper
