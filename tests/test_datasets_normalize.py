"""Per-speaker z-score normalisation (harness.normalize)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.normalize import per_speaker_zscore, per_speaker_zscore_sequences


def test_each_speaker_gets_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(5, 2, (30, 3)), rng.normal(-1, 0.5, (20, 3))])
    speakers = ["a"] * 30 + ["b"] * 20
    z = per_speaker_zscore(x, speakers)
    assert z.dtype == np.float32 and z.shape == x.shape
    for rows in (slice(0, 30), slice(30, 50)):
        np.testing.assert_allclose(z[rows].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(z[rows].std(0), 1, atol=1e-5)
    # Label-free and per speaker: speaker b's rows depend only on speaker b's rows.
    np.testing.assert_allclose(per_speaker_zscore(x[30:], speakers[30:]), z[30:], atol=1e-6)


def test_unavailable_rows_are_left_alone_and_ignored():
    x = np.array([[1.0, 0.0], [3.0, 0.0], [100.0, 7.0], [5.0, 5.0]])
    z = per_speaker_zscore(x, ["a", "a", "a", "b"], available=np.array([True, True, False, True]))
    np.testing.assert_allclose(z[:2], [[-1, 0], [1, 0]])  # constant dimension: centred, not divided by 0
    np.testing.assert_allclose(z[2], x[2])
    np.testing.assert_allclose(z[3], [0, 0])  # a single clip: centred


def test_shape_errors_are_explicit():
    with pytest.raises(ValueError, match="3 rows but 2 speakers"):
        per_speaker_zscore(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match=r"expected \[N, D\]"):
        per_speaker_zscore(np.zeros(3), ["a", "b", "c"])


def test_sequences_use_all_frames_of_a_speaker():
    rng = np.random.default_rng(1)
    seqs = [rng.normal(3, 2, (n, 4)) for n in (5, 9, 7)] + [np.zeros((0, 4))]
    z = per_speaker_zscore_sequences(seqs, ["a", "a", "b", "a"])
    frames_a = np.concatenate([z[0], z[1]])
    np.testing.assert_allclose(frames_a.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(frames_a.std(0), 1, atol=1e-5)
    assert [s.shape for s in z] == [(5, 4), (9, 4), (7, 4), (0, 4)]
