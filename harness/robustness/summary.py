"""Robustness curves and their summary numbers, from the tidy frames the evaluations return.

Definitions (MultiBench: Liang et al., "MultiBench: Multiscale Benchmarks for Multimodal Representation
Learning", NeurIPS 2021 Datasets and Benchmarks track, section 3 "Robustness"; the formulas below are the ones
its `eval_scripts/robustness.py` computes):
  relative robustness   the area under the curve of the metric against the imperfection level, levels spread
                        evenly over [0, 1] (MultiBench: trapezoid rule with a step of 0.1). Higher is better;
                        it mixes clean accuracy and the rate of decay.
  effective robustness  the sum over levels of f(level) - (b(level) + f(0) - b(0)): the method's curve f against
                        a baseline curve b shifted to the method's clean score, so only the decay counts.
                        MultiBench's baseline is late fusion; the harness uses early concatenation (issue 13)
                        and names the baseline in every table.
MultiBench also min-max normalises both numbers across the methods of a table; the harness reports them raw,
so a number does not change when a method is added.
Intervals are Student-t 95 % intervals over the (fold, seed) scores of a level, from scipy.stats.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

CURVE_KEYS = ["dataset", "method", "condition", "modality"]


def interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; a single value (or no spread) is its own interval."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.allclose(values, values[0]):
        return float(values.mean()), float(values.mean())
    low, high = stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(low), float(high)


def curves(frame: pd.DataFrame, metric: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Mean, spread and 95 % interval of `metric` per curve and level (`rate`), over folds and seeds.

    A curve's first point is the clean score, so random-missing and corruption curves start where the clean
    result does (rows with condition "clean" are attached to every curve of the same method and dataset).
    """
    keys = [k for k in (keys or CURVE_KEYS) if k in frame.columns]
    scores = frame[frame["metric"] == metric]
    group_keys = [k for k in keys if k not in ("condition", "modality")]
    clean = scores[scores["condition"] == "clean"]
    parts = []
    for curve_key, rows in scores[~scores["condition"].isin(["clean", "absent"])].groupby(keys, sort=True):
        curve_id = dict(zip(keys, curve_key if isinstance(curve_key, tuple) else (curve_key,), strict=True))
        matching = clean
        for k in group_keys:
            matching = matching[matching[k] == curve_id[k]]
        if not (rows["rate"] == 0).any():
            rows = pd.concat([matching.assign(condition=curve_id["condition"], modality=curve_id["modality"]),
                              rows])
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=[*keys, "rate", "mean", "std", "n", "low", "high"])
    out = []
    for (*key, rate), rows in pd.concat(parts).groupby([*keys, "rate"], sort=True):
        low, high = interval(rows["value"].to_numpy())
        out.append({**dict(zip(keys, key, strict=True)), "rate": float(rate), "mean": float(rows["value"].mean()),
                    "std": float(rows["value"].std(ddof=1)) if len(rows) > 1 else 0.0, "n": len(rows),
                    "low": low, "high": high})
    return pd.DataFrame(out)


def relative_robustness(levels: np.ndarray, values: np.ndarray) -> float:
    """Area under the curve (trapezoid rule, numpy) over levels in [0, 1]."""
    return float(np.trapezoid(np.asarray(values, float), np.asarray(levels, float)))


def effective_robustness(values: np.ndarray, baseline: np.ndarray) -> float:
    """sum(f - (b + f[0] - b[0])) over the levels both curves share (MultiBench's effective robustness)."""
    f, b = np.asarray(values, float), np.asarray(baseline, float)
    if f.shape != b.shape:
        raise ValueError(f"curve and baseline have {f.shape} and {b.shape} levels; they must share levels")
    return float(np.sum(f - (b + f[0] - b[0])))


def robustness_summary(frame: pd.DataFrame, metric: str, baseline_method: str | None) -> pd.DataFrame:
    """Per (dataset, method, condition, modality): clean score, score at the worst level, relative robustness and
    effective robustness against `baseline_method`'s curve of the same condition (NaN where it has none)."""
    table = curves(frame, metric)
    rows = []
    curve_keys = [k for k in CURVE_KEYS if k in table.columns]
    for key, curve in table.groupby(curve_keys, sort=True):
        ident = dict(zip(curve_keys, key, strict=True))
        curve = curve.sort_values("rate")
        effective = float("nan")
        if baseline_method is not None:
            base = table
            for k, v in {**ident, "method": baseline_method}.items():
                base = base[base[k] == v]
            base = base.set_index("rate")["mean"]
            if set(curve["rate"]) <= set(base.index):
                effective = effective_robustness(curve["mean"].to_numpy(), base.loc[curve["rate"]].to_numpy())
        rows.append({**ident, "metric": metric, "clean": float(curve["mean"].iloc[0]),
                     "worst": float(curve["mean"].iloc[-1]),
                     "relative_robustness": relative_robustness(curve["rate"].to_numpy(), curve["mean"].to_numpy()),
                     "effective_robustness": effective, "baseline": baseline_method or ""})
    return pd.DataFrame(rows)


def drop_against_unimodal(frame: pd.DataFrame, metric: str, unimodal: Mapping[str, str]) -> pd.DataFrame:
    """For each method's `absent` conditions: its score, the best clean unimodal score on a remaining modality,
    and the drop (score - that baseline). `unimodal` maps unimodal method name -> its modality.

    below_baseline is True where the fusion method without a modality does worse than the best single remaining
    modality alone: a finding for the report (the method should have fallen back to what it still has).
    """
    scores = frame[frame["metric"] == metric]
    clean = (scores[scores["condition"] == "clean"].groupby(["dataset", "method"])["value"].mean())
    rows = []
    for (dataset, method, removed), part in scores[scores["condition"] == "absent"].groupby(
            ["dataset", "method", "modality"], sort=True):
        if method in unimodal:
            continue
        present = set(scores[(scores["dataset"] == dataset)]["modality"].dropna().astype(str)) - {"", "any"}
        remaining = {m for m in present if "+" not in m} - set(removed.split("+"))
        candidates = {name: clean.get((dataset, name)) for name, m in unimodal.items() if m in remaining}
        candidates = {k: v for k, v in candidates.items() if v is not None and not np.isnan(v)}
        value = float(part["value"].mean())
        best_name, best = max(candidates.items(), key=lambda kv: kv[1]) if candidates else ("", float("nan"))
        rows.append({"dataset": dataset, "method": method, "absent": removed, "metric": metric, "score": value,
                     "best_unimodal": best_name, "best_unimodal_score": best, "drop": value - best,
                     "below_baseline": bool(value < best) if candidates else False})
    return pd.DataFrame(rows)
