"""The sentences and cells both pages print (Markdown with backticks around names; the HTML page strips them).

Kept apart from `markdown` and `html` so each page imports only the model and these words, never the other page.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.report.model import METRIC_TITLES, Section

TIMESTAMP_PREFIX = "Rendered "


def unit_name(section: Section) -> str:
    return "clips" if section.grouped_by == "clip_id" else "groups"


def ci_text(row: pd.Series) -> str:
    return "" if pd.isna(row["ci_low"]) else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def timestamp_line() -> str:
    return f"{TIMESTAMP_PREFIX}{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}."


def method_text(section: Section) -> str:
    """How the section's intervals and tests were obtained, with resample counts (the report must state them)."""
    unit = ("clips (these runs stored no protocol groups)" if section.grouped_by == "clip_id"
            else f"{section.n_groups} groups (the protocol's speakers or sessions/dialogues)")
    return (f"95 % CI: percentile bootstrap, {stats.BOOTSTRAP_RESAMPLES} resamples of {unit}, of the mean over "
            f"folds. Tied with best (rank 1=): not significantly worse than the best at alpha = {stats.ALPHA} by a "
            f"paired permutation test over the same {unit_name(section)} (exact when 2^groups <= "
            f"{stats.PERMUTATION_RESAMPLES}, else {stats.PERMUTATION_RESAMPLES} random swaps), Holm-corrected over "
            "the dataset's comparisons. McNemar (exact, clip level, Holm) is in the CSV and HTML.")


def gain_text(section: Section) -> str | None:
    """The fusion-gain line in words (Markdown backticks around method names)."""
    gain = section.gain
    if gain is None:
        return None
    metric = section.metric
    fused, single = gain["fused"], gain["single"]
    test = "" if np.isnan(gain["p"]) else (f" (paired permutation test over {section.n_groups} "
                                           f"{unit_name(section)}, p = {gain['p']:.3g})")
    return (f"Best fusion `{fused['method']}` {fused[f'{metric}_mean']:.3f} {ci_text(fused)} vs best single "
            f"modality `{single['method']}` ({single['modalities']}) {single[f'{metric}_mean']:.3f} "
            f"{ci_text(single)}: {gain['gain']:+.3f} {METRIC_TITLES[metric]}{test}.")


def _claims_beside(row: pd.Series, dataset: str) -> list[tuple[Any, float, str]]:
    """(claim, reproduced value, caveat) for each seed-paper figure about this row's (dataset, method) in a
    metric the row has (harness/claims.yaml); caveat is "" when the two can be compared."""
    from harness.claims import claims_for

    out = []
    for claim in claims_for(dataset, row["method"]):
        reproduced = row.get(f"{claim.metric}_mean")
        if reproduced is not None and not pd.isna(reproduced):
            out.append((claim, float(reproduced), claim.caveat(str(row.get("protocol") or ""))))
    return out


def claim_value(value: float) -> str:
    """A claimed fraction as the paper printed it: three decimals, four where the paper gave them (0.8925)."""
    return f"{value:.3f}" if round(value, 3) == value else f"{value:.4f}"


def claim_texts(section: Section) -> list[str]:
    """"paper claim vs reproduced" for every ranked method a seed paper reports a figure for on this dataset
    (harness/claims.yaml), with the gap and, when the paper's conditions differ, why the two are not comparable."""
    from harness.claims import claims_for, claims_on, missing_text

    texts, met = [], set()
    for _, row in section.rows.iterrows():
        met.update(id(c) for c in claims_for(section.dataset, row["method"]))
        for claim, reproduced, caveat in _claims_beside(row, section.dataset):
            title = METRIC_TITLES.get(claim.metric, claim.metric)
            texts.append(f"Paper claim for `{row['method']}` ({claim.id}): {claim.paper} reports {title} "
                         f"{claim_value(claim.value)} ({claim.source}); reproduced here {reproduced:.3f} "
                         f"({claim.gap(reproduced):+.3f})." + (f" {caveat}" if caveat else ""))
    # every claim about this dataset appears, also where no ranked method meets it (and why)
    texts += [missing_text(claim) for claim in claims_on(section.dataset) if id(claim) not in met]
    return texts


def claim_cell(row: pd.Series, dataset: str) -> str:
    """The leaderboard's "paper claim" column: the claimed value and metric, the gap of this row's figure to it,
    and "not comparable" where the text under the table says why; "" when no paper reports a figure for it."""
    return "; ".join(f"{claim.id} {claim_value(claim.value)} {METRIC_TITLES.get(claim.metric, claim.metric)} "
                     f"({reproduced - claim.value:+.3f}{', not comparable' if caveat else ''})"
                     for claim, reproduced, caveat in _claims_beside(row, dataset))
