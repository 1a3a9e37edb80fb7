"""Unimodal neural baselines: linear projection, one transformer encoder block, masked mean, classifier.

They run through the same training loop as the fusion methods, so "fusion beats the best single modality" is
a comparison of architectures, not of training recipes. Clips without the modality get the training prior
(a learned bias only), never a prediction from placeholder input.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from methods import MethodSpec, register
from methods.base import Param
from methods.neural.layers import TransformerBlock, masked_mean
from methods.neural.training import Batch, NeuralMethod


class UnimodalNet(nn.Module):
    def __init__(self, modality: str, dim: int, n_classes: int, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.modality = modality
        self.proj = nn.Linear(dim, d_model)
        self.block = TransformerBlock(d_model, heads, ffn_mult=4, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)
        self.prior = nn.Parameter(torch.zeros(n_classes))

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, mask = batch["x"][self.modality], batch["mask"][self.modality]
        pooled = masked_mean(self.block(self.proj(x), key_mask=mask), mask)
        logits = self.head(self.drop(pooled))
        present = batch["avail"][self.modality].unsqueeze(-1)
        return {"logits": torch.where(present, logits, self.prior.expand_as(logits)), "embedding": pooled}


class UnimodalTransformer(NeuralMethod):
    """A small transformer encoder + classifier on one modality (`modality` picks it)."""

    modalities = ("audio", "video", "text")
    min_modalities = 1
    family = "unimodal"
    defaults: ClassVar[dict[str, Any]] = {"modality": "audio", "d_model": 32, "heads": 4, "dropout": 0.1}

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        return {"lr": Param.loguniform(3e-4, 3e-3), "dropout": Param.choice(0.1, 0.3)}

    def resolve_modalities(self, data) -> list[str]:
        modality = self.params["modality"]
        if modality not in data.sequences:
            raise ValueError(f"the data has no {modality!r} sequences (it offers {sorted(data.sequences)})")
        return [modality]

    def build_network(self, dims: dict[str, int], n_classes: int) -> nn.Module:
        p = self.params
        return UnimodalNet(p["modality"], dims[p["modality"]], n_classes, p["d_model"], p["heads"], p["dropout"])


for _modality in ("audio", "video", "text"):
    register(MethodSpec(f"neural-{_modality}", UnimodalTransformer, fixed={"modality": _modality},
                        modalities=(_modality,), description=f"unimodal transformer baseline on {_modality}"))
