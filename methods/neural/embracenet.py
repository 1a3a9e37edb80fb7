"""Cross-modal transformer + EmbraceNet (Xie et al., Sensors 2021; EmbraceNet: Choi & Lee, Inf. Fusion 2019).

1. Each modality is projected to width d (optionally face frames go through a GRU encoder first).
2. Cross-modal block S->T (Eq. 6-11): Q from the target T, K and V from the source S, scaled dot-product
   attention, residual to the query + LayerNorm, two-layer ReLU feed-forward of width 2d, residual + LayerNorm.
3. For each target T, the Hadamard product of the cross-modal outputs into it (Attention_T = out_{F->T} *
   out_{A->T}), mean-pooled over T's real frames. With two modalities each target has one source.
4. EmbraceNet: docking layer (linear + ReLU to c) per modality; for each of the c positions a modality is
   drawn from Multinomial(1, p), p uniform over the modalities *available for that clip*; the embraced vector
   is the sum of the docked vectors masked by the draws; a linear classifier follows. At evaluation the result
   must be deterministic: `embrace_eval="expectation"` (default) uses the p-weighted sum, `"sampled"` averages
   the class probabilities of `eval_samples` draws from a fixed-seed generator.

A missing source S contributes the multiplicative identity (ones) to every product into other targets, and a
missing target has p = 0, so nothing of a missing modality's input reaches the output (tested with NaN input).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from methods import MethodSpec, register
from methods.base import Param
from methods.neural.layers import TransformerBlock, masked_mean
from methods.neural.training import Batch, NeuralMethod

FACE = "video"


class EmbraceNet(nn.Module):
    """Docking + stochastic modality selection per position (Choi & Lee 2019)."""

    def __init__(self, mods: list[str], in_dim: int, c: int, eval_mode: str, eval_samples: int) -> None:
        super().__init__()
        if eval_mode not in ("expectation", "sampled"):
            raise ValueError(f"embrace_eval must be 'expectation' or 'sampled', got {eval_mode!r}")
        self.mods = mods
        self.dock = nn.ModuleDict({m: nn.Sequential(nn.Linear(in_dim, c), nn.ReLU()) for m in mods})
        self.eval_mode = eval_mode
        self.eval_samples = eval_samples

    @staticmethod
    def probabilities(avail: torch.Tensor) -> torch.Tensor:
        """p per clip: uniform over the available modalities, renormalised ([B, M])."""
        p = avail.float()
        return p / p.sum(dim=1, keepdim=True).clamp_min(1.0)

    def draw(self, p: torch.Tensor, c: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One-hot selection [B, M, c]: for every position, which modality supplies it."""
        b, m = p.shape
        safe = torch.where(p.sum(1, keepdim=True) > 0, p, torch.ones_like(p) / m)
        index = torch.multinomial(safe.cpu(), c, replacement=True, generator=generator).to(p.device)  # [B, c]
        return nn.functional.one_hot(index, m).permute(0, 2, 1).to(p.dtype)

    def forward(self, features: dict[str, torch.Tensor], avail: dict[str, torch.Tensor],
                generator: torch.Generator | None = None) -> torch.Tensor:
        a = torch.stack([avail[m] for m in self.mods], dim=1)  # [B, M]
        docked = torch.stack([torch.where(avail[m].unsqueeze(-1), self.dock[m](features[m]), 0.0)
                              for m in self.mods], dim=1)  # [B, M, c]; a missing modality is exactly 0
        p = self.probabilities(a)
        if self.training or generator is not None:
            r = self.draw(p, docked.shape[-1], generator)
        else:
            r = p.unsqueeze(-1).expand_as(docked)
        return (r * docked).sum(dim=1)


class CrossModalEmbraceNet(nn.Module):
    def __init__(self, dims: dict[str, int], n_classes: int, d_model: int, heads: int, dropout: float,
                 c: int, eval_mode: str, eval_samples: int, face_encoder: str) -> None:
        super().__init__()
        self.mods = list(dims)
        self.eval_mode, self.eval_samples = eval_mode, eval_samples
        if face_encoder not in ("linear", "gru"):
            raise ValueError(f"face_encoder must be 'linear' or 'gru', got {face_encoder!r}")
        self.face_gru = nn.GRU(dims[FACE], d_model, batch_first=True) if face_encoder == "gru" and FACE in dims \
            else None
        self.proj = nn.ModuleDict({m: nn.Identity() if (m == FACE and self.face_gru is not None)
                                   else nn.Linear(d, d_model) for m, d in dims.items()})
        self.pairs = [(s, t) for t in self.mods for s in self.mods if s != t]
        self.cross = nn.ModuleDict({f"{s}->{t}": TransformerBlock(d_model, heads, ffn_mult=2, dropout=dropout,
                                                                  out_proj=False) for s, t in self.pairs})
        self.embrace = EmbraceNet(self.mods, d_model, c, eval_mode, eval_samples)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c, n_classes)

    def attended(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Attention_T per target: the pooled Hadamard product of the cross-modal outputs into T."""
        seqs = {}
        for m in self.mods:
            x = batch["x"][m]
            seqs[m] = self.face_gru(x)[0] if (m == FACE and self.face_gru is not None) else self.proj[m](x)
        pooled = {}
        for t in self.mods:
            product = None
            for s in self.mods:
                if s == t:
                    continue
                out = self.cross[f"{s}->{t}"](seqs[t], seqs[s], batch["mask"][s])
                out = torch.where(batch["avail"][s][:, None, None], out, torch.ones_like(out))
                product = out if product is None else product * out
            pooled[t] = masked_mean(product, batch["mask"][t])
        return pooled

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        pooled = self.attended(batch)
        if self.training or self.eval_mode == "expectation":
            embraced = self.embrace(pooled, batch["avail"])
            return {"logits": self.head(self.drop(embraced)), "embedding": embraced}
        generator = torch.Generator().manual_seed(0)  # sampled evaluation, repeatable
        probs = torch.stack([torch.softmax(self.head(self.embrace(pooled, batch["avail"], generator)), dim=-1)
                             for _ in range(self.eval_samples)]).mean(0)
        return {"logits": torch.log(probs.clamp_min(1e-12))}


class CrossModalEmbrace(NeuralMethod):
    """Cross-modal transformer + EmbraceNet over text, audio and face (or any two)."""

    modalities = ("audio", "video", "text")
    defaults: ClassVar[dict[str, Any]] = {
        "d_model": 32, "heads": 1, "dropout": 0.1, "c": 64, "embrace_eval": "expectation", "eval_samples": 8,
        "face_encoder": "linear", "face_frames": 24,
        "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
    }
    paper: ClassVar[dict[str, Any]] = {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0, "c": 256,
                                       "face_frames": 50, "max_epochs": 100, "patience": 20, "max_len": None}

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        return {"lr": Param.loguniform(0.01, 0.1), "dropout": Param.choice(0.1, 0.3)}

    def fixed_lengths(self) -> dict[str, int]:
        frames = self.params["face_frames"]
        return {FACE: int(frames)} if frames and FACE in self.modalities_ else {}

    def build_network(self, dims: dict[str, int], n_classes: int) -> nn.Module:
        p = self.params
        return CrossModalEmbraceNet(dims, n_classes, p["d_model"], p["heads"], p["dropout"], p["c"],
                                    p["embrace_eval"], p["eval_samples"], p["face_encoder"])


register(MethodSpec("xmt-embracenet", CrossModalEmbrace, description="cross-modal transformer + Hadamard + "
                    "EmbraceNet (Xie et al. 2021); expectation at evaluation"))
register(MethodSpec("xmt-embracenet-gru", CrossModalEmbrace, fixed={"face_encoder": "gru"},
                    description="xmt-embracenet with the GRU face encoder front end", in_default_suite=False))
register(MethodSpec("xmt-embracenet-sampled", CrossModalEmbrace, fixed={"embrace_eval": "sampled"},
                    description="xmt-embracenet evaluated by averaging 8 sampled EmbraceNet passes",
                    in_default_suite=False))
