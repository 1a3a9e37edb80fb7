"""The leaderboard's figures (matplotlib, headless): score bars, per-class F1, fusion gain, critical difference.

Built on `harness.plots` (the headless set-up, the deterministic save and the confusion matrix, which the tracking
layer also draws), so rendering the same MLflow store twice gives the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import stats
from harness.plots import confusion_figure, pyplot, save
from harness.report.model import METRIC_TITLES

if TYPE_CHECKING:
    import pandas as pd

    from harness.report.model import RunData, Section

FAMILY_COLOURS = {"classical": "#4c72b0", "neural": "#dd8452", "unimodal": "#55a868"}


def score_bars(rows: pd.DataFrame, metric: str, metric_title: str, title: str, path: Path) -> Path:
    """Headline metric per method with its bootstrap 95 % interval, grouped by family, drawn by its verdict against
    the best so the figure says what the table says: solid = the best or practically equivalent to it, pale = worse,
    hatched = not separable from the best with this design."""
    plt = pyplot()
    ordered = rows.assign(_family=rows["family"].astype(str)).sort_values(
        ["_family", f"{metric}_mean"], ascending=[True, False], kind="stable")
    means = ordered[f"{metric}_mean"].to_numpy(dtype=float)
    low = np.where(ordered["ci_low"].isna(), means, ordered["ci_low"].to_numpy(dtype=float))
    high = np.where(ordered["ci_high"].isna(), means, ordered["ci_high"].to_numpy(dtype=float))
    colours = [FAMILY_COLOURS.get(f, "#8172b3") for f in ordered["_family"]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(ordered) + 2) + 2.0, 4.2))
    positions = np.arange(len(ordered))
    for x, mean, colour, verdict in zip(positions, means, colours, ordered["verdict"], strict=True):
        ax.bar(x, mean, **_verdict_style(verdict, colour))
    ax.errorbar(positions, means, yerr=[means - low, high - means], fmt="none", ecolor="black", capsize=2, lw=0.8)
    ax.set_xticks(positions, ordered["method"], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric_title} (mean over folds, 95 % CI)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    for family, colour in FAMILY_COLOURS.items():
        if family in set(ordered["_family"]):
            ax.bar(0, 0, color=colour, label=family)
    for verdict, words in ((stats.EQUIVALENT, "best / practically equivalent"), (stats.WORSE, "worse than best"),
                           (stats.UNRESOLVED, "not separable from best")):
        ax.bar(0, 0, label=words, **_verdict_style(verdict, "#777777"))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def _verdict_style(verdict: str, colour: str) -> dict[str, Any]:
    """Bar style of a verdict: solid (best, equivalent), pale (worse), hatched outline (not separable)."""
    if verdict in (stats.BEST, stats.EQUIVALENT):
        return {"color": colour}
    if verdict == stats.WORSE:
        return {"color": colour, "alpha": 0.4}
    return {"facecolor": "white", "edgecolor": colour, "hatch": "////", "linewidth": 0.8}


def per_class_heatmap(f1: pd.DataFrame, title: str, path: Path) -> Path:
    """Per-class F1 (rows = methods in leaderboard order, columns = classes), value printed in each cell."""
    plt = pyplot()
    values = f1.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 0.7 * f1.shape[1], 1.2 + 0.26 * f1.shape[0]))
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(f1.shape[1]), [str(c) for c in f1.columns], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(f1.shape[0]), [str(m) for m in f1.index], fontsize=7)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if values[i, j] > 0.6 else "white")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="F1")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def fusion_gain_figure(sections: list[Section], path: Path) -> Path:
    """Per (dataset, setting): best fusion vs best single modality, with their 95 % intervals; the fusion bar is
    hatched where the gain is not separable with the setting's groups."""
    plt = pyplot()
    with_gain = [s for s in sections if s.gain]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(with_gain) + 1.5), 3.8))
    for i, section in enumerate(with_gain):
        for offset, key, colour in ((-0.18, "single", "#55a868"), (0.18, "fused", "#4c72b0")):
            row = section.gain[key]
            mean = float(row[f"{section.metric}_mean"])
            low = mean if np.isnan(row["ci_low"]) else float(row["ci_low"])
            high = mean if np.isnan(row["ci_high"]) else float(row["ci_high"])
            style = ({"facecolor": "white", "edgecolor": colour, "hatch": "////"}
                     if key == "fused" and section.gain["verdict"] == stats.UNRESOLVED else {"color": colour})
            ax.bar(i + offset, mean, width=0.34, label=None if i else f"best {key}", **style)
            ax.errorbar(i + offset, mean, yerr=[[mean - low], [high - mean]], fmt="none", ecolor="black", capsize=3)
            ax.text(i + offset, 0.02, row["method"], rotation=90, fontsize=6, ha="center", va="bottom",
                    color="black" if "hatch" in style else "white")
    ax.set_xticks(range(len(with_gain)), [s.title for s in with_gain], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("headline metric (95 % CI)")
    ax.set_title("What the best fusion adds over the best single modality", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def critical_difference_figure(result: Any, stem: Path) -> list[Path]:
    """autorank's critical-difference diagram (Friedman + Nemenyi) as PNG and SVG next to `stem`."""
    plt = pyplot()
    from autorank import plot_stats

    ax = plot_stats(result, allow_insignificant=True)
    fig = ax.get_figure()
    paths = [save(fig, stem.with_suffix(".png"), dpi=130), save(fig, stem.with_suffix(".svg"))]
    plt.close(fig)
    return paths


def section_figures(sections: list[Section], figures: Path, runs: dict[str, RunData]) -> None:
    """Every figure of every leaderboard section, recorded in `section.figures` (paths under `figures`)."""
    for section in sections:
        folder = figures / section.dataset if section.slug == section.dataset else figures / section.slug
        metric_title = METRIC_TITLES.get(section.metric, section.metric)
        if section.rows[f"{section.metric}_mean"].notna().any():
            section.figures["scores"] = score_bars(section.rows, section.metric, metric_title,
                                                   f"{section.title}: {metric_title}", folder / "scores.png")
        if len(section.per_class_f1):
            section.figures["per_class"] = per_class_heatmap(section.per_class_f1, f"{section.dataset}: per-class F1",
                                                             folder / "per_class_f1.png")
        for _, row in section.rows.iterrows():
            run = runs[row["run_id"]]
            if run.predictions is None:
                continue
            index = {c: i for i, c in enumerate(run.classes)}
            from harness.metrics import confusion_matrix

            matrix = confusion_matrix(run.predictions["y_true"].map(index).to_numpy(),
                                      run.predictions["y_pred"].map(index).to_numpy(), len(run.classes))
            section.figures[f"confusion:{row['method']}"] = confusion_figure(
                matrix, run.classes, f"{row['method']} on {section.dataset}", folder / f"{row['method']}.png")
