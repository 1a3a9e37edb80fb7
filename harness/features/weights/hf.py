"""Shared plumbing for `transformers` extractors: offline checkpoint resolution, layer selection, pooling.

Checkpoints are a local directory or a hub name that must already be in the local Hugging Face cache
(`local_files_only=True`): extraction never downloads, and a missing checkpoint is a clear error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.features.base import ExtractorConfigError, MissingWeightsError, directory_identity, option_hint

POOLINGS = ("mean", "max", "mean+std", "first")


def resolve_checkpoint(checkpoint: str) -> str:
    """A local directory holding the checkpoint (the path itself, or its snapshot in the HF cache)."""
    if Path(checkpoint).expanduser().is_dir():
        return str(Path(checkpoint).expanduser().resolve())
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(checkpoint, local_files_only=True)
    except Exception as error:  # not cached, or not a valid repo id
        raise MissingWeightsError(
            f"checkpoint {checkpoint!r} is not available offline ({type(error).__name__}). Download it on a "
            f"machine with internet: `huggingface-cli download {checkpoint}` (then copy ~/.cache/huggingface), "
            f"or {option_hint('checkpoint', '/path/to/' + checkpoint.rsplit('/', 1)[-1])}") from None


def checkpoint_identity(checkpoint: str) -> str:
    """Cache-key identity: the checkpoint's files (names and sizes), or 'missing' when it is not available."""
    try:
        return directory_identity(resolve_checkpoint(checkpoint))
    except MissingWeightsError:
        return f"{checkpoint}:missing"


def validate_layer(name: str, layer: Any) -> None:
    """layer: "last", "mean" (of all hidden states), an int index, or a list of per-hidden-state weights."""
    ok = layer in ("last", "mean") or (isinstance(layer, int) and not isinstance(layer, bool)) or (
        isinstance(layer, list) and layer and all(isinstance(w, int | float) for w in layer))
    if not ok:
        raise ExtractorConfigError(f"{name}: layer must be 'last', 'mean', an int or a list of weights, "
                                   f"got {layer!r}")


def validate_pooling(name: str, pooling: str, allowed: tuple[str, ...] = POOLINGS) -> None:
    if pooling not in allowed:
        raise ExtractorConfigError(f"{name}: pooling must be one of {allowed}, got {pooling!r}")


def select_layer(hidden_states: tuple, layer: Any):
    """Combine a model's hidden states ([1, T, D] each; index 0 = embeddings) as the config asks."""
    import torch

    if layer == "last":
        return hidden_states[-1]
    if layer == "mean":
        return torch.stack(hidden_states).mean(dim=0)
    if isinstance(layer, int):
        if not -len(hidden_states) <= layer < len(hidden_states):
            raise ExtractorConfigError(f"layer {layer} out of range: the model has {len(hidden_states)} "
                                       "hidden states (0 = embeddings)")
        return hidden_states[layer]
    if len(layer) != len(hidden_states):
        raise ExtractorConfigError(f"layer weights: {len(layer)} given, the model has {len(hidden_states)} "
                                   "hidden states (0 = embeddings)")
    weights = torch.tensor(layer, dtype=hidden_states[0].dtype, device=hidden_states[0].device)
    return torch.einsum("l,l...->...", weights / weights.sum(), torch.stack(hidden_states))


def pool(sequence: np.ndarray, pooling: str) -> np.ndarray:
    if pooling == "mean":
        return sequence.mean(axis=0)
    if pooling == "max":
        return sequence.max(axis=0)
    if pooling == "first":
        return sequence[0]
    return np.concatenate([sequence.mean(axis=0), sequence.std(axis=0)])
