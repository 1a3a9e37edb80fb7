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
from methods.presets import HARNESS_CHOICE, INHERITED, Input, Preset

CLS_MODALITIES = ("audio", "video")  # get a learnable CLS + self-attention block; text uses its own first token
POSITIONAL = ("none", "learned")
SSE_FT_COMMAND = "SSE-FT command (README 'Training Command', shamanez/Self-Supervised-Embedding-Fusion-Transformer)"


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
                                          "fusion": "pairs", "positional": "none", "max_positions": 1024,
                                          "max_len_audio": None, "max_len_video": None, "max_len_text": None}
    # The IMA training setting as far as the paper states it; what it leaves open is marked (docs/methods.md).
    presets: ClassVar[dict[str, Preset]] = {"paper": Preset(
        paper="chaudhari2023",
        values={"lr": 1e-4, "optimizer": "adamw", "d_model": 256, "heads": 8, "max_epochs": 100, "patience": 20,
                "max_len": None, "max_len_audio": 935, "max_len_video": 300, "max_len_text": 512,
                "positional": "learned", "weight_decay": 1e-4, "batch_size": 32, "grad_clip": 1.0,
                "select_by": "uar", "class_weights": False},
        sources={
            "lr": f"{HARNESS_CHOICE}: 1e-4 (the paper states no training values; §4.7 names only FAIRSEQ and "
                  "the hardware)",
            "optimizer": f"{HARNESS_CHOICE}: AdamW, the optimiser of the SSE-FT code the paper's fusion follows "
                         "(fairseq --optimizer adam decouples weight decay)",
            "d_model": f"{HARNESS_CHOICE}: one fusion width of 256 (the paper gives the encoders' widths, 512 / "
                       "256 / 1024 in Table 1, not the fusion's)",
            "heads": f"{HARNESS_CHOICE}: 8 heads (Figure 4 says multi-head attention, without a number)",
            "max_epochs": f"{HARNESS_CHOICE}: a cap of 100 epochs so early stopping decides",
            "patience": f"{HARNESS_CHOICE}: 20 epochs without validation gain",
            "max_len": f"{HARNESS_CHOICE}: no common bound (the per-modality bounds of Table 1 apply)",
            "max_len_audio": "paper §4.1: Table 1, Wav2Vec max sequence length 935 (9.5 s of 10 ms frames)",
            "max_len_video": "paper §4.1: Table 1, Fab-Net max sequence length 300",
            "max_len_text": "paper §4.1: Table 1, RoBERTa max sequence length 512",
            "positional": f"{HARNESS_CHOICE}: learned positional embeddings for audio and video, as SSE-FT "
                          "(fairseq/modules/transformer_multi_encoder.py, PositionalEmbeddingMul(learned=True)); "
                          "the paper does not say",
            "weight_decay": f"{INHERITED} (1e-4; none is stated)",
            "batch_size": f"{INHERITED} (32; none is stated)",
            "grad_clip": f"{INHERITED} (clip at 1.0; none is stated)",
            "select_by": f"{INHERITED}: the best epoch by validation UAR (the paper states no selection rule)",
            "class_weights": f"{HARNESS_CHOICE}: unweighted cross-entropy (none is stated)",
        },
        inputs={
            "audio": Input("wav2vec1", "paper §4.1: fairseq wav2vec (wav2vec_large.pt, 512-d context vectors), "
                           "frozen; give the checkpoint file with --extractor-config wav2vec1.checkpoint=PATH",
                           {"layer": "c"}),
            "text": Input("roberta", "paper §4.1: fairseq RoBERTa, 1,024-d (RoBERTa-large), frozen",
                          {"checkpoint": "roberta-large"}),
            "video": Input("face-expression", "paper §4.1: Fab-Net (256-d) on RetinaFace crops; the harness has "
                           "no Fab-Net (face-embed takes a converted checkpoint), the FER CNN's 256-d face "
                           "embedding stands in", stands_in_for="Fab-Net"),
        },
        note="Searched under the paper preset: dropout. The IMA paper states no training setting at all (no "
             "optimiser, learning rate, batch size, epochs or split): everything but Table 1's lengths and the "
             "inputs is a harness choice or inherited. SSE-FT's published command is the `sse-ft` preset."
    ), "sse-ft": Preset(
        paper="sse-ft",
        values={"lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.1, "max_epochs": 32, "patience": 32,
                "batch_size": 8, "heads": 4, "dropout": 0.1, "d_model": 256, "ffn_mult": 4, "max_len": None,
                "positional": "learned", "max_positions": 936, "grad_clip": 0.0, "select_by": "loss",
                "class_weights": False},
        sources={
            "lr": f"{SSE_FT_COMMAND}: --lr 1e-03",
            "optimizer": f"{SSE_FT_COMMAND}: --optimizer adam, which in fairseq is Adam with decoupled weight decay "
                         "(fairseq/optim/adam.py: 'Fixed Weight Decay Regularization in Adam'), i.e. AdamW; its "
                         "--adam-betas (0.9, 0.98) --adam-eps 1e-06 are not modelled (torch defaults here)",
            "weight_decay": f"{SSE_FT_COMMAND}: --weight-decay 0.1",
            "max_epochs": f"{SSE_FT_COMMAND}: --max-epoch 32",
            "patience": f"{HARNESS_CHOICE}: 32 epochs, so all 32 run (the command has no early stopping) and the "
                        "best validation epoch is restored",
            "batch_size": f"{SSE_FT_COMMAND}: --batch-size 4 --update-freq 2 (gradient accumulation), i.e. 8 "
                          "clips per update",
            "heads": f"{SSE_FT_COMMAND}: --encoder-attention-heads 4",
            "dropout": f"{SSE_FT_COMMAND}: --dropout 0.1 (its --attention-dropout 0.1 is not modelled)",
            "d_model": f"{HARNESS_CHOICE}: one common width of 256 (SSE-FT keeps each stream's own width, "
                       "robertEMO_large: audio 512, video 256, text 1024, fairseq/models/mulT_emo.py)",
            "ffn_mult": f"{SSE_FT_COMMAND}: --arch robertEMO_large, whose encoder_ffn_embed_dim 1024 = 4 x 256 "
                        "(fairseq/models/mulT_emo.py)",
            "max_len": f"{SSE_FT_COMMAND}: whole sequences (--max-positions-a 936 / -v 301 bound them)",
            "positional": f"{SSE_FT_COMMAND}: its model learns positional embeddings for audio and video "
                          "(fairseq/modules/transformer_multi_encoder.py)",
            "max_positions": f"{SSE_FT_COMMAND}: --max-positions-a 936 (the larger of audio 936 / video 301; one "
                             "table size for both here)",
            "grad_clip": f"{SSE_FT_COMMAND}: --clip-norm 0 (no gradient clipping)",
            "select_by": f"{SSE_FT_COMMAND}: fairseq keeps checkpoint_best by validation loss (no "
                         "--best-checkpoint-metric is given)",
            "class_weights": f"{HARNESS_CHOICE}: unweighted cross-entropy",
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

    def max_lengths(self) -> dict[str, int]:
        """`max_len_<modality>` (the paper's Table 1: 935 / 300 / 512) where set; `max_len` bounds the rest."""
        return {m: int(self.params[f"max_len_{m}"]) for m in ("audio", "video", "text")
                if self.params.get(f"max_len_{m}")}

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
