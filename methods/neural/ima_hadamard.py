"""IMA-Hadamard: inter-modality attention with Hadamard fusion (Chaudhari et al., Electronics 2023, building on
SSE-FT, Siriwardhana et al. 2020). Equation-to-code map and deviations: docs/methods.md.

Per modality X a CLS summarises the sequence: audio and video get a learnable CLS and one self-attention block;
text keeps its encoder's first token (RoBERTa/MiniLM <s>/[CLS]). For each ordered pair (X, Y), X != Y, an IMA
block lets X's CLS attend over Y's whole sequence (Y's mask), giving an enriched CLS "X->Y". Fusion (Section
4.5, the default): X_final = prod over Y of (X->Y), i.e. V_final = (V->A) * (V->T); the X_final are concatenated
and a fully connected layer predicts. `fusion="all"` is the paper's Eq. 2: one product over all six tokens.
With two modalities each X has one partner, so X_final = X->Y.

Positions: with `positional="learned"` audio and video get a learned positional embedding (one vector per
position, added after the projection and before the CLS is prepended), as SSE-FT does for those two streams
(`fairseq/modules/transformer_multi_encoder.py`: `PositionalEmbeddingMul(..., learned=True)`); text keeps the
positions its encoder already encoded. `positional="none"` (the benchmark default) adds nothing.

Missing modalities: an enriched token X->Y with Y (or X) unavailable is replaced by the multiplicative identity
(ones), so the product uses only the partners that exist; X_final of an unavailable X is a learned "missing"
vector. Neither depends on the placeholder frame the data carries for a missing clip.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from methods import MethodSpec, register
from methods.base import Param
from methods.neural.layers import CLSToken, TransformerBlock
from methods.neural.training import Batch, NeuralMethod
from methods.presets import Preset

CLS_MODALITIES = ("audio", "video")  # get a learnable CLS + self-attention block; text uses its own first token
POSITIONAL = ("none", "learned")
SSE_FT_COMMAND = "SSE-FT README, 'Training Command' (shamanez/Self-Supervised-Embedding-Fusion-Transformer)"


class IMAHadamardNet(nn.Module):
    def __init__(self, dims: dict[str, int], n_classes: int, d_model: int, heads: int, ffn_mult: int,
                 dropout: float, fusion: str, positional: str = "none", max_positions: int = 1024) -> None:
        super().__init__()
        if fusion not in ("pairs", "all"):
            raise ValueError(f"fusion must be 'pairs' (Section 4.5) or 'all' (Eq. 2), got {fusion!r}")
        if positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {positional!r}")
        self.max_positions = int(max_positions)
        # One learned vector per position for each CLS modality (audio, video), N(0, 0.02) as BERT/SSE-FT.
        self.pos = nn.ParameterDict({m: nn.Parameter(torch.randn(self.max_positions, d_model) * 0.02)
                                     for m in self.mods_with_cls(dims)} if positional == "learned" else {})
        self.mods = list(dims)
        self.fusion = fusion
        self.positional = positional
        self.proj = nn.ModuleDict({m: nn.Linear(d, d_model) for m, d in dims.items()})
        self.cls = nn.ModuleDict({m: CLSToken(d_model) for m in self.mods if m in CLS_MODALITIES})
        self.self_attn = nn.ModuleDict({m: TransformerBlock(d_model, heads, ffn_mult, dropout)
                                        for m in self.mods if m in CLS_MODALITIES})
        self.pairs = [(x, y) for x in self.mods for y in self.mods if x != y]
        self.ima = nn.ModuleDict({f"{x}->{y}": TransformerBlock(d_model, heads, ffn_mult, dropout)
                                  for x, y in self.pairs})
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(d_model)) for m in self.mods})
        width = d_model if fusion == "all" else d_model * len(self.mods)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)

    @staticmethod
    def mods_with_cls(dims: dict[str, int]) -> list[str]:
        return [m for m in dims if m in CLS_MODALITIES]

    def add_positions(self, m: str, x: torch.Tensor) -> torch.Tensor:
        """x + the learned embedding of each position (padding gets one too; the mask keeps it out)."""
        if m not in self.pos:
            return x
        if x.shape[1] > self.max_positions:
            raise ValueError(f"{m} sequence of {x.shape[1]} frames is longer than max_positions="
                             f"{self.max_positions}; raise max_positions or bound the length with max_len")
        return x + self.pos[m][: x.shape[1]]

    def encode(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each modality's projected sequence with its CLS at position 0, and the matching mask."""
        seqs, masks = {}, {}
        for m in self.mods:
            x, mask = self.proj[m](batch["x"][m]), batch["mask"][m]
            x = self.add_positions(m, x)
            if m in self.cls:
                x, mask = self.cls[m](x, mask)
                x = self.self_attn[m](x, key_mask=mask)
            seqs[m], masks[m] = x, mask
        return seqs, masks

    def enriched(self, batch: Batch) -> dict[tuple[str, str], torch.Tensor]:
        """X->Y for every ordered pair: X's CLS attending over Y; ones where X or Y is unavailable."""
        seqs, masks = self.encode(batch)
        out = {}
        for x, y in self.pairs:
            token = self.ima[f"{x}->{y}"](seqs[x][:, :1], seqs[y], masks[y])[:, 0]
            both = (batch["avail"][x] & batch["avail"][y]).unsqueeze(-1)
            out[(x, y)] = torch.where(both, token, torch.ones_like(token))
        return out

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        tokens = self.enriched(batch)
        if self.fusion == "all":
            fused = torch.stack(list(tokens.values())).prod(dim=0)
        else:
            finals = []
            for x in self.mods:
                product = torch.stack([tokens[(x, y)] for y in self.mods if y != x]).prod(dim=0)
                present = batch["avail"][x].unsqueeze(-1)
                finals.append(torch.where(present, product, self.missing[x].expand_as(product)))
            fused = torch.cat(finals, dim=-1)
        return {"logits": self.head(self.drop(fused)), "embedding": fused}


class IMAHadamard(NeuralMethod):
    """IMA-Hadamard over audio, video and text (or any two of them, via `modalities`)."""

    modalities = ("audio", "video", "text")
    defaults: ClassVar[dict[str, Any]] = {"d_model": 32, "heads": 4, "ffn_mult": 4, "dropout": 0.1,
                                          "fusion": "pairs", "positional": "none", "max_positions": 1024}
    # The IMA training setting as far as the paper states it; what it leaves open is marked (docs/methods.md).
    presets: ClassVar[dict[str, Preset]] = {"paper": Preset(
        values={"lr": 1e-4, "optimizer": "adamw", "d_model": 256, "heads": 8, "max_epochs": 100, "patience": 20,
                "max_len": None, "positional": "learned"},
        sources={
            "lr": "Chaudhari et al. 2023, training setup: learning rate 1e-4",
            "optimizer": "not verified in the paper: AdamW, the optimiser of the SSE-FT code it builds on",
            "d_model": "not verified in the paper: 256, our reading of SSE-FT's fusion width",
            "heads": "not verified in the paper: 8, our reading of SSE-FT",
            "max_epochs": "not in the paper: a cap of 100 epochs so early stopping decides",
            "patience": "not in the paper: 20 epochs without validation gain",
            "max_len": "not in the paper: whole sequences (no length bounding)",
            "positional": "not verified in the IMA paper: SSE-FT, which it builds on, learns positional embeddings "
                          "for audio and video (fairseq/modules/transformer_multi_encoder.py, "
                          "PositionalEmbeddingMul(learned=True))",
        },
        note="Searched under the paper preset: dropout. This is paper-sized, not SSE-FT's published training "
             "command (that is the `sse-ft` preset; batch size and schedule are not stated in the IMA paper). "
             "Section numbers were not re-checked against the paper."
    ), "sse-ft": Preset(
        values={"lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.1, "max_epochs": 32, "patience": 32,
                "batch_size": 8, "heads": 4, "dropout": 0.1, "d_model": 256, "ffn_mult": 4, "max_len": None,
                "positional": "learned", "max_positions": 936},
        sources={
            "lr": f"{SSE_FT_COMMAND}: --lr 1e-03",
            "optimizer": f"{SSE_FT_COMMAND}: --optimizer adam, which in fairseq is Adam with decoupled weight decay "
                         "(fairseq/optim/adam.py: 'Fixed Weight Decay Regularization in Adam'), i.e. AdamW; its "
                         "--adam-betas (0.9, 0.98) --adam-eps 1e-06 are not modelled (torch defaults here)",
            "weight_decay": f"{SSE_FT_COMMAND}: --weight-decay 0.1",
            "max_epochs": f"{SSE_FT_COMMAND}: --max-epoch 32",
            "patience": "not in the command (no early stopping; the best checkpoint is kept): patience = 32 epochs, "
                        "so all 32 run and the best validation epoch is restored",
            "batch_size": f"{SSE_FT_COMMAND}: --batch-size 4 --update-freq 2 (gradient accumulation), i.e. 8 "
                          "clips per update",
            "heads": f"{SSE_FT_COMMAND}: --encoder-attention-heads 4",
            "dropout": f"{SSE_FT_COMMAND}: --dropout 0.1 (its --attention-dropout 0.1 is not modelled)",
            "d_model": "not in the command: SSE-FT keeps each stream's own width (robertEMO_large: audio 512, video "
                       "256, text 1024, fairseq/models/mulT_emo.py); one common width of 256 here",
            "ffn_mult": "fairseq/models/mulT_emo.py robertEMO_large: encoder_ffn_embed_dim 1024 = 4 x 256",
            "max_len": f"{SSE_FT_COMMAND}: whole sequences (--max-positions-a 936 / -v 301 bound them)",
            "positional": "fairseq/modules/transformer_multi_encoder.py: learned positional embeddings for audio "
                          "and video",
            "max_positions": f"{SSE_FT_COMMAND}: --max-positions-a 936 (the larger of audio 936 / video 301; one "
                             "table size for both here)",
        },
        note="SSE-FT's published command trains CMU-MOSEI sentiment regression (--regression-target-mos); here "
             "the same optimiser settings drive emotion classification. Not modelled: 2 self-attention and 2 "
             "cross-modal layers per stream (--encoder-layers 2 --encoder-layers-cross 2; this code has one "
             "each), Adam betas/eps, attention dropout, the reduce-on-plateau schedule."
    )}
    paper: ClassVar[dict[str, Any]] = presets["paper"].values

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        return {"lr": Param.loguniform(1e-4, 3e-3), "dropout": Param.choice(0.1, 0.3)}

    def keep_first_frame(self) -> tuple[str, ...]:
        return ("text",)  # the text encoder's CLS must stay a token of its own

    def build_network(self, dims: dict[str, int], n_classes: int) -> nn.Module:
        p = self.params
        return IMAHadamardNet(dims, n_classes, p["d_model"], p["heads"], p["ffn_mult"], p["dropout"], p["fusion"],
                              p["positional"], p["max_positions"])


register(MethodSpec("ima-hadamard", IMAHadamard, description="IMA-Hadamard (Chaudhari et al. 2023): CLS inter-"
                    "modality attention, per-modality Hadamard pairs (Sec. 4.5)"))
register(MethodSpec("ima-hadamard-eq2", IMAHadamard, fixed={"fusion": "all"},
                    description="IMA-Hadamard with the paper's Eq. 2: one Hadamard product over all six tokens"))
register(MethodSpec("ima-hadamard-av", IMAHadamard, fixed={"modalities": ("audio", "video")},
                    modalities=("audio", "video"), description="IMA-Hadamard on audio + video only",
                    in_default_suite=False))
