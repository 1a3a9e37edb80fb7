"""Calibration of the leaderboard's verdicts on simulated tables whose truth is planted (issue 18).

Each simulated table is one corpus under a speaker-independent protocol: G groups (speakers, sessions, dialogues)
of `--clips` clips, 4 balanced classes, M methods; each group is its own fold up to 10 groups (leave one group out,
as EmoDB's LOSO), else the groups are dealt round-robin into 5 folds. Method m
is right on a clip of group g with probability

    p(m, g) = 0.60 - delta(m) + u(g) + v(m, g),    u(g) ~ N(0, 0.08) (a group's difficulty, shared),
                                                   v(m, g) ~ N(0, 0.03) (method x group interaction),

and methods' errors are correlated within a clip (a shared clip difficulty, rho = 0.6), as real methods' errors are.
delta(m) = 0 for every method but the last, whose delta is the planted difference. The interaction v(m, g) is
why clips cannot be treated as independent: two equal methods still differ on the speakers at hand, and only a
test over groups generalises to new speakers.

The table is then decided exactly as `harness report` decides it (`harness.stats.compare_confusions`:
delete-one-group jackknife t-tests of every pair of methods, Holm over all pairs, TOST against the ROPE, each
method's verdict read from its pair with the best), and three figures are counted over `--seeds` seeds:

  FWER        share of tables in which any method whose truth equals the best's is called worse or better
              (the family-wise false-positive rate; Holm holds it <= alpha when the tests are valid);
  power       share of tables in which the planted method (delta > 0) is called worse;
  equivalent  share of comparisons between equal methods called "practically equivalent" (truth 0).

Usage: .venv/bin/python benchmarks/verdicts.py [--seeds 200] [--out benchmarks/verdicts.md]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import stats  # noqa: E402

CLASSES = 4
BASE = 0.60
GROUP_SD, INTERACTION_SD, CLIP_RHO = 0.08, 0.03, 0.6


@dataclass(frozen=True)
class Design:
    groups: int
    methods: int
    delta: float
    clips: int = 30


def simulate(design: Design, rng: np.random.Generator) -> dict[str, stats.GroupedConfusions]:
    """One table's confusion counts per method (`m00`, `m01`, ...; the last is the planted one)."""
    from scipy.stats import norm

    g, m, n = design.groups, design.methods, design.clips
    folds = g if g <= 10 else 5  # leave one group out (EmoDB's LOSO), or 5 folds of whole groups
    delta = np.zeros(m)
    delta[-1] = design.delta
    p = BASE - delta[:, None] + rng.normal(0, GROUP_SD, g)[None, :] + rng.normal(0, INTERACTION_SD, (m, g))
    threshold = norm.ppf(np.clip(p, 0.01, 0.99))[:, :, None]
    latent = CLIP_RHO * rng.normal(size=(1, g, n)) + np.sqrt(1 - CLIP_RHO ** 2) * rng.normal(size=(m, g, n))
    right = latent < threshold
    truth = np.broadcast_to((np.arange(g)[:, None] + np.arange(n)[None, :]) % CLASSES, (m, g, n))
    wrong = (truth + rng.integers(1, CLASSES, size=(m, g, n))) % CLASSES
    guess = np.where(right, truth, wrong)
    counts = np.zeros((m, g, folds, CLASSES, CLASSES), dtype=np.int64)
    method_index, group_index, _ = np.indices((m, g, n))
    np.add.at(counts, (method_index, group_index, group_index % folds, truth, guess), 1)
    names = [f"g{i:03d}" for i in range(g)]
    return {f"m{k:02d}": stats.GroupedConfusions(names, [f"f{f}" for f in range(folds)], counts[k]) for k in range(m)}


def calibrate(design: Design, seeds: int, alpha: float = stats.ALPHA) -> dict[str, float]:
    """FWER, power and the equivalence rate of one design over `seeds` simulated tables, each decided by
    `harness.stats.compare_confusions` exactly as the report decides a table."""
    false_tables, found, equivalent, equal_comparisons = 0, 0, 0, 0
    planted = f"m{design.methods - 1:02d}"
    for seed in range(seeds):
        rng = np.random.default_rng([design.groups, design.methods, int(design.delta * 1000), seed])
        table = stats.compare_confusions(simulate(design, rng), "uar", alpha=alpha).iloc[1:]
        top_is_planted = design.delta > 0 and planted not in set(table["method"])
        truth_equal = (table["method"] != planted).to_numpy() if design.delta > 0 else np.ones(len(table), bool)
        if top_is_planted:  # the worse method came out on top: every verdict against it is about a planted gap
            truth_equal = np.zeros(len(table), bool)
        separated = table["verdict"].isin([stats.WORSE, stats.BETTER]).to_numpy()
        false_tables += bool((separated & truth_equal).any())
        equivalent += int((table["verdict"].to_numpy()[truth_equal] == stats.EQUIVALENT).sum())
        equal_comparisons += int(truth_equal.sum())
        if design.delta > 0:
            found += bool(((table["method"] == planted) & (table["verdict"] == stats.WORSE)).any())
    return {"fwer": false_tables / seeds, "power": found / seeds if design.delta > 0 else np.nan,
            "equivalent": equivalent / max(1, equal_comparisons)}


def run(groups: list[int], methods: list[int], deltas: list[float], seeds: int, clips: int) -> pd.DataFrame:
    rows = []
    for g in groups:
        for m in methods:
            for delta in deltas:
                started = time.perf_counter()
                result = calibrate(Design(g, m, delta, clips), seeds)
                rows.append({"groups": g, "methods": m, "delta": delta, **result,
                             "seconds": time.perf_counter() - started})
                print(f"groups {g:3d} methods {m:2d} delta {delta:.2f}: FWER {result['fwer']:.3f} power "
                      f"{result['power']:.3f} equivalent {result['equivalent']:.3f}", flush=True)
    return pd.DataFrame(rows)


def _pct(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.3f}"


def markdown(table: pd.DataFrame, seeds: int, clips: int, seconds: float) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = ["# Calibration of the leaderboard's verdicts", "",
             "Output of `.venv/bin/python benchmarks/verdicts.py` (the script's docstring gives the simulation). "
             f"{seeds} seeds per cell, {clips} clips per group, 4 classes, folds = groups up to 10, else 5, alpha = "
             f"{stats.ALPHA}, ROPE = ±{stats.ROPE} UAR; tests: delete-one-group jackknife t (df = groups - 1) "
             "of every pair of the table's methods, Holm over all pairs, TOST for equivalence "
             "(`harness/stats.py`, as `harness report` runs them).", "",
             f"Machine: {platform.machine()} VM with {os.cpu_count()} CPU cores shared with 6 other engineers' work "
             f"(load average {load:.1f} at the end), Python {platform.python_version()}; {seconds:.0f} s in all.", "",
             "## False positives: equal methods (planted difference 0)", "",
             "FWER = share of tables in which any pair of equal methods is called different (must be <= alpha = "
             f"{stats.ALPHA}; with {seeds} seeds a true rate of 0.05 is observed above 0.08 with probability < 0.01). "
             "Equivalent = share of comparisons between equal methods called practically equivalent.", "",
             "| groups | methods | FWER | equivalent at truth 0 |", "|---|---|---|---|"]
    null = table[table["delta"] == 0]
    lines += [f"| {r.groups} | {r.methods} | {_pct(r.fwer)} | {_pct(r.equivalent)} |" for r in null.itertuples()]
    lines += ["", "## Power: one method worse by the planted difference", "",
              "Power = share of tables in which the planted method is called worse than the best (with all the "
              "table's comparisons Holm-corrected). FWER here counts false verdicts among the other, equal methods.",
              ""]
    deltas = sorted(d for d in table["delta"].unique() if d > 0)
    lines += ["| groups | methods | " + " | ".join(f"power at {d:g}" for d in deltas) + " | FWER (others) |",
              "|---" * (len(deltas) + 3) + "|"]
    for (g, m), part in table[table["delta"] > 0].groupby(["groups", "methods"], sort=True):
        by_delta = part.set_index("delta")
        lines.append(f"| {g} | {m} | " + " | ".join(_pct(by_delta.loc[d, "power"]) for d in deltas)
                     + f" | {_pct(part['fwer'].max())} |")
    lines += ["", "Per-cell wall time (s): " + ", ".join(
        f"{r.groups}g/{r.methods}m/{r.delta:g}: {r.seconds:.1f}" for r in table.itertuples()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--clips", type=int, default=30, help="clips per group")
    parser.add_argument("--groups", type=int, nargs="+", default=[5, 8, 10, 24, 91])
    parser.add_argument("--methods", type=int, nargs="+", default=[4, 36])
    parser.add_argument("--deltas", type=float, nargs="+", default=[0.0, 0.01, 0.05, 0.1, 0.3])
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown tables here")
    args = parser.parse_args()
    import statsmodels.stats.multitest  # noqa: F401 (imported before the freeze below)

    gc.freeze()  # statsmodels' Holm runs gc.collect() on every call: keep the imported modules out of its sweep
    started = time.perf_counter()
    table = run(args.groups, args.methods, args.deltas, args.seeds, args.clips)
    text = markdown(table, args.seeds, args.clips, time.perf_counter() - started)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
