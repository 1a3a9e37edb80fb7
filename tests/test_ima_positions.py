"""IMA-Hadamard's learned positional embeddings (SSE-FT) and its `sse-ft` preset."""

from __future__ import annotations

import pytest
import torch

from methods import get_method
from methods.neural.ima_hadamard import IMAHadamardNet

DIMS = {"audio": 6, "video": 5, "text": 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batch(t: int = 7, b: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": {m: torch.randn(b, t, d, generator=g) for m, d in DIMS.items()},
            "mask": {m: torch.ones(b, t, dtype=torch.bool) for m in DIMS},
            "avail": {m: torch.ones(b, dtype=torch.bool) for m in DIMS}}


def permuted_audio(data: dict) -> dict:
    """The same clips with the audio frames in reverse order (the mask is all True, so nothing else moves)."""
    x = dict(data["x"])
    x["audio"] = x["audio"].flip(dims=[1])
    return {**data, "x": x}


def net(positional: str, max_positions: int = 16) -> IMAHadamardNet:
    torch.manual_seed(0)
    model = IMAHadamardNet(DIMS, 4, d_model=8, heads=2, ffn_mult=2, dropout=0.0, fusion="pairs",
                           positional=positional, max_positions=max_positions)
    return model.eval()


def test_without_positions_the_audio_order_does_not_matter_and_with_learned_positions_it_does() -> None:
    data = batch()
    plain = net("none")
    with torch.no_grad():
        assert torch.allclose(plain(data)["logits"], plain(permuted_audio(data))["logits"], atol=1e-5)
    learned = net("learned")
    assert set(learned.pos) == {"audio", "video"}  # text keeps its encoder's own positions
    with torch.no_grad():
        difference = (learned(data)["logits"] - learned(permuted_audio(data))["logits"]).abs().max()
    assert difference > 1e-4


def test_positional_embeddings_are_trained() -> None:
    model = net("learned").train()
    out = model(batch())["logits"]
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2])).backward()
    assert model.pos["audio"].grad is not None and model.pos["audio"].grad.abs().sum() > 0


def test_a_sequence_longer_than_the_table_is_an_error_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="max_positions=4.*max_len"):
        net("learned", max_positions=4)(batch(t=7))
    with pytest.raises(ValueError, match="positional must be one of"):
        IMAHadamardNet(DIMS, 4, 8, 2, 2, 0.0, "pairs", positional="sinusoidal")


def test_paper_and_sse_ft_presets() -> None:
    spec = get_method("ima-hadamard")
    assert spec.build().params["positional"] == "none"  # the benchmark default is unchanged
    assert spec.preset("paper")["positional"] == "learned"
    sse = spec.preset("sse-ft")
    assert (sse["lr"], sse["optimizer"], sse["weight_decay"], sse["max_epochs"], sse["batch_size"],
            sse["heads"], sse["dropout"], sse["positional"], sse["max_positions"]) == (
        1e-3, "adamw", 0.1, 32, 8, 4, 0.1, "learned", 936)
    assert set(sse.sources) == set(sse) and "Training Command" in sse.sources["lr"]
    built = get_method("ima-hadamard@sse-ft").build()
    assert built.params["lr"] == 1e-3 and built.params["positional"] == "learned"
