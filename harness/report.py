"""The leaderboard: read the finished parent runs from MLflow and render Markdown, HTML, CSV and figures.

For every (dataset, method) the newest finished run counts. Rows are ranked within each dataset by the dataset's
headline metric (UAR by default; weighted-F1 for MELD), and each dataset section says how much the best fusion
method adds over the best single modality.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import atomic
from harness.metrics import HEADLINE_METRICS
from harness.plots import confusion_figure
from harness.track import FAILURES_ARTIFACT, ROLE_TAG

METRIC_TITLES = {"accuracy": "WA", "uar": "UAR", "macro_f1": "macro-F1", "weighted_f1": "weighted-F1"}


@dataclass
class Leaderboard:
    table: pd.DataFrame  # one row per (dataset, method)
    paths: dict[str, Path]


def collect(tracking_uri: str, experiment: str) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="pandas",
                              filter_string=f"tags.`{ROLE_TAG}` = 'parent' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    if runs.empty:
        return runs
    runs = runs.drop_duplicates(subset=["tags.dataset", "tags.method"], keep="first")
    rows = []
    for _, run in runs.iterrows():
        row = {"dataset": run["tags.dataset"], "method": run["tags.method"], "family": run["tags.family"],
               "modalities": run["tags.modalities"], "protocol": run["tags.protocol"],
               "headline": run["tags.headline_metric"], "folds": int(float(run["params.n_folds"])),
               "feature_failures": int(run.get("tags.feature_failures") or 0), "run_id": run["run_id"],
               "artifact_uri": run["artifact_uri"]}
        for metric in HEADLINE_METRICS:
            row[f"{metric}_mean"] = run[f"metrics.test_{metric}_mean"]
            row[f"{metric}_std"] = run[f"metrics.test_{metric}_std"]
        rows.append(row)
    return pd.DataFrame(rows)


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for _, group in table.groupby("dataset", sort=True):
        metric = group["headline"].iloc[0]
        group = group.sort_values(f"{metric}_mean", ascending=False).reset_index(drop=True)
        group.insert(0, "rank", range(1, len(group) + 1))
        parts.append(group)
    return pd.concat(parts, ignore_index=True)


def _cell(row: pd.Series, metric: str) -> str:
    return f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"


def fusion_gain(group: pd.DataFrame) -> str | None:
    metric = group["headline"].iloc[0]
    single = group[group["modalities"].str.count(",") == 0]
    fused = group[group["modalities"].str.count(",") > 0]
    if single.empty or fused.empty:
        return None
    best_single = single.loc[single[f"{metric}_mean"].idxmax()]
    best_fused = fused.loc[fused[f"{metric}_mean"].idxmax()]
    gain = best_fused[f"{metric}_mean"] - best_single[f"{metric}_mean"]
    return (f"Best fusion `{best_fused['method']}` {best_fused[f'{metric}_mean']:.3f} vs best single modality "
            f"`{best_single['method']}` ({best_single['modalities']}) {best_single[f'{metric}_mean']:.3f}: "
            f"{gain:+.3f} {METRIC_TITLES[metric]}.")


def _figure(row: pd.Series, figures: Path) -> Path | None:
    import mlflow

    try:
        local = mlflow.artifacts.download_artifacts(run_id=row["run_id"], artifact_path="confusion.json")
    except Exception:  # a run without the artifact (e.g. deleted artifact store) still gets its table row
        return None
    content = json.loads(Path(local).read_text())
    return confusion_figure(content["matrix"], content["classes"], f"{row['method']} on {row['dataset']}",
                            figures / row["dataset"] / f"{row['method']}.png")


def failures_of(run_id: str) -> pd.DataFrame:
    """The feature-extraction failures stored with a run (empty when there were none)."""
    import mlflow

    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=FAILURES_ARTIFACT)
    except Exception:  # no failures artifact: the run had none
        return pd.DataFrame(columns=["modality", "clip_id", "stage", "error"])
    return pd.read_csv(local)


def render(tracking_uri: str, experiment: str, out_dir: Path, figures: bool = True) -> Leaderboard:
    table = collect(tracking_uri, experiment)
    out_dir.mkdir(parents=True, exist_ok=True)
    if table.empty:
        raise LookupError(f"no finished runs in experiment {experiment!r} at {tracking_uri}; run `harness run`")
    table = _ranked(table)
    figure_paths: dict[tuple[str, str], Path] = {}
    if figures:
        for _, row in table.iterrows():
            path = _figure(row, out_dir / "figures")
            if path is not None:
                figure_paths[(row["dataset"], row["method"])] = path
    columns = ["dataset", "rank", "method", "family", "modalities", "protocol", "folds"] + [
        f"{m}_{s}" for m in HEADLINE_METRICS for s in ("mean", "std")]
    paths = {"csv": out_dir / "leaderboard.csv", "md": out_dir / "leaderboard.md", "html": out_dir / "leaderboard.html"}
    with atomic.atomic_path(paths["csv"]) as tmp:
        table[columns].to_csv(tmp, index=False, float_format="%.4f")
    atomic.write_text(paths["md"], _markdown(table, figure_paths, out_dir))
    atomic.write_text(paths["html"], _html(table, figure_paths, out_dir))
    return Leaderboard(table, paths)


def _markdown(table: pd.DataFrame, figures: dict[tuple[str, str], Path], out_dir: Path) -> str:
    lines = ["# Leaderboard", "",
             "Test scores, mean ± standard deviation over folds; configurations were chosen on validation folds "
             "only. WA = accuracy, UAR = unweighted average recall. Regenerate with `harness report`.", ""]
    for dataset, group in table.groupby("dataset", sort=True):
        metric = group["headline"].iloc[0]
        lines += [f"## {dataset}", "",
                  f"Protocol: `{group['protocol'].iloc[0]}`, {group['folds'].iloc[0]} folds; ranked by "
                  f"{METRIC_TITLES[metric]}. Feature extraction failures: {group['feature_failures'].iloc[0]}.", ""]
        gain = fusion_gain(group)
        if gain:
            lines += [gain, ""]
        lines += _failure_lines(group)
        lines += ["| # | method | family | modalities | " + " | ".join(METRIC_TITLES[m] for m in HEADLINE_METRICS)
                  + " | confusion |", "|---" * (5 + len(HEADLINE_METRICS)) + "|"]
        for _, row in group.iterrows():
            figure = figures.get((dataset, row["method"]))
            link = f"[png]({figure.relative_to(out_dir).as_posix()})" if figure else ""
            lines.append(f"| {row['rank']} | `{row['method']}` | {row['family']} | {row['modalities']} | "
                         + " | ".join(_cell(row, m) for m in HEADLINE_METRICS) + f" | {link} |")
        lines.append("")
    return "\n".join(lines)


def _failure_lines(group: pd.DataFrame, shown: int = 20) -> list[str]:
    if group["feature_failures"].iloc[0] == 0:
        return []
    failures = failures_of(group["run_id"].iloc[0])
    lines = [f"Clips whose features failed ({len(failures)}; methods handle them by their missing-modality rule):", "",
             "| modality | clip | stage | error |", "|---|---|---|---|"]
    for _, row in failures.head(shown).iterrows():
        error = str(row["error"]).replace("|", "/")[:160]
        lines.append(f"| {row['modality']} | `{row['clip_id']}` | {row['stage']} | {error} |")
    if len(failures) > shown:
        lines.append(f"| ... | {len(failures) - shown} more | | |")
    return [*lines, ""]


def _html(table: pd.DataFrame, figures: dict[tuple[str, str], Path], out_dir: Path) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>MER leaderboard</title><style>",
             "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}",
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:nth-child(-n+4){text-align:left}",
             "th{background:#f0f0f0}.figs img{width:260px;margin:4px}</style></head><body>",
             "<h1>MER leaderboard</h1><p>Test scores, mean ± std over folds; configurations chosen on validation "
             "folds only.</p>"]
    for dataset, group in table.groupby("dataset", sort=True):
        metric = group["headline"].iloc[0]
        parts.append(f"<h2>{html.escape(dataset)}</h2><p>Protocol <code>{html.escape(group['protocol'].iloc[0])}"
                     f"</code>, ranked by {METRIC_TITLES[metric]}.</p>")
        gain = fusion_gain(group)
        if gain:
            parts.append(f"<p>{html.escape(gain.replace('`', ''))}</p>")
        header = "".join(f"<th>{METRIC_TITLES[m]}</th>" for m in HEADLINE_METRICS)
        parts.append(f"<table><tr><th>#</th><th>method</th><th>family</th><th>modalities</th>{header}</tr>")
        for _, row in group.iterrows():
            cells = "".join(f"<td>{_cell(row, m)}</td>" for m in HEADLINE_METRICS)
            parts.append(f"<tr><td>{row['rank']}</td><td>{html.escape(row['method'])}</td>"
                         f"<td>{html.escape(row['family'])}</td><td>{html.escape(row['modalities'])}</td>{cells}</tr>")
        parts.append("</table><div class='figs'>")
        for _, row in group.iterrows():
            figure = figures.get((dataset, row["method"]))
            if figure:
                parts.append(f"<img src='{figure.relative_to(out_dir).as_posix()}' alt='{html.escape(row['method'])}'>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
