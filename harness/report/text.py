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


WEAKER_VALIDATION = (" Validation drawn from the training speakers' clips (leave-one-speaker-out with val=clips, "
                     "a corpus of 2-3 speakers): each test speaker is unseen, but configurations were chosen on "
                     "speakers the models trained on, a weaker guarantee than a held-out validation speaker.")


def protocol_note(protocol: str) -> str:
    """The sentence a protocol with a weaker guarantee adds to its section ('' for every other protocol)."""
    return WEAKER_VALIDATION if "leave-one-speaker-out(" in protocol and "val=clips" in protocol else ""


def method_text(section: Section) -> str:
    """How the section's intervals and verdicts were obtained, with resample counts (the report must state them)."""
    unit = ("clips (these runs stored no protocol groups)" if section.grouped_by == "clip_id"
            else f"{section.n_groups} groups (the protocol's speakers or sessions/dialogues)")
    return (f"95 % CI: percentile bootstrap, {stats.BOOTSTRAP_RESAMPLES} resamples of {unit}, of the mean over "
            f"folds. Verdicts against the best: delete-one-{unit_name(section)[:-1]} jackknife t-test of the paired "
            f"difference (worse), two one-sided tests against ±{stats.ROPE:g} (practically equivalent, the only "
            f"tie, rank 1=), Holm over every pair of the table's methods at alpha = {stats.ALPHA}; neither: not "
            "separable (rank with ?). See docs/report.md." + protocol_note(str(section.rows["protocol"].iloc[0])))


def resolution_text(section: Section) -> str | None:
    """The table's resolution in one sentence: groups, the bar the first Holm step sets, the smallest detectable
    difference; and, when some verdicts cannot be reached, a sentence that says so (not a mark that reads as a tie)."""
    r = section.resolution
    if r is None:
        return None
    unit = unit_name(section)
    title = METRIC_TITLES.get(section.metric, section.metric)
    if r.n_comparisons == 0:
        return f"Resolution: {r.n_groups} {unit}; one method with predictions, nothing to compare."
    if not np.isfinite(r.critical_t):
        text = (f"Resolution: {r.n_groups} {unit}, too few for any test (at least {stats.MIN_GROUPS} are needed); "
                "no verdict can be reached on this table.")
    else:
        detectable = ("" if np.isnan(r.detectable) else
                      f"; the smallest difference found with 80 % power is about {r.detectable:.3f} {title}")
        comparisons = f"{r.n_comparisons} pairwise comparison{'s' if r.n_comparisons > 1 else ''}"
        text = (f"Resolution: {r.n_groups} {unit}, {comparisons}; the smallest corrected p "
                f"has no floor (t-test on {r.n_groups - 1} df), and the first Holm step needs p < "
                f"{r.first_step_p:.2g} (|t| > {r.critical_t:.1f}){detectable}; equivalence means within "
                f"±{r.rope:g} {title}.")
    unresolved = int((section.rows["verdict"] == stats.UNRESOLVED).sum())
    if unresolved:
        text += (f" {unresolved} of {len(section.rows) - 1} methods cannot be separated from the best with this "
                 f"design (rank with ?): the data show them neither worse nor within ±{r.rope:g} of it.")
    return text


def verdict_cell(row: pd.Series) -> str:
    """A row's verdict against the best, short, with the Holm-adjusted p-value that decided it."""
    name = row["verdict"]
    words = {stats.BEST: "best", stats.EQUIVALENT: "practically equivalent", stats.WORSE: "worse",
             stats.UNRESOLVED: "not separable"}[name]
    p = row["p_equivalence_holm"] if name == stats.EQUIVALENT else row["p_difference_holm"]
    return words if pd.isna(p) else f"{words} (p = {p:.3g})"


def bayes_cells(ranking: stats.CrossDatasetRanking, method: str) -> list[str]:
    """P(best-ranked method better), P(practically equivalent), P(this method better) from the Bayesian signed-rank
    test, as cells; empty where it was not run (five or more datasets: the Friedman test speaks instead)."""
    if ranking.bayesian is None:
        return []
    if method == ranking.reference:
        return ["reference", "", ""]
    row = ranking.bayesian.set_index("method").loc[method]
    return [f"{row['p_reference_better']:.2f}", f"{row['p_equivalent']:.2f}", f"{row['p_method_better']:.2f}"]


def verdict_text(name: str, test: stats.PairedDifference | None, n_groups: int, unit: str) -> str:
    """A pre-stated comparison's verdict in words (the fusion-gain line)."""
    if test is None:
        return "not tested (no stored predictions)"
    if name == stats.EQUIVALENT:
        return f"practically equivalent (within ±{test.rope:g}, TOST p = {test.p_equivalence:.3g})"
    if name in (stats.BETTER, stats.WORSE):
        return f"{name} (jackknife t over {n_groups} {unit}, p = {test.p_difference:.3g})"
    return f"not separable with {n_groups} {unit} (p = {test.p_difference:.3g})"


def gain_text(section: Section) -> str | None:
    """The fusion-gain line in words (Markdown backticks around method names): the gain and its verdict."""
    gain = section.gain
    if gain is None:
        return None
    metric = section.metric
    fused, single = gain["fused"], gain["single"]
    verdict = verdict_text(gain["verdict"], gain["test"], section.n_groups, unit_name(section))
    return (f"Best fusion `{fused['method']}` {fused[f'{metric}_mean']:.3f} {ci_text(fused)} vs best single "
            f"modality `{single['method']}` ({single['modalities']}) {single[f'{metric}_mean']:.3f} "
            f"{ci_text(single)}: fusion adds {gain['gain']:+.3f} {METRIC_TITLES[metric]}, {verdict}.")


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
            inputs = str(row.get("inputs") or "")
            texts.append(f"Paper claim for `{row['method']}` ({claim.id}): {claim.paper} reports {title} "
                         f"{claim_value(claim.value)} ({claim.source}); reproduced here {reproduced:.3f} "
                         f"({claim.gap(reproduced):+.3f})." + (f" {caveat}" if caveat else "")
                         + (f" Inputs of this result: {inputs}." if inputs else ""))
    # every claim about this dataset appears, also where no ranked method meets it (and why)
    texts += [missing_text(claim) for claim in claims_on(section.dataset) if id(claim) not in met]
    return texts


def claim_cell(row: pd.Series, dataset: str) -> str:
    """The leaderboard's "paper claim" column: the claimed value and metric, the gap of this row's figure to it,
    and "not comparable" where the text under the table says why; "" when no paper reports a figure for it."""
    cells = "; ".join(f"{claim.id} {claim_value(claim.value)} {METRIC_TITLES.get(claim.metric, claim.metric)} "
                      f"({reproduced - claim.value:+.3f}{', not comparable' if caveat else ''})"
                      for claim, reproduced, caveat in _claims_beside(row, dataset))
    return f"{cells}; {inputs_word(str(row.get('inputs') or ''))}" if cells and row.get("inputs") else cells


CONTAMINATED = " (contaminated)"


def contamination_mark(row: pd.Series) -> str:
    """Beside a method's name when an extractor it read was trained on this corpus (tag `contamination`)."""
    return CONTAMINATED if str(row.get("contamination") or "").startswith("yes") else ""


def contamination_texts(section: Section) -> list[str]:
    """One sentence per contaminated result: which extractor saw the evaluation corpus, so its figure is not a
    held-out score (the extractors declare their training corpora; `harness list extractors`)."""
    return [f"Contaminated: `{row['method']}` reads features whose weights were trained on this corpus "
            f"({str(row['contamination']).removeprefix('yes: ')}); its figure is not a held-out score."
            for _, row in section.rows.iterrows() if contamination_mark(row)]


def inputs_word(inputs: str) -> str:
    """The claim column's word for a result's inputs: the paper's, or which were substituted."""
    swapped = [part.split(":", 1)[0].strip() for part in inputs.split(";")
               if any(w in part for w in ("stand-in", "--features", "random init", "options changed"))]
    return f"inputs substituted: {', '.join(swapped)}" if swapped else "the paper's inputs"


SOFT_NOTE = ("Perceived emotion, scored against the annotators' rating distributions (docs/report.md): mean over "
             "folds [95 % CI] and rank label, each column with the headline's statistics (group bootstrap; "
             "jackknife t-test and TOST, Holm over every pair: 1= practically equivalent to the column's best, ? not "
             "separable, a plain rank worse). JSD lower is better (its best is the lowest); plurality accuracy gives "
             "1/k credit on a k-way tie. A result stored without vote counts shows its fold mean ± std only.")


def soft_note(section: Section) -> str:
    """The sentence above a soft-label table: what its cells mean and, when verdicts were reached, what they rest
    on."""
    from harness.report.soft_labels import soft_resolution

    return " ".join(part for part in (SOFT_NOTE, soft_resolution(section.soft)) if part)


def soft_label_table(section: Section) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(column titles, [(method, cells)]) of the table's soft-label scores; empty when no result has them. Cells
    come from `section.soft` (intervals and verdicts) where the result's predictions carry votes, else from the
    logged fold mean ± std."""
    from harness.report.soft_labels import soft_cell

    rows, soft = section.rows, section.soft
    keys = {c.removesuffix("_mean") for c in rows.columns if c.startswith("soft_") and c.endswith("_mean")}
    keys = sorted(keys | (set(soft["key"]) if len(soft) else set()))
    if not keys:
        return [], []
    titles = [k.removeprefix("soft_").replace("_plurality_accuracy", " plurality acc. ↑").replace("_jsd", " JSD ↓")
              for k in keys]
    tested = soft.set_index(["method", "key"]) if len(soft) else None
    body = []
    for _, row in rows.iterrows():
        method = str(row["method"])
        cells = [soft_cell(tested.loc[(method, k)] if tested is not None and (method, k) in tested.index else None,
                           row.get(f"{k}_mean"), row.get(f"{k}_std")) for k in keys]
        body.append((method, cells))
    return titles, body
