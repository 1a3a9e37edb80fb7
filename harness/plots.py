"""Figure primitives shared by MLflow artifacts and the report (matplotlib, headless, deterministic files).

Why here and not in `harness.report.figures`: `harness.track` draws each result's confusion matrix when it logs
the result (layer 3), below the report (layer 4), so the matplotlib set-up, the deterministic save and the
confusion figure live in this leaf of layer 3; the leaderboard's own figures build on them.

Every figure is written deterministically (fixed SVG hash salt, no date in the metadata), so rendering the same
MLflow store twice gives the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend, with a fixed SVG hash salt (imported only when drawing)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "mer-harness"
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Write a figure atomically (PNG or SVG by suffix) without a creation date."""
    from harness import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    kind = path.suffix.lstrip(".")
    metadata = {"Date": None} if kind == "svg" else {}
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=kind, metadata=metadata)
    return path


def confusion_figure(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (each row = the true class, sums to 1), with counts in each cell."""
    plt = pyplot()
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = 1.2 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            ax.text(j, i, f"{normalised[i, j]:.2f}\n({int(matrix[i, j])})", ha="center", va="center",
                    fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save(fig, path, dpi=150)  # readable when the report opens it full size
    plt.close(fig)
    return path
