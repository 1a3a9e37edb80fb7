"""The leaderboard as Markdown for GitHub (`reports/leaderboard.md`): the same statistics as the HTML page, compact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness import stats
from harness.metrics import HEADLINE_METRICS
from harness.report.model import METRIC_TITLES, Section
from harness.report.text import (
    bayes_cells,
    ci_text,
    claim_cell,
    claim_texts,
    contamination_mark,
    contamination_texts,
    gain_text,
    method_text,
    resolution_text,
    soft_label_table,
    soft_note,
    timestamp_line,
    verdict_cell,
)


def markdown_page(sections: list[Section], context: dict[str, Any], out_dir: Path) -> str:
    lines = ["# Leaderboard", "",
             "Test scores, mean ± standard deviation over folds, with a 95 % confidence interval in brackets; "
             "configurations were chosen on validation folds only. Only results of one evaluation setting (same "
             "corpus, protocol, features and options, trial budget, preset, speaker normalisation) share a table. "
             "WA = accuracy, UAR = unweighted average recall. Each row's verdict against its table's best: `1=` = "
             f"practically equivalent to the best (shown within ±{stats.ROPE:g}; the only tie); a plain rank = worse "
             "than the best; a rank with `?` = not separable from the best with this design (neither shown). "
             "Regenerate with `harness report`; the HTML page is `index.html`.", ""]
    for section in sections:
        lines += _section_lines(section, out_dir)
    lines += context["robustness"]["markdown"]
    lines += _ranking_lines(context["ranking"], out_dir)
    lines += ["## Reproducibility", ""]
    lines += [f"- {key}: {value}" for key, value in context["reproducibility"].items()]
    lines += ["", timestamp_line(), ""]
    return "\n".join(lines)


def _section_lines(section: Section, out_dir: Path) -> list[str]:
    metric = section.metric
    rows = section.rows
    lines = [f"## {section.title}", "",
             f"Setting: {section.label}. Protocol: `{rows['protocol'].iloc[0]}`, {rows['folds'].iloc[0]} folds; "
             f"ranked by {METRIC_TITLES[metric]}. Feature extraction failures: {rows['feature_failures'].iloc[0]}.",
             "", method_text(section), ""]
    resolution = resolution_text(section)
    if resolution:
        lines += [resolution, ""]
    gain = gain_text(section)
    if gain:
        lines += [gain, ""]
    for claim in claim_texts(section) + contamination_texts(section):
        lines += [claim, ""]
    if section.best_published:
        lines += [section.best_published, ""]
    lines += failure_lines(section.failures, int(rows["feature_failures"].iloc[0]))
    title = METRIC_TITLES[metric]
    header = " | ".join(METRIC_TITLES[m] for m in HEADLINE_METRICS)
    lines += [f"| # | method | family | modalities | {header} | {title} 95 % CI | Δ vs best | verdict (Holm p) "
              "| paper claim (gap) | confusion |", "|---" * (9 + len(HEADLINE_METRICS)) + "|"]
    for _, row in rows.iterrows():
        figure = section.figures.get(f"confusion:{row['method']}")
        link = f"[png]({figure.relative_to(out_dir).as_posix()})" if figure else ""
        cells = " | ".join(f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}" for m in HEADLINE_METRICS)
        delta = "" if pd.isna(row["difference"]) or row["verdict"] == stats.BEST else f"{row['difference']:+.3f}"
        name = f"`{row['method']}`{contamination_mark(row)}"
        lines.append(f"| {row['rank_label']} | {name} | {row['family']} | {row['modalities']} | {cells} | "
                     f"{ci_text(row)} | {delta} | {verdict_cell(row)} | {claim_cell(row, section.dataset)} | {link} |")
    lines.append("")
    soft_titles, soft_rows = soft_label_table(section)
    if soft_titles:
        lines += [soft_note(section), "", "| method | " + " | ".join(soft_titles) + " |",
                  "|---" * (1 + len(soft_titles)) + "|"]
        lines += [f"| `{method}` | " + " | ".join(cells) + " |" for method, cells in soft_rows]
        lines.append("")
    for key, caption in (("scores", "headline metric with 95 % CI"), ("per_class", "per-class F1")):
        if key in section.figures:
            lines.append(f"![{section.title}: {caption}]({section.figures[key].relative_to(out_dir).as_posix()})")
    return [*lines, ""]


def failure_lines(failures: pd.DataFrame, count: int, shown: int = 20) -> list[str]:
    if count == 0 and failures.empty:
        return []
    lines = [f"Clips whose features failed ({len(failures)}; methods handle them by their missing-modality rule):", "",
             "| modality | clip | stage | error |", "|---|---|---|---|"]
    for _, row in failures.head(shown).iterrows():
        error = str(row["error"]).replace("|", "/")[:160]
        lines.append(f"| {row['modality']} | `{row['clip_id']}` | {row['stage']} | {error} |")
    if len(failures) > shown:
        lines.append(f"| ... | {len(failures) - shown} more | | |")
    return [*lines, ""]


def _ranking_lines(ranking: stats.CrossDatasetRanking | None, out_dir: Path) -> list[str]:
    lines = ["## Across datasets", ""]
    if ranking is None:
        return [*lines, "Fewer than two datasets share at least two methods: no cross-dataset ranking.", ""]
    datasets = ", ".join(ranking.scores.index)
    lines += [f"Mean rank (1 = best) of the {len(ranking.mean_ranks)} methods run on every one of {datasets}, by each "
              "dataset's headline metric in its main setting (the one with the most methods).", "",
              ranking.reason, ""]
    if ranking.tested:
        lines += [f"Friedman chi-square = {ranking.friedman_statistic:.3f}, p = {ranking.friedman_p:.3g}; Nemenyi "
                  f"critical difference = {ranking.critical_difference:.3f} ranks.", "",
                  f"![critical-difference diagram]({(Path('figures') / 'critical_difference.png').as_posix()})", ""]
    if ranking.bayesian is None:
        lines += ["| method | mean rank |", "|---|---|"]
        lines += [f"| `{method}` | {rank:.2f} |" for method, rank in ranking.mean_ranks.items()]
        return [*lines, ""]
    reference = f"`{ranking.reference}`"
    lines += [f"| method | mean rank | P({reference} better) | P(practically equivalent) | P(method better) |",
              "|---|---|---|---|---|"]
    lines += [f"| `{method}` | {rank:.2f} | " + " | ".join(bayes_cells(ranking, method)) + " |"
              for method, rank in ranking.mean_ranks.items()]
    return [*lines, "", "Posterior probabilities of the Bayesian signed-rank test over the datasets (baycomp; "
            f"practically equivalent = within ±{stats.ROPE:g}); with so few datasets, read them as the weight of "
            "the evidence, not as a test.", ""]
