"""Corrupted media: each corruption does what its name says (SNR measured), each level/seed is its own cache
entry, and a corrupted extraction runs end to end through the feature runner on the built-in corpus."""

from __future__ import annotations

import numpy as np
import pytest

from harness.features.base import ClipInput, ExtractorConfigError, build_extractor
from harness.features.extractors.corrupted import CORRUPTIONS, snr_db


def tone(seconds: float = 1.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


def corrupted(corruption: str, level: float, base: str = "egemaps", seed: int = 0, **extra):
    return build_extractor("corrupted", {"base": base, "corruption": corruption, "level": level, "seed": seed,
                                         **extra})


@pytest.mark.parametrize("level", CORRUPTIONS["white-noise"].levels)
def test_white_noise_reaches_the_requested_snr(level):
    clean = tone()
    noisy = corrupted("white-noise", level).corrupt(ClipInput("c1", audio=clean)).audio
    assert snr_db(clean, noisy) == pytest.approx(level, abs=0.01)


def test_babble_reaches_the_snr_and_never_uses_the_clip_itself(tmp_path):
    import soundfile as sf

    rate = 16_000
    paths = []
    for k, freq in enumerate((150.0, 250.0, 400.0)):
        t = np.arange(rate // 2) / rate
        path = tmp_path / f"talker{k}.wav"
        sf.write(str(path), (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
        paths.append(str(path))
    extractor = corrupted("babble", 5.0, noise_paths=paths)
    clean = tone()
    noisy = extractor.corrupt(ClipInput("talker0", audio=clean)).audio
    assert snr_db(clean, noisy) == pytest.approx(5.0, abs=0.01)
    assert len(extractor.noise_bank(exclude="talker0")) == 2
    with pytest.raises(ExtractorConfigError, match="noise_paths"):
        corrupted("babble", 5.0)


def test_band_limit_removes_energy_above_the_cutoff():
    clean = tone()
    limited = corrupted("band-limit", 1000.0).corrupt(ClipInput("c", audio=clean)).audio
    spectrum = np.abs(np.fft.rfft(limited))
    freqs = np.fft.rfftfreq(len(limited), 1 / 16_000)
    high = spectrum[(freqs > 2900) & (freqs < 3100)].max()
    low = spectrum[(freqs > 200) & (freqs < 240)].max()
    assert high < 1e-3 * low


def test_video_corruptions():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
    clip = ClipInput("v", frames=frames, fps=12.0, video_path="/somewhere/v.mp4")
    blurred = [corrupted("blur", s, base="frame-grid").corrupt(clip).frames.astype(float).std() for s in (1, 2, 4)]
    assert frames.std() > blurred[0] > blurred[1] > blurred[2]
    lower = corrupted("occlude-lower", 0.5, base="frame-grid").corrupt(clip)
    assert np.all(lower.frames[:, 32:] == 0) and np.array_equal(lower.frames[:, :32], frames[:, :32])
    assert lower.video_path is None  # the face-crop cache of the clean file is never used
    upper = corrupted("occlude-upper", 0.25, base="frame-grid").corrupt(clip).frames
    assert np.all(upper[:, :16] == 0) and np.array_equal(upper[:, 16:], frames[:, 16:])
    dropped = corrupted("frame-drop", 0.5, base="frame-grid").corrupt(clip).frames
    repeats = sum(np.array_equal(dropped[i], dropped[i - 1]) for i in range(1, 8))
    assert repeats == round(0.5 * 7) and np.array_equal(dropped[0], frames[0])


def test_word_dropout_removes_the_stated_share_and_keeps_order():
    clip = ClipInput("t", text="one two three four five six seven eight nine ten")
    out = corrupted("word-dropout", 0.3, base="minilm").corrupt(clip).text.split()
    assert len(out) == 7 and out == [w for w in clip.text.split() if w in out]


def test_corruption_must_match_an_input_of_the_base_extractor():
    with pytest.raises(ExtractorConfigError, match="degrades video"):
        corrupted("blur", 1.0, base="egemaps")
    with pytest.raises(ExtractorConfigError, match="option corruption must be one of 'white-noise', .*got 'rain'"):
        corrupted("rain", 1.0)
    with pytest.raises(ExtractorConfigError, match="base=EXTRACTOR"):
        build_extractor("corrupted", {"corruption": "blur"})


def test_cache_key_differs_per_level_and_seed_and_not_per_spelling():
    keys = {(level, seed): corrupted("white-noise", level, seed=seed).cache_key("m")
            for level in (20, 10) for seed in (0, 1)}
    assert len(set(keys.values())) == 4
    assert corrupted("white-noise", 10, seed=0).cache_key("m") == corrupted(
        "white-noise", 10.0, seed=0, base_config={"sample_rate": 16_000}).cache_key("m")
    assert corrupted("white-noise", 10).cache_key("m") != build_extractor("egemaps").cache_key("m")
    assert corrupted("white-noise", 10).cache_key("m") != corrupted("babble", 10, noise_paths=["x.wav"]).cache_key("m")


def test_noise_is_seeded_per_clip():
    clean = tone(0.25)
    extractor = corrupted("white-noise", 10.0, seed=3)
    first = extractor.corrupt(ClipInput("a", audio=clean)).audio
    assert np.array_equal(first, extractor.corrupt(ClipInput("a", audio=clean)).audio)
    assert not np.array_equal(first, extractor.corrupt(ClipInput("b", audio=clean)).audio)


def _subset(root, n: int):
    from harness.datasets.synthetic import scan
    from harness.manifest import Manifest

    manifest = scan(root)
    return Manifest(manifest.dataset, manifest.root, manifest.classes, manifest.table.iloc[:n].copy())


def test_corrupted_extraction_end_to_end_is_cached_per_level(small_synthetic, tmp_path):
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    manifest = _subset(small_synthetic, 6)
    store = FeatureStore(str(tmp_path / "store"))
    clean = extract(manifest, "frame-grid", store, executor="local", verbose=False)
    results = {}
    for sigma in (1.0, 4.0):
        config = {"base": "frame-grid", "corruption": "blur", "level": sigma, "seed": 0}
        results[sigma] = extract(manifest, "corrupted", store, config, executor="local", verbose=False)
        assert results[sigma].n_extracted_now == 6 and results[sigma].n_failed == 0
    assert results[1.0].key != results[4.0].key
    assert results[1.0].stored.pooled.shape == clean.stored.pooled.shape
    # blur flattens the grid: the per-frame spread of cells (pooled second half = std over frames) shrinks
    distance = [np.abs(results[s].stored.pooled - clean.stored.pooled).mean() for s in (1.0, 4.0)]
    assert 0 < distance[0] < distance[1]
    again = extract(manifest, "corrupted", store, {"base": "frame-grid", "corruption": "blur", "level": 1.0},
                    executor="local", verbose=False)
    assert again.cached and again.key == results[1.0].key


@pytest.mark.slow
def test_corrupted_audio_extraction_on_ray(small_synthetic, tmp_path, ray_session):
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    manifest = _subset(small_synthetic, 8)
    store = FeatureStore(str(tmp_path / "store"))
    clean = extract(manifest, "egemaps", store, verbose=False)
    noisy = extract(manifest, "corrupted", store, {"base": "egemaps", "corruption": "white-noise", "level": 0.0},
                    verbose=False)
    assert noisy.n_extracted_now == 8 and noisy.n_failed == 0 and not noisy.cached
    assert noisy.stored.pooled.shape == clean.stored.pooled.shape
    assert not np.allclose(noisy.stored.pooled, clean.stored.pooled)


def _stored(data, modality: str, noise: float, drop: int = 0, seed: int = 0):
    import pandas as pd

    from harness.features.store import StoredFeatures

    rng = np.random.default_rng(seed)
    pooled = data.pooled[modality] + noise * rng.standard_normal(data.pooled[modality].shape).astype(np.float32)
    ids = data.ids[drop:]
    return StoredFeatures(ids=ids, pooled=pooled[drop:], sequences=[p[None, :] for p in pooled[drop:]],
                          failures=pd.DataFrame(columns=["clip_id", "stage", "error"]))


def test_evaluate_corrupted_orders_levels_and_degrades():
    from fixtures.robustness_data import fit_models, speaker_folds, tiny_data

    from harness.robustness.corrupt import evaluate_corrupted, with_features

    data = tiny_data(dims={"audio": 6, "video": 2})
    folds = speaker_folds(data)
    models = fit_models("late-average-svm", data, folds, C=1.0)
    # levels in SNR dB: 20 (mild) .. 0 (severe) -> more noise on the features
    features = {20.0: _stored(data, "audio", 0.1), 10.0: _stored(data, "audio", 2.0), 0.0: _stored(data, "audio", 20.0)}
    frame = evaluate_corrupted(models, data, folds, "audio", "white-noise", features, seed=0)
    uar = frame[frame["metric"] == "uar"].groupby("rate")["value"].mean()
    assert list(uar.index) == [0.0, 1 / 3, 2 / 3, 1.0]
    assert uar[1 / 3] == pytest.approx(uar[0.0], abs=0.1) and uar[1.0] < uar[0.0] - 0.15
    levels = frame.drop_duplicates("rate").set_index("rate")["level"]
    assert levels[1 / 3] == 20.0 and levels[1.0] == 0.0 and np.isnan(levels[0.0])
    swapped = with_features(data, "audio", _stored(data, "audio", 0.0, drop=3))
    assert not swapped.available["audio"][:3].any() and swapped.available["audio"][3:].all()
    assert np.all(swapped.pooled["audio"][:3] == 0)
