"""The leaderboard: read the finished parent runs from MLflow, settle the comparisons, render Markdown, HTML, CSV.

Only results that share an evaluation setting (`harness.setting`: corpus fingerprint, protocol, features and their
options, trial budget, preset, speaker normalisation, refit) are ranked in one table; each (dataset, setting) is its
own section, headed by what differs from the dataset's other settings. Within a section the newest finished run of
each method counts; rows are ordered by the dataset's headline metric (mean over folds), with a 95 % interval from
a bootstrap over the protocol's groups, and a paired test against the best method on the same clips
(`harness.stats`) decides which methods are tied with the best. Across datasets, methods get mean ranks and, with
enough datasets, a Friedman test with a critical-difference diagram.

Importing this module imports neither Ray nor MLflow (a test holds it so): the runs are read through
`harness.track`, which imports MLflow inside its functions.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness import atomic, stats
from harness.hashing import stable_hash
from harness.metrics import HEADLINE_METRICS, score
from harness.report.model import FAILURE_COLUMNS, Leaderboard, RunData, Section
from harness.report.soft_labels import SOFT_COLUMNS, analyse_soft
from harness.results import FAILURES_ARTIFACT, PREDICTIONS_ARTIFACT
from harness.sota import best_published_line

if TYPE_CHECKING:
    from harness.track import StoredResult

# what the statistics add to each row (and to the CSV), besides rank, rank_label and verdict
TEST_COLUMNS = ["ci_low", "ci_high", "difference", "se", "p_difference", "p_difference_holm", "p_equivalence",
                "p_equivalence_holm"]

# ---------------------------------------------------------------- reading the finished results


def _legacy_setting(result: StoredResult) -> tuple[str, str]:
    """The setting of a run written before `harness.setting` existed: its features tag, protocol and budget."""
    params = result.params
    record = {"protocol": result.tags.protocol or None, "features": result.tags.features or None,
              "trials": params.get("n_trials"), "speaker_norm": params.get("settings.speaker_norm"),
              "seed": params.get("settings.seed")}
    norm = str(record["speaker_norm"]).lower() == "true"
    words = (f"{record['protocol']}; features {record['features'] or 'unknown'}; {record['trials']} trials; "
             f"speaker-norm {'on' if norm else 'off'}; recorded before settings were tagged")
    return "legacy-" + stable_hash(record)[:12], words


def collect(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """One row per (dataset, setting, method): the newest finished parent run of each (read through
    `track.finished_results`, so every tag and metric name is the one `harness.results` defines)."""
    from harness import track

    found = track.find_experiment(tracking_uri, experiment)
    if found is None:
        return pd.DataFrame()
    results = track.finished_results(found.experiment_id)
    if not results:
        return pd.DataFrame()
    rows = []
    for result in results:
        tags, params, metrics = result.tags, result.params, result.metrics
        setting, label = tags.setting, tags.setting_label
        if not setting:
            setting, label = _legacy_setting(result)
        config = {k: v for k, v in params.items()
                  if not k.startswith("settings.") and k not in ("n_folds", "n_trials")}
        row = {"dataset": tags.dataset, "setting": setting, "setting_label": label,
               "method": tags.method, "family": tags.family,
               "modalities": tags.modalities, "protocol": tags.protocol,
               "headline": tags.headline_metric or "uar",
               "folds": int(float(params["n_folds"])), "n_trials": params.get("n_trials", ""),
               "features": tags.features, "seed": params.get("settings.seed", ""),
               "git_commit": tags.git_commit or "unknown", "inputs": tags.inputs,
               "contamination": tags.contamination,
               "feature_failures": int(float(tags.feature_failures or 0)),
               "seconds": float(metrics.get("seconds", np.nan) or np.nan),
               "run_id": result.run_id, "experiment_id": found.experiment_id,
               "config": json.dumps(dict(sorted(config.items())))}
        for metric in HEADLINE_METRICS:
            row[f"{metric}_mean"] = result.summary.get(f"{metric}_mean", np.nan)
            row[f"{metric}_std"] = result.summary.get(f"{metric}_std", np.nan)
        # perceived-emotion (soft-label) scores, where the corpus has annotator ratings (harness.ratings)
        row |= {k.removeprefix("test_"): v for k, v in metrics.items()
                if k.startswith("test_soft_") and k.endswith(("_mean", "_std")) and pd.notna(v)}
        rows.append(row)
    table = pd.DataFrame(rows).drop_duplicates(subset=["dataset", "setting", "method"], keep="first")
    return table.reset_index(drop=True)


def read_run(run_id: str) -> RunData:
    """A run's predictions, class names and feature failures, from its artifacts (`track.result_files`)."""
    from harness import track

    with tempfile.TemporaryDirectory() as tmp:
        files = track.result_files(run_id, [PREDICTIONS_ARTIFACT, "confusion.json", FAILURES_ARTIFACT], Path(tmp))
        predictions_path = files.get(PREDICTIONS_ARTIFACT)
        confusion_path = files.get("confusion.json")
        failures_path = files.get(FAILURES_ARTIFACT)
        predictions = pd.read_csv(predictions_path, dtype={"fold": str, "clip_id": str}) if predictions_path else None
        classes = json.loads(confusion_path.read_text())["classes"] if confusion_path else []
        failures = pd.read_csv(failures_path) if failures_path else pd.DataFrame(columns=FAILURE_COLUMNS)
    if predictions is not None and not classes:
        classes = sorted(set(predictions["y_true"].astype(str)) | set(predictions["y_pred"].astype(str)))
    grouped_by = "group"
    if predictions is not None and "group" not in predictions.columns:
        grouped_by = "clip_id"
    return RunData(predictions, [str(c) for c in classes], grouped_by, failures)


# ---------------------------------------------------------------- analysis


def _differing_title(dataset: str, label: str, labels: list[str]) -> str:
    """The dataset's name, plus the parts of this setting's words that other settings of the dataset lack."""
    if len(set(labels)) <= 1:
        return dataset
    shared = set.intersection(*[set(other.split("; ")) for other in labels])
    differing = [part for part in label.split("; ") if part not in shared]
    return f"{dataset}: {'; '.join(differing) or label}"


def analyse(table: pd.DataFrame, runs: dict[str, RunData], seed: int = 0) -> list[Section]:
    """One `Section` per (dataset, setting), rows ordered best first, with CIs, paired tests and ties."""
    sections = []
    for dataset, of_dataset in table.groupby("dataset", sort=True):
        settings = of_dataset.groupby("setting", sort=False)["setting_label"].first()
        # the setting with the most methods first, then by setting hash: a stable order
        order = sorted(settings.index, key=lambda s: (-int((of_dataset["setting"] == s).sum()), s))
        for setting in order:
            group = of_dataset[of_dataset["setting"] == setting]
            slug = dataset if len(order) == 1 else f"{dataset}--{setting[:8]}"
            title = _differing_title(dataset, settings[setting], list(settings.values))
            sections.append(_section(dataset, setting, settings[setting], title, slug, group, runs, seed))
    return sections


def _section(dataset: str, setting: str, label: str, title: str, slug: str, group: pd.DataFrame,
             runs: dict[str, RunData], seed: int) -> Section:
    metric = group["headline"].iloc[0]
    group = group.sort_values([f"{metric}_mean", "method"], ascending=[False, True]).reset_index(drop=True)
    with_predictions = {row["method"]: runs[row["run_id"]] for _, row in group.iterrows()
                        if runs[row["run_id"]].predictions is not None}
    classes = next((r.classes for r in with_predictions.values()), [])
    grouped_by = "clip_id" if any(r.grouped_by == "clip_id" for r in with_predictions.values()) else "group"
    predictions = {m: r.predictions for m, r in with_predictions.items()}
    group = group.assign(**{c: np.nan for c in TEST_COLUMNS}, verdict=stats.UNRESOLVED)
    n_groups, resolution = 0, None
    if predictions:
        n_groups = int(next(iter(predictions.values()))[grouped_by].nunique())
        for i, row in group.iterrows():
            if row["method"] in predictions:
                interval = stats.group_bootstrap_ci(predictions[row["method"]], metric, classes,
                                                    group_column=grouped_by, seed=seed)
                group.loc[i, ["ci_low", "ci_high"]] = [interval.low, interval.high]
        compared = stats.compare_with_best(predictions, metric, classes, group_column=grouped_by).set_index("method")
        for c in [*TEST_COLUMNS[2:], "verdict"]:
            group[c] = group["method"].map(compared[c])
        group["verdict"] = group["verdict"].fillna(stats.UNRESOLVED)  # no predictions stored: nothing to test
        resolution = stats.resolution(n_groups, compared.attrs["comparisons"], compared["se"].iloc[1:].tolist())
        # the order the tests saw (by the pooled-prediction fold mean, equal to the logged mean) leads
        group = group.set_index("method").loc[list(compared.index) + [m for m in group["method"]
                                                                       if m not in compared.index]].reset_index()
    group.insert(0, "rank", range(1, len(group) + 1))
    group.insert(1, "rank_label", stats.verdict_ranks(group["verdict"].tolist()))
    failures = next((runs[r].failures for r in group["run_id"] if len(runs[r].failures)),
                    pd.DataFrame(columns=FAILURE_COLUMNS))
    per_class = pd.DataFrame({m: score(p["y_true"].map({c: i for i, c in enumerate(classes)}).to_numpy(),
                                       p["y_pred"].map({c: i for i, c in enumerate(classes)}).to_numpy(),
                                       classes).per_class["f1"] for m, p in predictions.items()}).T
    if len(per_class):
        per_class = per_class.loc[[m for m in group["method"] if m in per_class.index]]
    section = Section(dataset, setting, label, title, slug, metric, group, classes, grouped_by, n_groups, failures,
                      resolution=resolution, per_class_f1=per_class)
    section.gain = fusion_gain(section, predictions)
    section.soft = analyse_soft(predictions, classes, grouped_by, seed)
    section.best_published = best_published_line(dataset, str(group["protocol"].iloc[0]), metric)
    return section


def fusion_gain(section: Section, predictions: dict[str, pd.DataFrame]) -> dict[str, Any] | None:
    """Best fusion vs best single modality within this one setting, with intervals and one paired test (the
    jackknife t-test and TOST of `stats.paired_difference`, uncorrected: it is one pre-stated question per table)."""
    rows, metric = section.rows, section.metric
    single = rows[rows["modalities"].str.count(",") == 0]
    fused = rows[rows["modalities"].str.count(",") > 0]
    if single.empty or fused.empty:
        return None
    best_single = single.loc[single[f"{metric}_mean"].idxmax()]
    best_fused = fused.loc[fused[f"{metric}_mean"].idxmax()]
    gain: dict[str, Any] = {"fused": best_fused, "single": best_single,
                            "gain": float(best_fused[f"{metric}_mean"] - best_single[f"{metric}_mean"]),
                            "test": None, "verdict": stats.UNRESOLVED}
    if best_fused["method"] in predictions and best_single["method"] in predictions:
        test = stats.paired_difference(predictions[best_fused["method"]], predictions[best_single["method"]],
                                       metric, section.classes, group_column=section.grouped_by)
        gain["test"] = test
        gain["verdict"] = stats.verdict(test.p_difference, test.p_equivalence, test.difference)
    return gain


def cross_dataset(sections: list[Section]) -> stats.CrossDatasetRanking | None:
    """Mean ranks (and the Friedman test when possible) over each dataset's main setting (its first section)."""
    main: dict[str, Section] = {}
    for section in sections:
        main.setdefault(section.dataset, section)
    if len(main) < 2:
        return None
    scores = pd.DataFrame({d: s.rows.set_index("method")[f"{s.metric}_mean"] for d, s in main.items()}).T
    if scores.dropna(axis=1).shape[1] < 2:
        return None
    return stats.cross_dataset_ranking(scores.astype(float))


# ---------------------------------------------------------------- rendering


def render(tracking_uri: str, experiment: str, out_dir: Path, figures: bool = True) -> Leaderboard:
    """Read the experiment's finished runs and write leaderboard.md, index.html, leaderboard.csv and figures; the
    robustness section (`harness.report.robustness`) follows the tables when the experiment has robustness runs."""
    from harness.report import figures as plots
    from harness.report import robustness
    from harness.report.html import html_page
    from harness.report.markdown import markdown_page

    table = collect(tracking_uri, experiment)
    out_dir.mkdir(parents=True, exist_ok=True)
    if table.empty:
        raise LookupError(f"no finished runs in experiment {experiment!r} at {tracking_uri}; run `harness run`")
    runs = {run_id: read_run(run_id) for run_id in table["run_id"]}
    sections = analyse(table, runs)
    ranking = cross_dataset(sections)
    figure_dir = out_dir / "figures"
    if figures:
        plots.section_figures(sections, figure_dir, runs)
        if ranking is not None and ranking.tested:
            plots.critical_difference_figure(ranking.result, figure_dir / "critical_difference")
        if any(s.gain for s in sections):
            plots.fusion_gain_figure(sections, figure_dir / "fusion_gain.png")
    context = {"tracking_uri": tracking_uri, "experiment": experiment, "ranking": ranking,
               "reproducibility": reproducibility(table),
               "robustness": robustness.section(tracking_uri, experiment, table, out_dir, figures)}
    board = pd.concat([s.rows.assign(setting_title=s.title) for s in sections], ignore_index=True)
    paths = {"csv": out_dir / "leaderboard.csv", "md": out_dir / "leaderboard.md", "html": out_dir / "index.html"}
    columns = ["dataset", "setting", "setting_label", "rank", "rank_label", "method", "family", "modalities",
               "protocol", "folds", "n_trials", "features"] + [f"{m}_{s}" for m in HEADLINE_METRICS
                                                             for s in ("mean", "std")] + [
        *TEST_COLUMNS, "verdict", "run_id"]
    with atomic.atomic_path(paths["csv"]) as tmp:
        board[columns].to_csv(tmp, index=False, float_format="%.6g")
    soft = [s.soft.assign(dataset=s.dataset, setting=s.setting) for s in sections if len(s.soft)]
    if soft:  # the soft-label tables' intervals and verdicts, one row per (dataset, setting, method, set, metric)
        paths["soft_csv"] = out_dir / "leaderboard_soft.csv"
        with atomic.atomic_path(paths["soft_csv"]) as tmp:
            pd.concat(soft, ignore_index=True)[["dataset", "setting", *SOFT_COLUMNS]].to_csv(
                tmp, index=False, float_format="%.6g")
    atomic.write_text(paths["md"], markdown_page(sections, context, out_dir))
    atomic.write_text(paths["html"], html_page(sections, context, out_dir))
    return Leaderboard(board, paths)


def reproducibility(table: pd.DataFrame) -> dict[str, str]:
    """What produced these results: code versions, feature keys, budgets, seeds, wall time (from the runs)."""
    def joined(column: str) -> str:
        return ", ".join(sorted({str(v) for v in table[column] if str(v)})) or "unknown"

    return {"code version (git commit)": joined("git_commit"), "feature cache keys": joined("features"),
            "trial budgets": joined("n_trials"), "seeds": joined("seed"),
            "runs": f"{len(table)} results in {table['dataset'].nunique()} dataset(s)",
            "wall time of the runs": f"{np.nansum(table['seconds'].to_numpy(dtype=float)):.0f} s "
                                     "(sum of the results' search and test time)"}
