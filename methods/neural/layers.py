"""Building blocks shared by the neural methods: masked attention, transformer blocks, masked pooling.

Masks are boolean with True = a real position; every block takes the mask of the sequence it attends over, so
padding never reaches a softmax (padded keys get -inf) and never reaches a mean (padded rows get weight 0).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Attention(nn.Module):
    """Scaled dot-product attention, multi-head, with the key mask applied before the softmax.

    Written out (instead of `nn.MultiheadAttention`) because the papers differ in whether an output projection
    exists (Xie et al. Eq. 6-8 have none; Transformer/SSE-FT and Mocanu et al. have one) and because the A-V
    method needs the channel attention with an embedding width that is not a multiple of the head count.
    """

    def __init__(self, dim: int, heads: int = 1, out_proj: bool = True, dropout: float = 0.0,
                 kv_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        kv_dim = kv_dim or dim
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim) if out_proj else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        b, tq, d = query.shape
        tk = keys.shape[1]
        h, dh = self.heads, d // self.heads
        q = self.q(query).view(b, tq, h, dh).transpose(1, 2)
        k = self.k(keys).view(b, tk, h, dh).transpose(1, 2)
        v = self.v(keys).view(b, tk, h, dh).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(dh)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        if key_mask is not None:  # padded values may be anything finite; make their weight exactly zero
            v = v.masked_fill(~key_mask[:, None, :, None], 0.0)
        out = (weights @ v).transpose(1, 2).reshape(b, tq, d)
        return self.out(out)


class TransformerBlock(nn.Module):
    """Post-LN transformer block: z = LN(q + Attn(q, kv)); out = LN(z + FFN(z)).

    With `kv` = `q` it is a self-attention encoder block; with another modality as `kv` it is the cross-modal
    block of Xie et al. (Eq. 6-11, ffn_mult=2, no output projection) or an IMA block of SSE-FT/Chaudhari et al.
    """

    def __init__(self, dim: int, heads: int = 1, ffn_mult: int = 4, dropout: float = 0.1,
                 out_proj: bool = True) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, out_proj=out_proj)  # no dropout on attention weights: cost, not gain
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        keys = query if keys is None else keys
        z = self.norm1(query + self.drop(self.attn(query, keys, key_mask)))
        return self.norm2(z + self.drop(self.ffn(z)))


class CLSToken(nn.Module):
    """A learnable token prepended to a sequence (the audio and video CLS of SSE-FT / IMA-Hadamard)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls = self.token.expand(x.shape[0], 1, -1)
        ones = torch.ones(x.shape[0], 1, dtype=torch.bool, device=mask.device)
        return torch.cat([cls, x], dim=1), torch.cat([ones, mask], dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of the real positions: [B, T, D], [B, T] -> [B, D] (padding has weight exactly 0)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    total = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x)).sum(dim=1)
    return total / weights.sum(dim=1).clamp_min(1.0)


def segment_weights(lengths: torch.Tensor, n_segments: int, max_len: int) -> torch.Tensor:
    """[B, K, T] averaging weights that cut each clip's *real* length into K contiguous, near-equal segments.

    Segment k of a clip of length L covers frames [floor(k L / K), max(floor(k L / K) + 1, ceil((k+1) L / K))),
    so every segment has at least one frame (short clips repeat frames, long ones are averaged). Depending only
    on L, not on the padded width T, is what makes resampling invariant to padding.
    """
    k = torch.arange(n_segments, device=lengths.device, dtype=torch.float64)
    length = lengths.to(torch.float64).clamp_min(1.0)[:, None]
    start = torch.floor(k[None, :] * length / n_segments)
    end = torch.maximum(start + 1, torch.ceil((k[None, :] + 1) * length / n_segments))
    t = torch.arange(max_len, device=lengths.device, dtype=torch.float64)
    inside = (t[None, None, :] >= start[:, :, None]) & (t[None, None, :] < end[:, :, None])
    weights = inside.to(torch.float32)
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(1.0)


def segment_pool(x: torch.Tensor, mask: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Resample the real part of each sequence to exactly `n_segments` positions: [B, T, D] -> [B, K, D]."""
    weights = segment_weights(mask.sum(dim=1), n_segments, x.shape[1]).to(x.dtype)
    return weights @ torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
