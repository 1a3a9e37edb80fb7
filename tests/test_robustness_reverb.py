"""Reverberation corruption: the synthetic room impulse response decays at the stated RT60 (Schroeder backward
integration, T30 fit), the corrupted clip carries that decay, and each (level, seed) is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from harness.features.base import ClipInput, build_extractor
from harness.features.extractors.corrupted import CORRUPTIONS, decay_rt60, room_impulse_response

RATE = 16_000


@pytest.mark.parametrize("rt60", CORRUPTIONS["reverb"].levels)
def test_impulse_response_decays_60_db_in_the_stated_rt60(rt60):
    response = room_impulse_response(rt60, RATE, np.random.default_rng(3))
    assert np.sum(np.square(response)) == pytest.approx(1.0)
    assert decay_rt60(response, RATE) == pytest.approx(rt60, rel=0.1)


def test_reverberated_click_rings_for_the_rt60_and_keeps_the_loudness():
    extractor = build_extractor("corrupted", {"base": "egemaps", "corruption": "reverb", "level": 0.6, "seed": 1})
    click = np.zeros(RATE * 2, np.float32)
    click[0] = 1.0
    wet = extractor.corrupt(ClipInput("c1", audio=click)).audio
    # a click through the room is the (rescaled) impulse response itself: its decay gives the RT60 back
    assert decay_rt60(wet, RATE) == pytest.approx(0.6, rel=0.1)
    assert np.sqrt(np.mean(np.square(wet))) == pytest.approx(np.sqrt(np.mean(np.square(click))), rel=1e-4)
    # energy after 0.6 s (one RT60) is about 60 dB below the start: nothing is left of the tail
    energy = np.square(wet.astype(np.float64))
    early, late = energy[: RATE // 100].mean(), energy[int(0.6 * RATE) - RATE // 100: int(0.6 * RATE)].mean()
    assert 10 * np.log10(late / early) < -45


def test_longer_rt60_smears_more_and_the_seed_fixes_the_room():
    t = np.arange(RATE) / RATE
    burst = (np.sin(2 * np.pi * 300 * t) * (t < 0.2)).astype(np.float32)
    tails = {}
    for rt60 in (0.3, 1.2):
        extractor = build_extractor("corrupted", {"base": "egemaps", "corruption": "reverb", "level": rt60})
        wet = extractor.corrupt(ClipInput("c", audio=burst)).audio
        tails[rt60] = float(np.mean(np.square(wet[int(0.4 * RATE):])) / np.mean(np.square(wet)))
        again = extractor.corrupt(ClipInput("c", audio=burst)).audio
        np.testing.assert_array_equal(wet, again)
    assert tails[1.2] > 10 * tails[0.3]
    with pytest.raises(ValueError, match="RT60"):
        room_impulse_response(0.0, RATE, np.random.default_rng(0))
