"""Fit time of the classical SVM at 10k clips: the exact solver (6 RBF SVC fits) vs the scalable one.

Random but separable data shaped like MELD's training split under MiniLM (10,000 x 384, 7 classes), plus 2,000
held-out clips to show that the faster solver does not lose accuracy. Both solvers go through
`methods.classifiers.ScaledClassifier` exactly as a `text-svm` trial does (scaler, balanced class weights,
sigmoid calibration); the exact solver is forced by raising `SVM_EXACT_MAX_SAMPLES`.

    .venv/bin/python benchmarks/svm_scaling.py [--n-train 10000] [--out benchmarks/svm_scaling.md]

One process, one thread (OMP/BLAS threads pinned to 1), so the figures are per core.

`--meld STORE` instead runs one real `text-svm` trial (the registered method, default C=1, RBF) on MELD's
official split: MiniLM pooled vectors of train_sent_emo.csv (9,989 clips, fit) and dev_sent_emo.csv (1,109,
scored), read from a feature store that `benchmarks/text_batching.py --keep STORE` filled; the scalable solver
on all training clips beside today's exact solver on a stratified `--subsample` of them (default 2,000):

    .venv/bin/python benchmarks/svm_scaling.py --meld /tmp/meld_store [--subsample 2000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def dataset(n_train: int, n_test: int, dim: int = 384, n_classes: int = 7, seed: int = 0):
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n_train + n_test, n_features=dim, n_informative=48, n_redundant=48,
                               n_classes=n_classes, n_clusters_per_class=2, class_sep=1.5, flip_y=0.02,
                               weights=None, random_state=seed)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def run(solver: str, x, y, x_test, y_test, kernel: str, C: float) -> dict[str, float | str]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    from methods import classifiers

    saved = classifiers.SVM_EXACT_MAX_SAMPLES
    classifiers.SVM_EXACT_MAX_SAMPLES = 10**9 if solver == "exact" else 0
    try:
        started = time.perf_counter()
        model = classifiers.ScaledClassifier("svm", int(y.max()) + 1, seed=0, C=C, kernel=kernel).fit(x, y)
        seconds = time.perf_counter() - started
    finally:
        classifiers.SVM_EXACT_MAX_SAMPLES = saved
    proba = model.predict_proba(x_test)
    predicted = proba.argmax(axis=1)
    return {"solver": model.solver_, "kernel": kernel, "C": C, "n_train": len(y), "fit_s": seconds,
            "accuracy": accuracy_score(y_test, predicted),
            "weighted_f1": f1_score(y_test, predicted, average="weighted"),
            "log_loss": log_loss(y_test, proba, labels=list(range(proba.shape[1])))}


def meld_trial(store_root: Path, subsample: int, seed: int = 0) -> list[dict[str, float | str]]:
    """One `text-svm` trial on MELD train -> dev with the full training split, and one with the exact solver on a
    stratified subsample; each row: solver, training clips, fit seconds, dev weighted-F1 / accuracy / UAR."""
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    from harness.datasets import get_dataset
    from harness.features.runner import load_features
    from harness.features.store import FeatureStore
    from methods import MultimodalData, get_method

    meld = Path(__file__).resolve().parents[2] / "shared" / "data" / "meld"
    manifest = get_dataset("meld").scan(meld)
    stored, _ = load_features(manifest, "minilm", FeatureStore(str(store_root)))
    index = stored.index()
    table = manifest.table.set_index("clip_id")
    classes = list(manifest.classes)

    def part(split: str, ids: list[str] | None = None) -> MultimodalData:
        chosen = ids if ids is not None else [c for c in table.index[table["split"] == split] if c in index]
        pooled = stored.pooled[[index[c] for c in chosen]]
        labels = np.array([classes.index(table.at[c, "label"]) for c in chosen])
        return MultimodalData(ids=chosen, classes=classes, pooled={"text": pooled}, labels=labels)

    train, dev = part("train"), part("dev")
    small_ids, _ = train_test_split(train.ids, train_size=subsample, stratify=train.labels, random_state=seed)
    rows = []
    for label, data in (("all training clips", train), (f"stratified subsample of {subsample}", part("", small_ids))):
        method = get_method("text-svm").build(seed=seed)
        started = time.perf_counter()
        method.fit(data, None)
        seconds = time.perf_counter() - started
        predicted = method.predict(dev)
        rows.append({"train": label, "n_train": len(data.ids), "solver": method.model_.solver_,
                     "svm_holdout": method.fit_notes().get("svm_holdout"), "fit_s": seconds,
                     "weighted_f1": f1_score(dev.labels, predicted, average="weighted"),
                     "accuracy": accuracy_score(dev.labels, predicted),
                     "uar": balanced_accuracy_score(dev.labels, predicted)})
        print(rows[-1], flush=True)
    return rows


def meld_report(rows: list[dict[str, float | str]], n_dev: int = 1109) -> str:
    lines = [f"MELD official split, MiniLM pooled 384-d, `text-svm` defaults (C=1, RBF, balanced class weights), "
             f"scored on dev ({n_dev} utterances); one process, one thread; machine: "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared)", "",
             "| training clips | solver | fit s | dev weighted-F1 | dev accuracy | dev UAR |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['n_train']} ({row['train']}) | {row['solver']} | {row['fit_s']:.1f} | "
                     f"{row['weighted_f1']:.3f} | {row['accuracy']:.3f} | {row['uar']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meld", type=Path, default=None, help="a feature store with MELD's MiniLM features")
    parser.add_argument("--subsample", type=int, default=2000)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--kernels", nargs="+", default=["rbf", "linear"])
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--solvers", nargs="+", default=["scalable", "exact"])
    args = parser.parse_args()
    if args.meld is not None:
        text = meld_report(meld_trial(args.meld, args.subsample))
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return
    x, y, x_test, y_test = dataset(args.n_train, args.n_test)
    rows = []
    for kernel in args.kernels:
        for solver in args.solvers:
            row = run(solver, x, y, x_test, y_test, kernel, C=args.C)
            print(row, flush=True)
            rows.append(row)
    lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), "
             f"1 thread; data: {args.n_train} train + {args.n_test} held-out, 384-d, 7 classes "
             f"(sklearn make_classification, seed 0); C={args.C}", "",
             "| kernel | solver | fit s | held-out accuracy | weighted-F1 | log-loss |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['kernel']} | {row['solver']} | {row['fit_s']:.1f} | {row['accuracy']:.3f} | "
                     f"{row['weighted_f1']:.3f} | {row['log_loss']:.3f} |")
    by = {(r["kernel"], r["solver"] == "svc"): r["fit_s"] for r in rows}
    for kernel in args.kernels:
        if (kernel, True) in by and (kernel, False) in by:
            lines.append(f"\n{kernel}: the scalable solver fits {by[(kernel, True)] / by[(kernel, False)]:.1f}x faster")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
