"""Per-speaker feature normalisation: z-score each speaker's features over that speaker's own clips.

A common practice in speech emotion recognition: it removes speaker-level offsets (pitch range, loudness,
recording channel) so a classifier sees how a clip deviates from its speaker's usual voice. It is label-free,
so applying it to test speakers (using their unlabelled clips) leaks no labels; it does use the test speaker's
other clips, which is why it is a switch recorded in the run's parameters (`Settings.speaker_norm`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def _groups(speakers: Sequence[Hashable], n: int, available: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    speakers = np.asarray([str(s) for s in speakers])
    if len(speakers) != n:
        raise ValueError(f"per_speaker_zscore: {n} rows but {len(speakers)} speakers")
    mask = np.ones(n, dtype=bool) if available is None else np.asarray(available, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"per_speaker_zscore: availability mask has shape {mask.shape}, expected ({n},)")
    return speakers, mask


def _stats(block: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(block, axis=0)
    std = np.nanstd(block, axis=0)
    # A constant dimension (or a speaker with one clip) is only centred: dividing by ~0 would blow it up.
    return mean, np.where(std > eps, std, 1.0)


def per_speaker_zscore(features: np.ndarray, speakers: Sequence[Hashable], available: np.ndarray | None = None,
                       eps: float = 1e-8) -> np.ndarray:
    """Return a copy of `features` [N, D] with each speaker's available rows z-scored with that speaker's
    mean and standard deviation (computed over their available rows only, NaNs ignored).

    available: optional bool [N]; rows marked False (features missing, e.g. placeholder zeros) neither
    contribute to the statistics nor are changed.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"per_speaker_zscore: expected [N, D] features, got shape {features.shape}")
    speakers_arr, mask = _groups(speakers, len(features), available)
    out = features.copy()
    for speaker in np.unique(speakers_arr[mask]):
        rows = mask & (speakers_arr == speaker)
        mean, std = _stats(features[rows], eps)
        out[rows] = (features[rows] - mean) / std
    return out.astype(np.float32)


def per_speaker_zscore_sequences(sequences: Sequence[np.ndarray], speakers: Sequence[Hashable],
                                 available: np.ndarray | None = None, eps: float = 1e-8) -> list[np.ndarray]:
    """The same for variable-length sequences [T_i, D]: statistics pool all frames of a speaker's available
    clips, so every frame is expressed relative to that speaker's usual frame."""
    speakers_arr, mask = _groups(speakers, len(sequences), available)
    out = [np.asarray(s, dtype=np.float32) for s in sequences]
    for speaker in np.unique(speakers_arr[mask]):
        rows = np.flatnonzero(mask & (speakers_arr == speaker))
        parts = [np.asarray(sequences[i], dtype=np.float64) for i in rows if len(sequences[i])]
        if not parts:
            continue
        mean, std = _stats(np.concatenate(parts), eps)
        for i in rows:
            out[i] = ((np.asarray(sequences[i], dtype=np.float64) - mean) / std).astype(np.float32)
    return out


def normalise_by_speaker(pooled: dict[str, np.ndarray], sequences: dict[str, list[np.ndarray]],
                         available: dict[str, np.ndarray], speakers: Sequence[Hashable]
                         ) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """`--speaker-norm` for everything a method may consume: each modality's pooled vectors [N, D] and, where
    loaded, every frame of its sequences [T_i, D], z-scored per speaker over that speaker's available clips.

    Pooled and sequence statistics are computed separately (a pooled vector is not a frame). Clips whose
    `available[modality]` is False (placeholder rows) are neither used nor changed, so the flag reaches
    sequence methods without touching what they must ignore.
    """
    normalised_pooled = {m: per_speaker_zscore(x, speakers, available.get(m)) for m, x in pooled.items()}
    normalised_sequences = {m: per_speaker_zscore_sequences(s, speakers, available.get(m))
                            for m, s in sequences.items()}
    return normalised_pooled, normalised_sequences
