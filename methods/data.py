"""The one data container every method consumes.

`methods/` must stay importable without Ray, MLflow or the harness (so a method can be used in a notebook on
its own), therefore the container lives here and the harness builds it from the feature store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MultimodalData:
    """Features of a set of clips, per modality, with explicit availability.

    pooled:    modality -> float32 array [N, D] (one vector per clip; rows of unavailable clips are zeros and
               must be ignored through `available`, never read as data).
    sequences: modality -> list of N float32 arrays [T_i, D] (only filled for methods that need sequences).
    available: modality -> bool array [N]; False where the clip has no usable input of that modality
               (missing file, no face detected, failed decode).
    labels:    int array [N] of class indices into `classes`, or None for unlabelled data.
    groups:    optional per-clip tags (for example the speaker) that some methods use for mining or sampling.
    """

    ids: list[str]
    classes: list[str]
    pooled: dict[str, np.ndarray] = field(default_factory=dict)
    sequences: dict[str, list[np.ndarray]] = field(default_factory=dict)
    available: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name, array in self.pooled.items():
            if array.shape[0] != n:
                raise ValueError(f"pooled[{name!r}] has {array.shape[0]} rows for {n} clips")
            self.available.setdefault(name, np.ones(n, dtype=bool))
        for name, seqs in self.sequences.items():
            if len(seqs) != n:
                raise ValueError(f"sequences[{name!r}] has {len(seqs)} entries for {n} clips")
            self.available.setdefault(name, np.ones(n, dtype=bool))
        for name, mask in self.available.items():
            if mask.shape != (n,):
                raise ValueError(f"available[{name!r}] has shape {mask.shape}, expected ({n},)")
        if self.labels is not None and self.labels.shape != (n,):
            raise ValueError(f"labels has shape {self.labels.shape}, expected ({n},)")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def modalities(self) -> list[str]:
        return sorted(set(self.pooled) | set(self.sequences))

    def subset(self, index: np.ndarray | list[int]) -> MultimodalData:
        """Rows `index` of every field, in that order."""
        idx = np.asarray(index, dtype=int)
        return MultimodalData(
            ids=[self.ids[i] for i in idx],
            classes=list(self.classes),
            pooled={m: a[idx] for m, a in self.pooled.items()},
            sequences={m: [s[i] for i in idx] for m, s in self.sequences.items()},
            available={m: a[idx] for m, a in self.available.items()},
            labels=None if self.labels is None else self.labels[idx],
            groups={k: v[idx] for k, v in self.groups.items()},
        )

    def select(self, ids: list[str]) -> MultimodalData:
        """The clips named by `ids`, in that order; unknown ids are an error, not a silent drop."""
        position = {clip_id: i for i, clip_id in enumerate(self.ids)}
        missing = [clip_id for clip_id in ids if clip_id not in position]
        if missing:
            raise KeyError(f"{len(missing)} clip ids are not in this data, e.g. {missing[:3]}")
        return self.subset([position[clip_id] for clip_id in ids])
