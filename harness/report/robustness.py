"""The robustness section of the leaderboard: missing modalities, corruption curves, cross-corpus transfer.

Read from the robustness child runs `harness robustness` logs (`harness.robustness.run.robustness_results` and
`robustness_records`), summarised with `harness.robustness.summary` (MultiBench's relative and effective
robustness, Student-t intervals), rendered as Markdown lines, HTML parts and figures.

`harness.report.leaderboard.render` imports `section` and places what it returns after the leaderboard tables;
the report sits in the same layer as `harness.robustness` (docs/architecture.md), and this module imports neither
Ray nor MLflow at import time.

Per dataset, with the dataset's headline metric:
  missing modalities  methods x conditions (clean, each modality or pair absent), each absent cell with the
                      drop against the best single remaining modality (the best clean unimodal method on a
                      modality the condition leaves); cells below that baseline are flagged: a finding;
  random missing      robustness curves (metric vs missing rate, 95 % intervals over folds and seeds) and, per
                      method, relative robustness (area under the curve) and effective robustness against the
                      early-concatenation baseline;
  corruptions         one curve per corruption (metric vs severity, clean first) with the same two numbers.
Across corpora, a train x test matrix per method (UAR: the pair's shared classes differ from each corpus's own),
naming the shared, mapped and dropped classes of every pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.plots import pyplot, save
from harness.report.model import METRIC_TITLES
from harness.report.model import escape as _e

BASELINE_PREFIX = "early-concat"  # issue 13: effective robustness against early concatenation
CROSS_METRIC = "uar"


@dataclass
class DatasetRobustness:
    """Everything the report shows about one dataset's robustness."""

    dataset: str
    metric: str
    baseline: str | None  # the early-concatenation method effective robustness is measured against
    absent: pd.DataFrame  # method, condition ("clean" or the removed modalities), score, best_unimodal, drop, below
    random_summary: pd.DataFrame  # robustness_summary rows of the random-missing curves
    random_curves: pd.DataFrame  # curves() of the random-missing conditions
    corrupt_summary: pd.DataFrame
    corrupt_curves: pd.DataFrame  # with the level column
    figures: dict[str, Path] = field(default_factory=dict)  # "random", "corrupt:<name>"


@dataclass
class CrossCorpus:
    matrix: pd.DataFrame  # method, train_on, test_on, mean, std, n
    pairs: list[dict[str, Any]]  # train_on, test_on, shared, mapped, dropped (one per pair)


@dataclass
class RobustnessView:
    datasets: list[DatasetRobustness]
    cross: CrossCorpus | None

    @property
    def empty(self) -> bool:
        return not self.datasets and self.cross is None


# ---------------------------------------------------------------- analysis


def unimodal_methods(methods: list[str]) -> dict[str, str]:
    """method -> its one modality, for the registered methods among `methods` that read exactly one modality."""
    from methods import get_method

    out = {}
    for name in methods:
        try:
            required = get_method(name).required_modalities()
        except KeyError:  # a method no longer registered: its results are shown, it is no baseline
            continue
        if len(required) == 1:
            out[name] = required[0]
    return out


def baseline_method(methods: list[str]) -> str | None:
    """`early-concat-svm` when it was evaluated, else the first early-concatenation method, else None."""
    candidates = sorted(m for m in methods if m.startswith(BASELINE_PREFIX))
    preferred = f"{BASELINE_PREFIX}-svm"
    return preferred if preferred in candidates else (candidates[0] if candidates else None)


def headline_metric(dataset: str, table: pd.DataFrame | None) -> str:
    """The dataset's headline metric, as its leaderboard rows (or else its card) state it."""
    if table is not None and len(table) and "headline" in table.columns:
        rows = table[table["dataset"] == dataset]
        if len(rows):
            return str(rows["headline"].iloc[0])
    from harness.datasets import get_dataset

    try:
        return get_dataset(dataset).headline_metric
    except KeyError:
        return "uar"


def absent_table(frame: pd.DataFrame, metric: str, unimodal: dict[str, str]) -> pd.DataFrame:
    """One row per (method, condition): the clean score and every absent set, with the drop against the best
    single remaining modality for fusion methods (drop_against_unimodal)."""
    from harness.robustness.summary import drop_against_unimodal

    scores = frame[frame["metric"] == metric]
    rows = []
    for (dataset, method), part in scores.groupby(["dataset", "method"], sort=True):
        clean = part[part["condition"] == "clean"]["value"]
        if len(clean):
            rows.append({"dataset": dataset, "method": method, "condition": "clean", "score": float(clean.mean())})
        for removed, absent in part[part["condition"] == "absent"].groupby("modality", sort=True):
            rows.append({"dataset": dataset, "method": method, "condition": str(removed),
                         "score": float(absent["value"].mean())})
    out = pd.DataFrame(rows, columns=["dataset", "method", "condition", "score"])
    drops = drop_against_unimodal(frame, metric, unimodal)
    if drops.empty:
        return out.assign(best_unimodal="", best_unimodal_score=np.nan, drop=np.nan, below_baseline=False)
    drops = drops.rename(columns={"absent": "condition"})[
        ["dataset", "method", "condition", "best_unimodal", "best_unimodal_score", "drop", "below_baseline"]]
    out = out.merge(drops, on=["dataset", "method", "condition"], how="left")
    out["below_baseline"] = out["below_baseline"].astype("boolean").fillna(False).astype(bool)
    out["best_unimodal"] = out["best_unimodal"].fillna("")
    return out


def analyse_dataset(dataset: str, missing: pd.DataFrame, corrupt: pd.DataFrame, metric: str) -> DatasetRobustness:
    """The tables of one dataset from its tidy missing and corrupt frames (either may be empty)."""
    from harness.robustness.summary import curves, robustness_summary

    methods = sorted(set(missing.get("method", pd.Series(dtype=str))) | set(corrupt.get("method",
                                                                                        pd.Series(dtype=str))))
    baseline = baseline_method(methods)
    empty = pd.DataFrame()
    absent = absent_table(missing, metric, unimodal_methods(methods)) if len(missing) else empty
    random = missing[missing["condition"].isin(["clean", "random"])] if len(missing) else empty
    random_curves = curves(random, metric) if len(random) else empty
    random_summary = robustness_summary(random, metric, baseline) if len(random) else empty
    corrupt_curves, corrupt_summary = empty, empty
    if len(corrupt):
        corrupt_curves = curves(corrupt, metric, ["dataset", "method", "condition", "modality"])
        levels = corrupt.dropna(subset=["level"]).groupby(["condition", "rate"])["level"].first()
        corrupt_curves["level"] = [levels.get((c, r), np.nan) for c, r in zip(corrupt_curves["condition"],
                                                                              corrupt_curves["rate"], strict=True)]
        corrupt_summary = robustness_summary(corrupt, metric, baseline)
    return DatasetRobustness(dataset, metric, baseline, absent, random_summary, random_curves, corrupt_summary,
                             corrupt_curves)


def cross_matrix(frame: pd.DataFrame, records: list[dict[str, Any]]) -> CrossCorpus | None:
    """Per method: mean and spread over A's fold models of UAR on each test corpus (A itself: its own test parts)."""
    if frame.empty:
        return None
    scores = frame[frame["metric"] == CROSS_METRIC]
    matrix = (scores.groupby(["method", "train_on", "test_on"], sort=True)["value"]
              .agg(mean="mean", std=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0, n="count").reset_index())
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        key = (str(record.get("train_on")), str(record.get("test_on")))
        pairs.setdefault(key, {"train_on": key[0], "test_on": key[1], "shared": list(record.get("shared", [])),
                               "mapped": dict(record.get("mapped", {})), "dropped": dict(record.get("dropped", {}))})
    return CrossCorpus(matrix, [pairs[k] for k in sorted(pairs)])


def analyse(frame: pd.DataFrame, records: list[dict[str, Any]], table: pd.DataFrame | None = None
            ) -> RobustnessView:
    """Split the robustness children's tidy rows by kind and dataset, and summarise each."""
    if frame.empty:
        return RobustnessView([], None)
    tag = frame["condition_tag"].astype(str)
    missing_rows = frame[tag == "missing"]
    corrupt_rows = frame[tag.str.startswith("corrupt:")]
    cross_rows = frame[tag.str.startswith("cross-corpus:")]
    datasets = sorted(set(missing_rows["dataset"]) | set(corrupt_rows["dataset"]))
    views = [analyse_dataset(d, missing_rows[missing_rows["dataset"] == d],
                             corrupt_rows[corrupt_rows["dataset"] == d], headline_metric(d, table)) for d in datasets]
    return RobustnessView(views, cross_matrix(cross_rows, records))


def read(tracking_uri: str, experiment: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every newest robustness child's tidy rows, and the cross-corpus records, from MLflow (through
    `harness.track`)."""
    from harness import track
    from harness.robustness.run import robustness_records, robustness_results

    found = track.find_experiment(tracking_uri, experiment)
    if found is None:
        return pd.DataFrame(), []
    return robustness_results(found.experiment_id), robustness_records(found.experiment_id, "cross-corpus:")


# ---------------------------------------------------------------- figures


def _curve_axes(ax: Any, curves: pd.DataFrame, baseline: str | None) -> None:
    for method, rows in curves.groupby("method", sort=True):
        rows = rows.sort_values("rate")
        style = {"linewidth": 2.4, "color": "black"} if method == baseline else {"linewidth": 1.2}
        line = ax.plot(rows["rate"], rows["mean"], marker="o", markersize=3, label=method, **style)[0]
        ax.fill_between(rows["rate"], rows["low"], rows["high"], alpha=0.15, color=line.get_color())


def figures(view: RobustnessView, figure_dir: Path) -> None:
    """Robustness curves with 95 % intervals: one figure of random-missing panels and one per corruption, per
    dataset (the early-concatenation baseline drawn in black)."""
    plt = pyplot()
    for data in view.datasets:
        title = METRIC_TITLES.get(data.metric, data.metric)
        if len(data.random_curves):
            targets = sorted(data.random_curves["modality"].unique(), key=lambda m: (m == "any", m))
            fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False,
                                     sharey=True)
            for ax, target in zip(axes[0], targets, strict=True):
                _curve_axes(ax, data.random_curves[data.random_curves["modality"] == target], data.baseline)
                ax.set_title(f"{target} missing" if target != "any" else "each modality missing at the rate",
                             fontsize=9)
                ax.set_xlabel("missing rate")
            axes[0][0].set_ylabel(title)
            axes[0][-1].legend(fontsize=6, loc="lower left")
            fig.suptitle(f"{data.dataset}: random missing modalities (95 % CI over folds x seeds)", fontsize=10)
            fig.tight_layout()
            data.figures["random"] = save(fig, figure_dir / data.dataset / "random_missing.png")
            plt.close(fig)
        for condition, curves in (data.corrupt_curves.groupby("condition", sort=True)
                                  if len(data.corrupt_curves) else []):
            fig, ax = plt.subplots(figsize=(5.6, 3.8))
            _curve_axes(ax, curves, data.baseline)
            ticks = curves.drop_duplicates("rate").sort_values("rate")
            ax.set_xticks(ticks["rate"], ["clean" if r == 0 else f"{lv:g}" for r, lv in
                                          zip(ticks["rate"], ticks["level"], strict=True)])
            name = str(condition).removeprefix("corrupt:")
            from harness.features.extractors.corrupted import CORRUPTIONS

            unit = CORRUPTIONS[name].unit if name in CORRUPTIONS else "level"
            ax.set_xlabel(f"severity ({unit})")
            ax.set_ylabel(title)
            ax.set_title(f"{data.dataset}: {name} (95 % CI over folds)", fontsize=10)
            ax.legend(fontsize=6, loc="lower left")
            fig.tight_layout()
            data.figures[str(condition)] = save(fig, figure_dir / data.dataset / f"{name}.png")
            plt.close(fig)


# ---------------------------------------------------------------- text


def _f(value: Any, spec: str = ".3f") -> str:
    return "" if value is None or pd.isna(value) else format(float(value), spec)


def _condition_title(condition: str) -> str:
    return "clean" if condition == "clean" else f"no {condition}"


def absent_rows(data: DatasetRobustness) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Header and (method, cells) of the missing-modality table: score, and (drop vs best remaining modality),
    with `!` where the method falls below that baseline."""
    if data.absent.empty:
        return [], []
    conditions = ["clean", *sorted(c for c in data.absent["condition"].unique() if c != "clean")]
    rows = []
    for method, part in data.absent.groupby("method", sort=True):
        by_condition = part.set_index("condition")
        cells = []
        for condition in conditions:
            if condition not in by_condition.index:
                cells.append("")
                continue
            row = by_condition.loc[condition]
            cell = _f(row["score"])
            if condition != "clean" and not pd.isna(row.get("drop", np.nan)):
                cell += f" ({_f(row['drop'], '+.3f')}{' !' if row['below_baseline'] else ''})"
            cells.append(cell)
        rows.append((str(method), cells))
    return [_condition_title(c) for c in conditions], rows


def below_lines(data: DatasetRobustness) -> list[str]:
    """The findings: fusion methods that do worse without a modality than the best single remaining modality."""
    if data.absent.empty:
        return []
    below = data.absent[data.absent["below_baseline"]]
    return [f"`{r['method']}` without {r['condition']}: {r['score']:.3f} < `{r['best_unimodal']}` "
            f"{r['best_unimodal_score']:.3f}" for _, r in below.iterrows()]


def summary_rows(summary: pd.DataFrame, by: str) -> list[list[str]]:
    if summary.empty:
        return []
    return [[str(r[by]).removeprefix("corrupt:"), str(r["method"]), _f(r["clean"]), _f(r["worst"]),
             _f(r["relative_robustness"]), _f(r["effective_robustness"], "+.3f")]
            for _, r in summary.sort_values([by, "relative_robustness"], ascending=[True, False]).iterrows()]


SUMMARY_HEADER = ["method", "clean", "most severe", "relative robustness (AUC)", "effective robustness"]


def _explanation(data: DatasetRobustness) -> str:
    baseline = f"`{data.baseline}`" if data.baseline else "none (no early-concatenation result)"
    return (f"Headline metric {METRIC_TITLES.get(data.metric, data.metric)}, mean over folds (and seeds). "
            "Relative robustness: area under the metric-vs-level curve, levels spread over [0, 1]; effective "
            f"robustness: sum over levels of f(l) - (b(l) + f(0) - b(0)) against the baseline {baseline} "
            "(MultiBench, Liang et al. 2021, section 3; reported raw, not min-max normalised). Shaded bands: "
            "Student-t 95 % intervals over folds x seeds. See docs/robustness.md.")


def markdown_lines(view: RobustnessView, out_dir: Path) -> list[str]:
    if view.empty:
        return []
    lines = ["## Robustness", "",
             "The chosen configuration's validated fold models, scored on the test parts with modalities removed "
             "or media corrupted (`harness robustness`); nothing is retrained.", ""]
    for data in view.datasets:
        lines += [f"### {data.dataset}: robustness", "", _explanation(data), ""]
        header, rows = absent_rows(data)
        if rows:
            lines += ["Missing modalities at test time: score, and in brackets the difference to the best single "
                      "remaining modality (its unimodal method's clean score); `!` = below it.", "",
                      "| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
            lines += [f"| `{m}` | " + " | ".join(cells) + " |" for m, cells in rows]
            lines.append("")
            below = below_lines(data)
            lines += ([f"Below the best single remaining modality ({len(below)}): " + "; ".join(below) + ".", ""]
                      if below else ["No fusion method falls below the best single remaining modality.", ""])
        for key, summary, title in (("random", data.random_summary, "Random missing modalities"),
                                    ("corrupt", data.corrupt_summary, "Corrupted media")):
            table = summary_rows(summary, "modality" if key == "random" else "condition")
            if not table:
                continue
            first = "missing" if key == "random" else "corruption"
            lines += [f"{title}:", "", f"| {first} | " + " | ".join(SUMMARY_HEADER) + " |",
                      "|---" * (len(SUMMARY_HEADER) + 1) + "|"]
            lines += ["| " + " | ".join(f"`{c}`" if i == 1 else c for i, c in enumerate(row)) + " |" for row in table]
            lines.append("")
        for name, path in sorted(data.figures.items()):
            lines.append(f"![{data.dataset}: {name} robustness curves]({path.relative_to(out_dir).as_posix()})")
        lines.append("")
    lines += cross_markdown(view.cross)
    return lines


def cross_markdown(cross: CrossCorpus | None) -> list[str]:
    if cross is None or cross.matrix.empty:
        return []
    tests = sorted(cross.matrix["test_on"].unique())
    lines = ["### Cross-corpus", "",
             f"{METRIC_TITLES[CROSS_METRIC]} over the classes both corpora share through the label map "
             "(harness/datasets/cross_corpus.yaml), mean ± std over the training corpus's fold models; "
             "hyperparameters chosen on the training corpus's validation parts. The cell where train = test is "
             "the training corpus's own test parts.", "",
             "| method | train on | " + " | ".join(f"test on {t}" for t in tests) + " |",
             "|---" * (len(tests) + 2) + "|"]
    for (method, train_on), part in cross.matrix.groupby(["method", "train_on"], sort=True):
        cells = part.set_index("test_on")
        lines.append(f"| `{method}` | {train_on} | " + " | ".join(
            f"{cells.loc[t, 'mean']:.3f} ± {cells.loc[t, 'std']:.3f}" if t in cells.index else "" for t in tests)
            + " |")
    lines.append("")
    for pair in cross.pairs:
        lines.append(f"- {pair['train_on']} -> {pair['test_on']}: " + pair_text(pair))
    return [*lines, ""]


def pair_text(pair: dict[str, Any]) -> str:
    """Shared classes, what each corpus maps onto them, and what it drops."""
    parts = [f"shared classes {', '.join(pair['shared'])}"]
    for corpus in (pair["train_on"], pair["test_on"]):
        mapped = pair["mapped"].get(corpus, {})
        renamed = [f"{c}->{t}" for c, t in mapped.items() if c != t]
        text = f"{corpus} maps {', '.join(renamed)}" if renamed else f"{corpus} keeps its names"
        dropped = pair["dropped"].get(corpus, [])
        parts.append(f"{text}, drops {', '.join(dropped) if dropped else 'nothing'}")
    return "; ".join(parts) + "."


def _html_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{_e(c)}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_parts(view: RobustnessView, out_dir: Path) -> list[str]:
    if view.empty:
        return []
    parts = ["<section id='robustness'><h2>Robustness</h2><p>The chosen configuration's validated fold models, "
             "scored on the test parts with modalities removed or media corrupted (<code>harness robustness</code>); "
             "nothing is retrained.</p>"]
    for data in view.datasets:
        parts.append(f"<section class='dataset robustness' data-dataset='{_e(data.dataset)}' "
                     f"id='robustness-{_e(data.dataset)}'><h3>{_e(data.dataset)}: robustness</h3>"
                     f"<p class='note'>{_e(_explanation(data).replace('`', ''))}</p>")
        header, rows = absent_rows(data)
        if rows:
            parts.append("<p>Missing modalities at test time: score, and in brackets the difference to the best "
                         "single remaining modality; <b>!</b> = below it.</p>")
            parts.append(_html_table(["method", *header], [[m, *cells] for m, cells in rows]))
            below = below_lines(data)
            parts.append(f"<p>Below the best single remaining modality ({len(below)}): "
                         f"{_e('; '.join(below).replace('`', ''))}.</p>" if below else
                         "<p>No fusion method falls below the best single remaining modality.</p>")
        for key, summary, title in (("random", data.random_summary, "Random missing modalities"),
                                    ("corrupt", data.corrupt_summary, "Corrupted media")):
            table = summary_rows(summary, "modality" if key == "random" else "condition")
            if table:
                first = "missing" if key == "random" else "corruption"
                parts.append(f"<h4>{title}</h4>" + _html_table([first, *SUMMARY_HEADER], table, left=2))
        parts.append("<div class='figs'>")
        parts += [f"<img src='{_e(path.relative_to(out_dir).as_posix())}' alt='{_e(data.dataset)}: {_e(name)} "
                  "robustness curves'>" for name, path in sorted(data.figures.items())]
        parts.append("</div></section>")
    cross = view.cross
    if cross is not None and not cross.matrix.empty:
        tests = sorted(cross.matrix["test_on"].unique())
        rows = []
        for (method, train_on), part in cross.matrix.groupby(["method", "train_on"], sort=True):
            cells = part.set_index("test_on")
            rows.append([method, train_on, *[f"{cells.loc[t, 'mean']:.3f} ± {cells.loc[t, 'std']:.3f}"
                                             if t in cells.index else "" for t in tests]])
        parts.append("<section id='cross-corpus'><h3>Cross-corpus</h3><p>UAR over the classes both corpora share "
                     "through the label map, mean ± std over the training corpus's fold models; train = test is the "
                     "training corpus's own test parts.</p>"
                     + _html_table(["method", "train on", *[f"test on {t}" for t in tests]], rows, left=2)
                     + "<ul>" + "".join(f"<li>{_e(p['train_on'])} → {_e(p['test_on'])}: {_e(pair_text(p))}</li>"
                                        for p in cross.pairs) + "</ul></section>")
    return [*parts, "</section>"]


def section(tracking_uri: str, experiment: str, table: pd.DataFrame | None, out_dir: Path,
            draw: bool = True) -> dict[str, list[str]]:
    """The robustness section as {"markdown": lines, "html": parts} for the leaderboard's pages; both empty when
    the experiment has no robustness results (the leaderboard is then unchanged)."""
    frame, records = read(tracking_uri, experiment)
    view = analyse(frame, records, table)
    if draw and not view.empty:
        figures(view, out_dir / "figures" / "robustness")
    return {"markdown": markdown_lines(view, out_dir), "html": html_parts(view, out_dir)}
