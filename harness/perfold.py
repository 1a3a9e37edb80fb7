"""Per-fold features for the search: stage 1 of a two-stage run gives every fold its own encoders, so every fold has
its own features, and a unit must read the ones of its fold (never another fold's: those encoders saw its test part).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods import MultimodalData


@dataclass(frozen=True)
class PerFoldData:
    """fold name -> the dataset's features for that fold; what the search holds where it holds one dataset.

    Every fold's data lists the same clips, classes and labels; only the fine-tuned modalities' features differ.
    """

    folds: dict[str, MultimodalData]

    def for_fold(self, fold: str) -> MultimodalData:
        if fold not in self.folds:
            raise KeyError(f"no per-fold features for fold {fold!r}; folds with features: {sorted(self.folds)}")
        return self.folds[fold]


def for_fold(data: MultimodalData | PerFoldData, fold: str) -> MultimodalData:
    """The features a unit of `fold` reads: its fold's when the data is per fold, else the dataset's only set."""
    return data.for_fold(fold) if isinstance(data, PerFoldData) else data
