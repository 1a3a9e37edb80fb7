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


def test_sequences_per_speaker_mean_zero_std_one_and_unavailable_clips_untouched():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(loc, scale, (n, 3)) for loc, scale, n in
            [(4, 3, 6), (4, 3, 11), (-2, 0.5, 8), (-2, 0.5, 4), (50, 9, 5)]]
    speakers = ["a", "a", "b", "b", "a"]
    available = np.array([True, True, True, True, False])  # clip 4: a placeholder that must not count
    z = per_speaker_zscore_sequences(seqs, speakers, available)
    for clips in ([0, 1], [2, 3]):
        frames = np.concatenate([z[i] for i in clips])
        np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(frames.std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(z[4], seqs[4].astype(np.float32))
    # the unavailable clip did not enter speaker a's statistics
    np.testing.assert_allclose(per_speaker_zscore_sequences(seqs[:2], speakers[:2])[0], z[0], atol=1e-6)


def test_normalise_by_speaker_covers_pooled_and_sequences():
    from harness.normalize import normalise_by_speaker

    rng = np.random.default_rng(3)
    speakers = ["a", "a", "a", "b", "b"]
    pooled = {"audio": rng.normal(2, 3, (5, 4))}
    sequences = {"audio": [rng.normal(2, 3, (n, 4)) for n in (3, 5, 2, 6, 4)]}
    available = {"audio": np.array([True, True, False, True, True])}
    new_pooled, new_sequences = normalise_by_speaker(pooled, sequences, available, speakers)
    np.testing.assert_allclose(new_pooled["audio"], per_speaker_zscore(pooled["audio"], speakers, available["audio"]))
    np.testing.assert_array_equal(new_pooled["audio"][2], pooled["audio"][2].astype(np.float32))
    np.testing.assert_array_equal(new_sequences["audio"][2], sequences["audio"][2].astype(np.float32))
    frames_b = np.concatenate(new_sequences["audio"][3:])
    np.testing.assert_allclose(frames_b.mean(0), 0, atol=1e-5)
    assert not np.allclose(new_sequences["audio"][0], sequences["audio"][0])
