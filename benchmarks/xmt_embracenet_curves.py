"""Learning curves of `xmt-embracenet` (Xie et al. 2021): why it sits near chance on the built-in corpus.

For one fold of a corpus's protocol, trains the method under several settings and records, per epoch, the
training and validation loss and UAR (the training loop's own early stopping is switched off by a patience as
long as the run, so the whole curve is seen). Settings: the registered defaults (SGD lr 0.05, momentum 0.9),
the paper preset's optimiser (plain SGD lr 1e-3), the two ends of the search's learning-rate range, each with
and without EmbraceNet's stochastic modality selection (`embrace=False`: the docked vectors' expectation in
training too), and with the cross-modal outputs summed instead of multiplied (`combine="sum"`).

    .venv/bin/python benchmarks/xmt_embracenet_curves.py --dataset synthetic --epochs 30 \
        --workspace /tmp/claims/ws --out benchmarks/xmt_embracenet_synthetic.json
    HARNESS_DATA_EMODB=../shared/data/emodb .venv/bin/python benchmarks/xmt_embracenet_curves.py \
        --dataset emodb --epochs 30 --workspace /tmp/claims/ws --out benchmarks/xmt_embracenet_emodb.json

The output JSON holds every curve; `docs/methods.md` (xmt-embracenet) summarises them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

SETTINGS: dict[str, dict[str, Any]] = {
    "default (sgd 0.05 m0.9)": {},
    "default, no embrace": {"embrace": False},
    "default, sum not product": {"combine": "sum"},
    "paper optimiser (sgd 1e-3 m0)": {"lr": 1e-3, "momentum": 0.0},
    "paper optimiser, no embrace": {"lr": 1e-3, "momentum": 0.0, "embrace": False},
    "search low (sgd 1e-3 m0.9)": {"lr": 1e-3, "momentum": 0.9},
    "search high (sgd 0.1 m0.9)": {"lr": 0.1, "momentum": 0.9},
    "adamw 1e-3": {"optimizer": "adamw", "lr": 1e-3},
}


def curves(dataset: str, epochs: int, fold_index: int, workspace: Path, only: list[str] | None) -> dict[str, Any]:
    import numpy as np
    import torch

    from harness.config import Settings
    from harness.datasets import get_dataset
    from harness.prepare import prepare_dataset
    from methods import get_method
    from methods.neural.training import unweighted_average_recall

    torch.set_num_threads(1)
    settings = Settings.from_env(workspace=workspace, tracking_uri=f"sqlite:///{workspace}/mlruns.db")
    prepared = prepare_dataset(settings, get_dataset(dataset), need_sequences=True)
    fold = prepared.folds[fold_index]
    index = {clip: i for i, clip in enumerate(prepared.data.ids)}
    train, val = (prepared.data.subset([index[c] for c in part]) for part in (fold.train, fold.val))
    out: dict[str, Any] = {"dataset": dataset, "fold": fold.name, "n_train": len(train), "n_val": len(val),
                           "modalities": sorted(train.sequences), "features": prepared.feature_keys, "runs": {}}
    for name, params in SETTINGS.items():
        if only and name not in only:
            continue
        method = get_method("xmt-embracenet").build(**{**params, "max_epochs": epochs, "patience": epochs})
        rows: list[dict[str, float]] = []

        def score(part: Any, method: Any = method) -> tuple[float, float]:
            proba = method.predict_proba(part)
            y = np.asarray(part.labels)
            loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))))
            return loss, unweighted_average_recall(y, proba.argmax(1))

        def on_epoch(epoch: int, metrics: dict[str, float], rows: list = rows, method: Any = method) -> None:
            train_loss, train_uar = score(train, method)
            method.network_.train()  # predict_proba left it in eval mode; the loop's next epoch trains
            rows.append({"epoch": epoch, "train_loss": round(train_loss, 4), "train_uar": round(train_uar, 4),
                         "val_loss": round(metrics["val_loss"], 4), "val_uar": round(metrics["val_uar"], 4)})

        method.epoch_callback = on_epoch
        began = time.perf_counter()
        method.fit(train, val)
        best = max(rows, key=lambda r: r["val_uar"])
        out["runs"][name] = {"params": params, "seconds": round(time.perf_counter() - began, 1),
                             "best_epoch": best["epoch"], "best_val_uar": best["val_uar"], "curve": rows}
        print(f"{name:34s} best val UAR {best['val_uar']:.3f} (epoch {best['epoch']}), last train UAR "
              f"{rows[-1]['train_uar']:.3f} loss {rows[-1]['train_loss']:.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/xmt-curves"))
    parser.add_argument("--only", action="append", help="run only this setting (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = curves(args.dataset, args.epochs, args.fold, args.workspace, args.only)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
