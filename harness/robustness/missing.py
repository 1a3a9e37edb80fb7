"""Missing modalities at test time, through the availability masks every method honours.

Conditions (all on each fold's test part, scored by the fold's validated model):
  clean          nothing removed (the reference point of every curve);
  absent         one modality removed from every test clip, and (with three or more modalities) every pair;
  random         one modality removed from a fraction `rate` of the test clips (rates 0, 0.1, ..., 0.9), and
                 modality "any": each modality removed independently at `rate`, one random modality restored
                 where a clip would otherwise have none. Each seed draws one permutation of the test clips per
                 (fold, modality) and removes its first round(rate * n) clips, so the sets are nested: a clip
                 missing at 20 % is missing at 30 % too, which keeps a curve from wiggling with the draw.
Removal sets `available[m]` to False *and* zeroes the pooled row and the sequence (one zero frame, the placeholder
the pipeline uses for clips without a modality), so a method that wrongly read the arrays would see nothing of
the removed input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from harness.hashing import stable_hash
from harness.protocols import Fold
from harness.robustness.evaluate import check_models, score_condition, tidy
from methods import FusionMethod, MultimodalData

DEFAULT_RATES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
ANY = "any"


def remove(data: MultimodalData, drop: Mapping[str, np.ndarray]) -> MultimodalData:
    """A copy of `data` with modality m removed where drop[m] is True: masked unavailable and zeroed."""
    pooled, sequences, available = dict(data.pooled), dict(data.sequences), dict(data.available)
    for modality, mask in drop.items():
        mask = np.asarray(mask, dtype=bool)
        if modality not in data.modalities:
            raise KeyError(f"cannot remove {modality!r}: the data has modalities {data.modalities}")
        if mask.shape != (len(data),):
            raise ValueError(f"drop[{modality!r}] has shape {mask.shape}, expected ({len(data)},)")
        available[modality] = data.available[modality] & ~mask
        if modality in pooled:
            pooled[modality] = np.where(mask[:, None], np.float32(0), pooled[modality]).astype(np.float32)
        if modality in sequences:
            sequences[modality] = [np.zeros((1, s.shape[1]), np.float32) if gone else s
                                   for s, gone in zip(sequences[modality], mask, strict=True)]
    return MultimodalData(ids=list(data.ids), classes=list(data.classes), pooled=pooled, sequences=sequences,
                          available=available, labels=data.labels, groups=dict(data.groups))


def _permutation(n: int, seed: int, fold: str, modality: str) -> np.ndarray:
    """One seeded order of the test clips per (seed, fold, modality), independent of evaluation order."""
    entropy = int(stable_hash({"seed": seed, "fold": fold, "modality": modality})[:12], 16)
    return np.random.default_rng(entropy).permutation(n)


def random_drop(n: int, modalities: Sequence[str], modality: str, rate: float, seed: int, fold: str
                ) -> dict[str, np.ndarray]:
    """Masks removing `modality` (or, for "any", each modality independently) from round(rate * n) clips."""
    if not 0.0 <= rate < 1.0 + 1e-9:
        raise ValueError(f"missing rate must be in [0, 1], got {rate}")
    count = int(round(rate * n))
    targets = list(modalities) if modality == ANY else [modality]
    drop = {}
    for m in targets:
        mask = np.zeros(n, dtype=bool)
        mask[_permutation(n, seed, fold, m)[:count]] = True
        drop[m] = mask
    if modality == ANY and len(targets) > 1:
        stacked = np.stack([drop[m] for m in targets], axis=1)
        none_left = np.flatnonzero(stacked.all(axis=1))
        rng = np.random.default_rng(int(stable_hash({"seed": seed, "fold": fold, "restore": rate})[:12], 16))
        for clip, keep in zip(none_left, rng.integers(len(targets), size=len(none_left)), strict=True):
            drop[targets[keep]][clip] = False
    return drop


def absent_sets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every single modality, and every pair when at least three modalities exist (so one always remains)."""
    singles = [(m,) for m in modalities] if len(modalities) >= 2 else []
    pairs = list(combinations(modalities, 2)) if len(modalities) >= 3 else []
    return singles + pairs


def evaluate_missing(models: Mapping[str, FusionMethod], data: MultimodalData, folds: list[Fold],
                     rates: Sequence[float] = DEFAULT_RATES, seeds: Sequence[int] = DEFAULT_SEEDS,
                     modalities: Sequence[str] | None = None, where: str = "missing") -> pd.DataFrame:
    """Tidy scores (condition, modality, rate, seed, fold, metric, value) of every missing-modality condition.

    modalities: which of the data's modalities to remove (default: those the data has). The clean condition
    has modality "" and rate 0; absent sets have rate 1 and modality "audio" or "audio+video"; random ones the
    modality (or "any") and its rate, once per seed.
    """
    check_models(models, folds, where)
    used = list(modalities or data.modalities)
    rows = score_condition(models, data, folds, lambda test, fold: test,
                           {"condition": "clean", "modality": "", "rate": 0.0, "seed": -1})
    for removed in absent_sets(used):
        rows += score_condition(
            models, data, folds,
            lambda test, fold, removed=removed: remove(test, {m: np.ones(len(test), bool) for m in removed}),
            {"condition": "absent", "modality": "+".join(removed), "rate": 1.0, "seed": -1})
    targets = used + ([ANY] if len(used) >= 2 else [])
    for modality in targets:
        for rate in rates:
            for seed in seeds:
                rows += score_condition(
                    models, data, folds,
                    lambda test, fold, m=modality, r=rate, s=seed: remove(
                        test, random_drop(len(test), used, m, r, s, fold.name)),
                    {"condition": "random", "modality": modality, "rate": float(rate), "seed": int(seed)})
    return tidy(rows)
