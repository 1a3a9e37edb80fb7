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
`positions_per_snippet = s` pass through unchanged. Loss (`loss`): "metric" as in the paper (the encoder is
trained by the metric loss alone; the classifier on the detached fused vector), "ce+metric" (the benchmark
default, a named deviation) or "ce"; the metric term (`metric_loss`) is Eq. 16 on the L2-normalised fused vector
("emotion", with the card's class polarity map, injected by the harness as `polarity`) or the plain triplet
("triplet"). `streams="audio"` / `"video"` classify one stream alone (the unimodal rows of the ablation table).
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
from methods.presets import HARNESS_CHOICE, Input, Preset

STREAMS = ("av", "audio", "video")
LOSSES = ("metric", "ce+metric", "ce")
METRIC_LOSSES = ("emotion", "triplet")


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
                 missing_modalities: bool = True, streams: str = "av") -> None:
        super().__init__()
        if fusion not in ("cross", "concat"):
            raise ValueError(f"fusion must be 'cross' or 'concat', got {fusion!r}")
        if streams not in STREAMS:
            raise ValueError(f"streams must be one of {STREAMS}, got {streams!r}")
        self.streams = streams
        self.visual_in = nn.Identity() if visual_dim == m else nn.Linear(visual_dim, m)
        self.vs = ResidualAttention(m, heads) if use_vs else None
        self.vc = ResidualAttention(positions, heads) if use_vc else None
        self.visual_out = nn.Identity() if m == m_prime else nn.Linear(m, m_prime)
        self.vt = ResidualAttention(m_prime, heads) if use_vt else None
        self.audio_in = nn.Identity() if audio_dim == m_prime else nn.Linear(audio_dim, m_prime)
        self.at = ResidualAttention(m_prime, heads) if use_at else None
        # One stream alone (the unimodal rows of the ablation table) has nothing to fuse: its D is classified.
        self.fusion = CrossAttentionFusion(m_prime) if fusion == "cross" and streams == "av" else None
        n_streams = 2 if streams == "av" else 1
        # Learned stand-ins for a missing stream (absent when every clip has both, as in end-to-end training,
        # where DDP requires every parameter to receive a gradient).
        self.missing = nn.ParameterDict({"audio": nn.Parameter(torch.zeros(n_snippets, m_prime)),
                                         "video": nn.Parameter(torch.zeros(n_snippets, m_prime))}
                                        ) if missing_modalities else None
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_streams * n_snippets * m_prime, hidden),
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

    def audio_stream(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, N, m_a] -> D_AT [B, N, m']: input projection, then AT (when on)."""
        d_at = self.audio_in(audio)
        return self.at(d_at) if self.at is not None else d_at

    def forward(self, maps: torch.Tensor | None, audio: torch.Tensor | None, video_ok: torch.Tensor | None = None,
                audio_ok: torch.Tensor | None = None, detach_head: bool = False) -> dict[str, torch.Tensor]:
        """`maps` is None for streams="audio", `audio` None for streams="video"."""
        d_vt = self.visual(maps) if self.streams != "audio" else None
        d_at = self.audio_stream(audio) if self.streams != "video" else None
        if d_vt is not None and video_ok is not None and self.missing is not None:
            d_vt = torch.where(video_ok[:, None, None], d_vt, self.missing["video"].expand_as(d_vt))
        if d_at is not None and audio_ok is not None and self.missing is not None:
            d_at = torch.where(audio_ok[:, None, None], d_at, self.missing["audio"].expand_as(d_at))
        if d_at is None or d_vt is None:
            fused = d_vt if d_at is None else d_at
        elif self.fusion is not None:
            fused = self.fusion(d_at, d_vt)
        else:
            fused = torch.cat([d_at, d_vt], dim=-1)
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
        maps = audio = None
        if "video" in batch["x"]:
            video = segment_pool(batch["x"]["video"], batch["mask"]["video"], self.n * self.s)
            maps = video.reshape(video.shape[0], self.n, self.s, -1)
        if "audio" in batch["x"]:
            audio = segment_pool(batch["x"]["audio"], batch["mask"]["audio"], self.n * self.s_audio)
            audio = audio.reshape(audio.shape[0], self.n, self.s_audio, -1).mean(dim=2)
        return self.head(maps, audio, batch["avail"].get("video"), batch["avail"].get("audio"), self.detach_head)


class AVCrossAttention(NeuralMethod):
    """A-V cross-attention + emotion metric loss. `polarity` (class -> positive/negative/neutral) is injected
    by the harness from the dataset card; without it every anchor uses the plain triplet (noted in fit_notes).

    loss:        "metric" (the paper: the encoder is trained by the metric loss alone; the classifier layers
                 learn from cross-entropy on the *detached* fused vector, so CE never shapes the embedding),
                 "ce+metric" (a named deviation: CE + metric_weight x metric loss through the whole network),
                 or "ce" (cross-entropy only).
    metric_loss: "emotion" (Eq. 16 with the card's polarity map) or "triplet" (the plain triplet for every
                 anchor: the polarity map is ignored; the paper's Table 3 baseline).
    streams:     "av" (both streams, fused), "audio" (AT stream alone) or "video" (visual stream alone): the
                 unimodal rows of the paper's Table 1.
    """

    modalities = ("audio", "video")
    context_params = frozenset({"seed", "polarity"})
    defaults: ClassVar[dict[str, Any]] = {
        "polarity": None, "n_snippets": 6, "positions_per_snippet": 4, "audio_positions_per_snippet": 1,
        "m": 32, "m_prime": 32, "heads": 8, "hidden": 64, "dropout": 0.1,
        "use_vs": True, "use_vc": True, "use_vt": True, "use_at": True, "fusion": "cross", "streams": "av",
        "loss": "ce+metric", "metric_loss": "emotion", "metric_weight": 1.0, "alpha": 0.2, "beta": 0.2,
        "optimizer": "adam", "lr": 1e-3, "max_len": None,
    }
    presets: ClassVar[dict[str, Preset]] = {"paper": Preset(
        paper="mocanu2023",
        values={"n_snippets": 6, "m": 512, "m_prime": 512, "heads": 8, "optimizer": "adam", "lr": 1e-4,
                "weight_decay": 0.0, "batch_size": 16, "patience": 20, "select_by": "accuracy", "max_epochs": 200,
                "grad_clip": 0.0, "class_weights": False, "loss": "metric", "metric_loss": "emotion",
                "max_len": None},
        sources={
            "n_snippets": "paper §4.2: N = 6 snippets per clip (16 frames each)",
            "m": f"{HARNESS_CHOICE}: 512, the channel count of the stand-in video features (r3d_18's conv5). "
                 "The paper's m is its backbone's number of conv5 feature maps, 1024 (§3.1), used without a "
                 "projection; projecting 512 channels up to 1024 would add parameters and a 4x costlier channel "
                 "attention (VC), not information",
            "m_prime": "paper §3.3: m' = 512, the size of both streams' output descriptors",
            "heads": "paper §4.2: H = 8 attention heads",
            "optimizer": "paper §4.2: the Adam optimiser (its 'momentum of 0.9' is Adam's beta1, torch's default)",
            "lr": "paper §4.2: initial learning rate 1e-4",
            "weight_decay": f"{HARNESS_CHOICE}: 0 (the paper names no weight decay; the harness default is 1e-4)",
            "batch_size": "paper §4.2: batch size 16",
            "patience": "paper §4.2: training stops when the accuracy has not improved in 20 epochs",
            "select_by": "paper §4.2: the stopping rule watches accuracy (not UAR)",
            "max_epochs": f"{HARNESS_CHOICE}: a cap of 200 epochs so early stopping decides",
            "grad_clip": f"{HARNESS_CHOICE}: no gradient clipping (none is stated; the harness default clips at "
                         "1.0)",
            "class_weights": f"{HARNESS_CHOICE}: unweighted cross-entropy (none is stated)",
            "loss": "paper §3.4: the network is trained by minimising the emotion metric loss (Eq. 16); the "
                    "classifier is fitted on the detached embedding (the paper does not say how its "
                    "classification layer is trained)",
            "metric_loss": "paper §3.4: Eq. 16, the triplet loss with the emotion (polarity) constraint",
            "max_len": f"{HARNESS_CHOICE}: whole sequences (no length bounding)",
        },
        inputs={
            "video": Input("video-snippets", "paper §4.2: N = 6 snippets of 16 aligned 224x224 face frames into a "
                           "3-D ResNet-101 pretrained on ImageNet + Kinetics; here r3d_18 with Kinetics-400 weights, "
                           "frozen (the harness has no ResNet-101 video weights; `harness e2e --backbone r3d_101 "
                           "--video-weights FILE` takes yours)",
                           {"snippets": 6, "snippet_frames": 16, "image_size": 224, "backbone": "r3d_18",
                            "weights": "kinetics"}, stands_in_for="3-D ResNet-101 (ImageNet + Kinetics)"),
            "audio": Input("spectrogram-snippets", "paper §4.2: six 1 s Hamming STFT images (32 ms / 10 ms, 256 "
                           "bins) at 224x224 into an ImageNet ResNet-18: the paper's front end, frozen here (the "
                           "paper fine-tunes it end to end)",
                           {"segments": 6, "image_size": 224, "encoder": "resnet18", "weights": "imagenet"}),
        },
        note="Searched under the paper preset: dropout (not stated in the paper). Alpha and beta (Eq. 14-16 "
             "margins) are not given numerically in the paper and keep 0.2. Not reproduced: end-to-end "
             "fine-tuning of the backbones (see `harness e2e`), data augmentation, the 10 repetitions per seed."
    )}
    paper: ClassVar[dict[str, Any]] = presets["paper"].values

    def __init__(self, polarity: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(polarity=polarity, **params)

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        return {"lr": Param.loguniform(1e-4, 3e-3), "dropout": Param.choice(0.1, 0.3)}

    def resolve_modalities(self, data) -> list[str]:
        streams = self.params["streams"]
        if streams == "av":
            return super().resolve_modalities(data)
        if streams not in data.sequences:
            raise ValueError(f"AVCrossAttention(streams={streams!r}) needs {streams} sequences; the data offers "
                             f"{sorted(data.sequences)}")
        return [streams]

    def build_network(self, dims: dict[str, int], n_classes: int) -> nn.Module:
        p = self.params
        if p["loss"] not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {p['loss']!r}")
        if p["metric_loss"] not in METRIC_LOSSES:
            raise ValueError(f"metric_loss must be one of {METRIC_LOSSES}, got {p['metric_loss']!r}")
        polarity = p["polarity"] if p["metric_loss"] == "emotion" else None  # triplet: every anchor plain
        self._class_polarity = polarity_vector(self.classes_, polarity)
        head = AVCrossAttentionHead(dims.get("video", 1), dims.get("audio", 1), n_classes, p["n_snippets"],
                                    p["positions_per_snippet"], p["m"], p["m_prime"], p["heads"], p["hidden"],
                                    p["dropout"], p["use_vs"], p["use_vc"], p["use_vt"], p["use_at"], p["fusion"],
                                    streams=p["streams"])
        return AVCrossAttentionNet(head, p["n_snippets"], p["positions_per_snippet"],
                                   p["audio_positions_per_snippet"], detach_head=p["loss"] == "metric")

    def loss(self, out: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """CE (which, for loss="metric", reaches only the classifier: its input is detached) + metric term."""
        ce = super().loss(out, batch)
        mode = self.params["loss"]
        if mode == "ce":
            return ce
        metric = emotion_metric_loss(nn.functional.normalize(out["embedding"].float(), dim=1), batch["y"],
                                     self._class_polarity, self.params["alpha"], self.params["beta"])
        return ce + (1.0 if mode == "metric" else self.params["metric_weight"]) * metric

    def fit(self, train, val=None) -> AVCrossAttention:
        super().fit(train, val)
        if self.params["loss"] != "ce" and self.params["metric_loss"] == "emotion":
            self.notes_["polarity_missing"] = int(not self.params["polarity"])
        return self


# Leave-one-out switches (in the default suite), the loss options, and the rows of the paper's Table 1
# (cumulative attention modules, trained with the plain triplet loss) and Table 3 (plain triplet vs emotion
# metric loss), by name only.
_TRIPLET = {"loss": "metric", "metric_loss": "triplet"}
_ABLATIONS: dict[str, tuple[dict[str, Any], str, bool, tuple[str, ...]]] = {
    "av-xattn-no-vs": ({"use_vs": False}, "without visual spatial attention (VS)", True, ()),
    "av-xattn-no-vc": ({"use_vc": False}, "without visual channel attention (VC)", True, ()),
    "av-xattn-no-vt": ({"use_vt": False}, "without visual temporal attention (VT)", True, ()),
    "av-xattn-no-at": ({"use_at": False}, "without audio temporal attention (AT)", True, ()),
    "av-xattn-concat": ({"fusion": "concat"}, "plain concatenation instead of cross-attention fusion", True, ()),
    "av-xattn-ce": ({"loss": "ce"}, "cross-entropy only (no metric loss)", False, ()),
    "av-xattn-emotion": ({"loss": "metric", "metric_loss": "emotion"},
                         "Table 3: emotion metric loss (Eq. 16) alone, classifier on the detached embedding",
                         False, ()),
    "av-xattn-triplet": (dict(_TRIPLET), "Table 3: plain triplet loss alone (no polarity map), classifier on "
                         "the detached embedding", False, ()),
    "av-xattn-t1-at": ({**_TRIPLET, "streams": "audio"}, "Table 1: audio stream alone with AT", False,
                       ("audio",)),
    "av-xattn-t1-vs": ({**_TRIPLET, "streams": "video", "use_vc": False, "use_vt": False},
                       "Table 1: visual stream alone with VS", False, ("video",)),
    "av-xattn-t1-vs-vc": ({**_TRIPLET, "streams": "video", "use_vt": False},
                          "Table 1: visual stream alone with VS + VC", False, ("video",)),
    "av-xattn-t1-vs-vc-vt": ({**_TRIPLET, "streams": "video"}, "Table 1: visual stream alone with VS + VC + VT",
                             False, ("video",)),
    "av-xattn-t1-full": (dict(_TRIPLET), "Table 1: both streams, all attention modules, cross-attention fusion",
                         False, ()),
}

register(MethodSpec("av-xattn", AVCrossAttention, description="A-V cross-attention + emotion metric loss "
                    "(Mocanu et al. 2023), on pre-extracted features"))
for _name, (_fixed, _what, _default, _mods) in _ABLATIONS.items():
    register(MethodSpec(_name, AVCrossAttention, fixed=_fixed, description=f"av-xattn ablation: {_what}",
                        in_default_suite=_default, modalities=_mods))
