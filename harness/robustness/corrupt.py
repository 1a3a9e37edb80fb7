"""Corrupted test media: extract each corruption level of one modality, swap it into the test parts, score.

Extraction goes through `harness.features.runner.extract` with the `corrupted` wrapper extractor (on Ray, cached
in the feature store per corruption, level and seed), for the clips that are in some fold's test part only:
training and validation media are never corrupted, and the fold models are the validated clean ones.
A clip whose corrupted extraction failed (e.g. no face found in a blurred frame) becomes unavailable for that
modality, as a clean failure would: the method's own missing-modality rule applies, and the count is reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.features.extractors.corrupted import get_corruption
from harness.features.store import FeatureStore, StoredFeatures
from harness.manifest import Manifest
from harness.protocols import Fold
from harness.robustness.evaluate import check_models, score_condition, tidy
from methods import FusionMethod, MultimodalData

CORRUPT_COLUMNS = ["condition", "modality", "rate", "level", "seed", "fold", "metric", "value"]
BABBLE_SOURCES = 16


def tested_ids(folds: list[Fold]) -> list[str]:
    """Every clip that some fold tests, in first-seen order."""
    return list(dict.fromkeys(clip for fold in folds for clip in fold.test))


def babble_sources(manifest: Manifest, seed: int, n: int = BABBLE_SOURCES) -> list[str]:
    """Audio files of up to `n` clips of the corpus, seeded: the talkers babble is mixed from (a clip is never
    mixed with itself; see `CorruptedExtractor.noise_bank`)."""
    paths = [str(p) for v in manifest.table["audio_path"] if (p := manifest.resolve(v))]
    if not paths:
        raise ValueError(f"{manifest.dataset}: babble needs audio files, and the manifest has none; use white-noise "
                         "or pass noise_paths with a noise corpus")
    chosen = np.random.default_rng(seed).permutation(len(paths))[:n]
    return sorted(paths[i] for i in chosen)


def corruption_config(base: str, base_config: Mapping[str, Any] | None, corruption: str, level: float, seed: int,
                      noise_paths: Sequence[str] = ()) -> dict[str, Any]:
    return {"base": base, "base_config": dict(base_config or {}), "corruption": corruption, "level": float(level),
            "seed": int(seed), "noise_paths": list(noise_paths)}


def extract_corrupted(manifest: Manifest, folds: list[Fold], store: FeatureStore, base: str,
                      base_config: Mapping[str, Any] | None, corruption: str, levels: Sequence[float], seed: int,
                      executor: str = "ray", verbose: bool = True) -> dict[float, tuple[StoredFeatures, str]]:
    """level -> (stored corrupted features of the test clips, cache key); each level extracted once, then cached."""
    from harness.features.runner import extract

    wanted = set(tested_ids(folds))
    subset = Manifest(manifest.dataset, manifest.root, manifest.classes,
                      manifest.table[manifest.table["clip_id"].isin(wanted)].copy())
    noise = babble_sources(manifest, seed) if corruption == "babble" else ()
    out = {}
    for level in levels:
        config = corruption_config(base, base_config, corruption, level, seed, noise)
        result = extract(subset, "corrupted", store, config, executor=executor, verbose=verbose)
        out[float(level)] = (result.stored, result.key)
    return out


def with_features(data: MultimodalData, modality: str, stored: StoredFeatures) -> MultimodalData:
    """`data` with `modality` replaced by `stored` (clips without a stored row become unavailable, zeroed)."""
    position = stored.index()
    rows = np.array([position.get(clip_id, -1) for clip_id in data.ids])
    present = rows >= 0
    if stored.pooled.shape[1] != data.pooled[modality].shape[1]:
        raise ValueError(f"corrupted {modality} features have {stored.pooled.shape[1]} dimensions, the clean ones "
                         f"{data.pooled[modality].shape[1]}: the wrapped extractor must be the clean one")
    pooled = dict(data.pooled)
    pooled[modality] = np.zeros_like(data.pooled[modality])
    pooled[modality][present] = stored.pooled[rows[present]]
    sequences = dict(data.sequences)
    if modality in sequences:
        width = stored.pooled.shape[1] if not stored.sequences else stored.sequences[0].shape[1]
        sequences[modality] = [stored.sequences[r] if r >= 0 else np.zeros((1, width), np.float32) for r in rows]
    available = dict(data.available)
    available[modality] = data.available[modality] & present
    return MultimodalData(ids=list(data.ids), classes=list(data.classes), pooled=pooled, sequences=sequences,
                          available=available, labels=data.labels, groups=dict(data.groups))


def evaluate_corrupted(models: Mapping[str, FusionMethod], data: MultimodalData, folds: list[Fold], modality: str,
                       corruption: str, features: Mapping[float, StoredFeatures], seed: int,
                       where: str = "corrupt") -> pd.DataFrame:
    """Tidy scores (condition, modality, rate, level, seed, fold, metric, value) of the clean test parts and of each
    level, mildest first. `rate` is the level's position on [0, 1] (clean 0, the most severe 1), the x axis of
    the robustness curve and of relative robustness."""
    check_models(models, folds, where)
    if modality not in data.modalities:
        raise KeyError(f"{where}: the data has no {modality} modality ({data.modalities})")
    defined = get_corruption(corruption)
    order = [lv for lv in defined.levels if lv in features] + sorted(set(features) - set(defined.levels))
    condition = f"corrupt:{corruption}"
    rows = score_condition(models, data, folds, lambda test, fold: test,
                           {"condition": condition, "modality": modality, "rate": 0.0, "level": float("nan"),
                            "seed": seed})
    for position, level in enumerate(order, start=1):
        swapped = with_features(data, modality, features[level])
        rows += score_condition(models, swapped, folds, lambda test, fold: test,
                                {"condition": condition, "modality": modality, "rate": position / len(order),
                                 "level": float(level), "seed": seed})
    return tidy(rows, CORRUPT_COLUMNS)
