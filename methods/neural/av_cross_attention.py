"""Audio-visual cross-attention with the emotion metric loss (Mocanu et al., Image and Vision Computing 2023).

Visual stream, per clip N snippets, each a feature map D in R^{s x m} (s positions before global pooling):
  VS  multi-head self-attention over the s positions (H heads, output projection), residual;
  VC  the same over the m channels (tokens = channels, i.e. attention on D^T), residual;
  spatial average -> [N, m] -> (linear to m' when m != m') -> VT: self-attention over the N snippets -> D_VT.
Audio stream: N segments -> [N, m'] (a 2-D CNN in the paper; here the per-segment features) -> AT -> D_AT.
Fusion (Eq. 7-11): Corr = D_AT W D_VT^T (W Xavier-initialised, m' x m'); W_audio = column-wise softmax of
Corr, W_video = column-wise softmax of Corr^T; D~_AT = W_audio D_AT, D~_VT = W_video D_VT; D_corr = tanh(D + D~)
for each stream; concatenate; fully connected layers to the classes. `fusion="concat"` and the use_vs/use_vc/
use_vt/use_at switches reproduce the paper's ablations.

Generic features: any [T, D] sequence is cut into N * s positions (`layers.segment_pool`, computed from each
clip's real length, so padding never matters). Snippet features stored snippet-major as [N * s, m] with
`positions_per_snippet = s` pass through unchanged. Loss: cross-entropy + `metric_weight` x Eq. 16
(`losses.emotion_metric_loss`) on the L2-normalised fused vector; the class polarity map comes from the
dataset card through the `polarity` hyperparameter (the harness injects it). `loss="metric"` trains the
encoder with Eq. 16 alone and fits the classifier on the detached fused vector.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from methods import MethodSpec, register
from methods.base import Param
from methods.neural.layers import Attention, segment_pool
from methods.neural.losses import emotion_metric_loss, polarity_vector
from methods.neural.training import Batch, NeuralMethod


class ResidualAttention(nn.Module):
    """x + MHSA(x): the VS, VC, VT and AT modules (self-attention with an output projection)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = Attention(dim, math.gcd(heads, dim), out_proj=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(x, x)


class CrossAttentionFusion(nn.Module):
    """Eq. 7-11: correlation through a learned W, column-wise softmax weights, tanh of the residual sum."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        nn.init.xavier_uniform_(self.weight)

    def weights(self, audio: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        corr = audio @ self.weight @ video.transpose(1, 2)  # [B, N, N]
        return torch.softmax(corr, dim=1), torch.softmax(corr.transpose(1, 2), dim=1)  # columns sum to 1

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        w_audio, w_video = self.weights(audio, video)
        return torch.cat([torch.tanh(audio + w_audio @ audio), torch.tanh(video + w_video @ video)], dim=-1)


class AVCrossAttentionHead(nn.Module):
    """From per-snippet visual feature maps [B, N, s, m] and audio features [B, N, m_a] to logits.

    Shared by the feature-based method and the end-to-end Ray Train mode (harness.e2e), whose backbones
    produce these inputs from decoded clips."""

    def __init__(self, visual_dim: int, audio_dim: int, n_classes: int, n_snippets: int, positions: int,
                 m: int, m_prime: int, heads: int, hidden: int, dropout: float, use_vs: bool = True,
                 use_vc: bool = True, use_vt: bool = True, use_at: bool = True, fusion: str = "cross",
                 missing_modalities: bool = True) -> None:
        super().__init__()
        if fusion not in ("cross", "concat"):
            raise ValueError(f"fusion must be 'cross' or 'concat', got {fusion!r}")
        self.visual_in = nn.Identity() if visual_dim == m else nn.Linear(visual_dim, m)
        self.vs = ResidualAttention(m, heads) if use_vs else None
        self.vc = ResidualAttention(positions, heads) if use_vc else None
        self.visual_out = nn.Identity() if m == m_prime else nn.Linear(m, m_prime)
        self.vt = ResidualAttention(m_prime, heads) if use_vt else None
        self.audio_in = nn.Identity() if audio_dim == m_prime else nn.Linear(audio_dim, m_prime)
        self.at = ResidualAttention(m_prime, heads) if use_at else None
        self.fusion = CrossAttentionFusion(m_prime) if fusion == "cross" else None
        # Learned stand-ins for a missing stream (absent when every clip has both, as in end-to-end training,
        # where DDP requires every parameter to receive a gradient).
        self.missing = nn.ParameterDict({"audio": nn.Parameter(torch.zeros(n_snippets, m_prime)),
                                         "video": nn.Parameter(torch.zeros(n_snippets, m_prime))}
                                        ) if missing_modalities else None
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * n_snippets * m_prime, hidden),
                                        nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def visual(self, maps: torch.Tensor) -> torch.Tensor:
        b, n, s, _ = maps.shape
        d = self.visual_in(maps).reshape(b * n, s, -1)  # [B*N, s, m]
        if self.vs is not None:
            d = self.vs(d)
        if self.vc is not None:
            d = self.vc(d.transpose(1, 2)).transpose(1, 2)  # attention across channels: tokens are the m channels
        d = self.visual_out(d.mean(dim=1).reshape(b, n, -1))  # spatial average -> [B, N, m']
        return self.vt(d) if self.vt is not None else d

    def forward(self, maps: torch.Tensor, audio: torch.Tensor, video_ok: torch.Tensor | None = None,
                audio_ok: torch.Tensor | None = None, detach_head: bool = False) -> dict[str, torch.Tensor]:
        d_vt = self.visual(maps)
        d_at = self.audio_in(audio)
        if self.at is not None:
            d_at = self.at(d_at)
        if video_ok is not None and self.missing is not None:
            d_vt = torch.where(video_ok[:, None, None], d_vt, self.missing["video"].expand_as(d_vt))
        if audio_ok is not None and self.missing is not None:
            d_at = torch.where(audio_ok[:, None, None], d_at, self.missing["audio"].expand_as(d_at))
        fused = self.fusion(d_at, d_vt) if self.fusion is not None else torch.cat([d_at, d_vt], dim=-1)
        fused = fused.flatten(1)
        logits = self.classifier(fused.detach() if detach_head else fused)
        return {"logits": logits, "embedding": fused}


class AVCrossAttentionNet(nn.Module):
    """Cuts generic padded sequences into snippets, then runs the head."""

    def __init__(self, head: AVCrossAttentionHead, n_snippets: int, positions: int, audio_positions: int,
                 detach_head: bool) -> None:
        super().__init__()
        self.head = head
        self.n, self.s, self.s_audio = n_snippets, positions, audio_positions
        self.detach_head = detach_head

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        video = segment_pool(batch["x"]["video"], batch["mask"]["video"], self.n * self.s)
        maps = video.reshape(video.shape[0], self.n, self.s, -1)
        audio = segment_pool(batch["x"]["audio"], batch["mask"]["audio"], self.n * self.s_audio)
        audio = audio.reshape(audio.shape[0], self.n, self.s_audio, -1).mean(dim=2)
        return self.head(maps, audio, batch["avail"]["video"], batch["avail"]["audio"], self.detach_head)


class AVCrossAttention(NeuralMethod):
    """A-V cross-attention + emotion metric loss. `polarity` (class -> positive/negative/neutral) is injected
    by the harness from the dataset card; without it every anchor uses the plain triplet (noted in fit_notes)."""

    modalities = ("audio", "video")
    context_params = frozenset({"seed", "polarity"})
    defaults: ClassVar[dict[str, Any]] = {
        "polarity": None, "n_snippets": 6, "positions_per_snippet": 4, "audio_positions_per_snippet": 1,
        "m": 32, "m_prime": 32, "heads": 8, "hidden": 64, "dropout": 0.1,
        "use_vs": True, "use_vc": True, "use_vt": True, "use_at": True, "fusion": "cross",
        "loss": "ce+metric", "metric_weight": 1.0, "alpha": 0.2, "beta": 0.2,
        "optimizer": "adam", "lr": 1e-3, "max_len": None,
    }
    paper: ClassVar[dict[str, Any]] = {"m": 512, "m_prime": 512, "heads": 8, "optimizer": "adam", "lr": 1e-4,
                                       "batch_size": 16, "patience": 20, "max_epochs": 200, "weight_decay": 0.0,
                                       "loss": "ce+metric"}

    def __init__(self, polarity: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(polarity=polarity, **params)

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        return {"lr": Param.loguniform(3e-4, 3e-3), "dropout": Param.choice(0.1, 0.3)}

    def build_network(self, dims: dict[str, int], n_classes: int) -> nn.Module:
        p = self.params
        if p["loss"] not in ("ce", "metric", "ce+metric"):
            raise ValueError(f"loss must be 'ce', 'metric' or 'ce+metric', got {p['loss']!r}")
        self._class_polarity = polarity_vector(self.classes_, p["polarity"])
        head = AVCrossAttentionHead(dims["video"], dims["audio"], n_classes, p["n_snippets"],
                                    p["positions_per_snippet"], p["m"], p["m_prime"], p["heads"], p["hidden"],
                                    p["dropout"], p["use_vs"], p["use_vc"], p["use_vt"], p["use_at"], p["fusion"])
        return AVCrossAttentionNet(head, p["n_snippets"], p["positions_per_snippet"],
                                   p["audio_positions_per_snippet"], detach_head=p["loss"] == "metric")

    def loss(self, out: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        ce = super().loss(out, batch)
        mode = self.params["loss"]
        if mode == "ce":
            return ce
        metric = emotion_metric_loss(nn.functional.normalize(out["embedding"].float(), dim=1), batch["y"],
                                     self._class_polarity, self.params["alpha"], self.params["beta"])
        return ce + (1.0 if mode == "metric" else self.params["metric_weight"]) * metric

    def fit(self, train, val=None) -> AVCrossAttention:
        super().fit(train, val)
        if self.params["loss"] != "ce":
            self.notes_["polarity_missing"] = int(not self.params["polarity"])
        return self


# The paper's ablation table (VS, VC, VT, AT, fusion) runs in the default suite; the loss options run by name.
_ABLATIONS = {
    "av-xattn-no-vs": ({"use_vs": False}, "without visual spatial attention (VS)", True),
    "av-xattn-no-vc": ({"use_vc": False}, "without visual channel attention (VC)", True),
    "av-xattn-no-vt": ({"use_vt": False}, "without visual temporal attention (VT)", True),
    "av-xattn-no-at": ({"use_at": False}, "without audio temporal attention (AT)", True),
    "av-xattn-concat": ({"fusion": "concat"}, "plain concatenation instead of cross-attention fusion", True),
    "av-xattn-ce": ({"loss": "ce"}, "cross-entropy only (no emotion metric loss)", False),
    "av-xattn-triplet": ({"loss": "metric"}, "emotion metric loss only (classifier fitted on frozen fusion)",
                         False),
}

register(MethodSpec("av-xattn", AVCrossAttention, description="A-V cross-attention + emotion metric loss "
                    "(Mocanu et al. 2023), on pre-extracted features"))
for _name, (_fixed, _what, _default) in _ABLATIONS.items():
    register(MethodSpec(_name, AVCrossAttention, fixed=_fixed, description=f"av-xattn ablation: {_what}",
                        in_default_suite=_default))
