"""Corrupted media at test time: a wrapper extractor that degrades decoded media, then runs a clean extractor.

`corrupted` is an ordinary registered extractor whose options name the corruption, its level and seed, and the
extractor it wraps (`base`, `base_config`). Because they are options, they are part of the cache key like any
extractor configuration: each (corruption, level, seed) is extracted once, on Ray, by the same runner as clean
features, and stored under `<store>/<dataset>/corrupted/<key>` with its `spec.json` saying what it is.

    build_extractor("corrupted", {"base": "egemaps", "corruption": "white-noise", "level": 10, "seed": 0})

Corruptions (`CORRUPTIONS`; levels are what `level` means, defaults in `DEFAULT_LEVELS`):
  white-noise   audio + Gaussian white noise at `level` dB SNR (20, 10, 5, 0), SNR against the clip's own power
  babble        audio + babble at `level` dB SNR: the sum of up to 4 talkers drawn from `noise_paths` (audio
                files; `harness robustness` fills them with other clips of the corpus, or give a noise corpus)
  band-limit    audio low-passed at `level` Hz (4000, 2000, 1000, 500): an 8th-order Butterworth, zero phase
  reverb        audio convolved with a synthetic room impulse response of RT60 = `level` seconds (0.3, 0.6, 1.2,
                2.4): seeded Gaussian noise under an exponential envelope that falls 60 dB in `level` seconds,
                output rescaled to the clip's own RMS (loudness unchanged, only the room added)
  blur          video Gaussian blur, sigma = `level` x (frame height / 32) pixels (x1, x2, x4)
  occlude-lower video: the lower `level` fraction of every frame (0.25, 0.5) set to black
  occlude-upper video: the upper `level` fraction of every frame (0.25, 0.5) set to black
  frame-drop    video: a `level` fraction of frames (0.25, 0.5, 0.75) replaced by the last delivered frame
  word-dropout  text: round(`level` x words) words removed (0.1, 0.3, 0.5), at least one word kept
Occlusion acts on the frame, not on a detected face box: where the face fills the frame (the built-in corpus,
RAVDESS close-ups) it is the lower or upper face, elsewhere it is the lower or upper picture.
A corruption may target any input of the base extractor: white noise on a text extractor with
`transcript=asr` gives transcripts of noisy speech.

Randomness is per clip, seeded by (seed, clip id, corruption, level), so the result does not depend on which
worker or block a clip lands in. Corrupted clips carry no `video_path`, so the face-crop cache (keyed by the
clean video file) is never used for corrupted frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from harness.features.base import (
    ClipInput,
    Extractor,
    ExtractorConfigError,
    ExtractorOptions,
    Features,
    NonNegative,
    OutputDims,
    build_extractor,
    register_extractor,
)
from harness.hashing import stable_hash

BLUR_HEIGHT_DIVISOR = 32  # sigma x1 = frame height / 32 pixels (2 px on a 64-px frame, 22.5 px on 720 p)
BABBLE_TALKERS = 4


@dataclass(frozen=True)
class Corruption:
    name: str
    modality: str
    levels: tuple[float, ...]  # default severities, mildest first
    unit: str
    apply: Callable[[ClipInput, float, np.random.Generator, CorruptedExtractor], ClipInput]


def noise_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` scaled so that 10 log10(P_signal / P_noise) = snr_db (power = mean square)."""
    p_signal = float(np.mean(np.square(signal, dtype=np.float64)))
    p_noise = float(np.mean(np.square(noise, dtype=np.float64)))
    if p_noise == 0.0:
        raise ValueError("the noise is silent; it cannot be scaled to an SNR")
    return (noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """The SNR of `noisy` against `clean` (noise = noisy - clean), in dB."""
    noise = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    return float(10 * np.log10(np.mean(np.square(clean, dtype=np.float64)) / np.mean(np.square(noise))))


def _white(clip: ClipInput, level: float, rng: np.random.Generator, _: CorruptedExtractor) -> ClipInput:
    audio = clip.audio
    return replace(clip, audio=audio + noise_at_snr(audio, rng.standard_normal(len(audio)), level))


def _babble(clip: ClipInput, level: float, rng: np.random.Generator, owner: CorruptedExtractor) -> ClipInput:
    audio = clip.audio
    talkers = owner.noise_bank(exclude=clip.clip_id)
    chosen = rng.choice(len(talkers), size=min(BABBLE_TALKERS, len(talkers)), replace=False)
    babble = np.zeros(len(audio), np.float64)
    for index in chosen:
        talker = talkers[index]
        start = int(rng.integers(len(talker)))
        looped = np.resize(np.roll(talker, -start), len(audio))  # np.resize repeats a short talker
        babble += looped / max(float(np.sqrt(np.mean(np.square(looped)))), 1e-12)
    return replace(clip, audio=audio + noise_at_snr(audio, babble, level))


def _band_limit(clip: ClipInput, level: float, _: np.random.Generator, owner: CorruptedExtractor) -> ClipInput:
    from scipy.signal import butter, sosfiltfilt

    rate = owner.sample_rate
    if not 0 < level < rate / 2:
        raise ValueError(f"band-limit cutoff {level} Hz must lie below the Nyquist frequency {rate / 2} Hz")
    sos = butter(8, level, btype="lowpass", fs=rate, output="sos")
    return replace(clip, audio=sosfiltfilt(sos, clip.audio).astype(np.float32))


REVERB_TAIL_RT60S = 1.0  # the impulse response lasts one RT60 (down to -60 dB); beyond that it is inaudible


def room_impulse_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: Gaussian noise under exp(-t * 3 ln 10 / rt60), i.e. an energy decay of
    60 dB in `rt60` seconds (the usual stochastic late-reverberation model), unit energy, length one RT60.

    Why synthetic: the built-in corpus and most users have no measured impulse responses, and a seeded model
    with one stated parameter makes the severity axis exact and reproducible."""
    if rt60 <= 0:
        raise ValueError(f"reverb RT60 must be > 0 seconds, got {rt60}")
    n = max(2, int(round(REVERB_TAIL_RT60S * rt60 * sample_rate)))
    t = np.arange(n) / sample_rate
    response = rng.standard_normal(n) * np.exp(-t * 3.0 * np.log(10.0) / rt60)
    response[0] = abs(response[0]) + 1.0  # a direct path, so the dry sound arrives first
    return (response / np.sqrt(np.sum(np.square(response)))).astype(np.float64)


def decay_rt60(response: np.ndarray, sample_rate: int, start_db: float = -5.0, stop_db: float = -35.0) -> float:
    """RT60 estimated from an impulse response: Schroeder backward integration of the energy, a least-squares
    line (scipy.stats.linregress) between `start_db` and `stop_db` (T30), extrapolated to 60 dB."""
    from scipy.stats import linregress

    energy = np.cumsum(np.square(np.asarray(response, np.float64))[::-1])[::-1]
    curve = 10 * np.log10(energy / energy[0])
    inside = np.flatnonzero((curve <= start_db) & (curve >= stop_db))
    if len(inside) < 2:
        raise ValueError(f"the energy decay never spans {start_db} to {stop_db} dB; the response is too short")
    fit = linregress(inside / sample_rate, curve[inside])
    return float(-60.0 / fit.slope)


def _reverb(clip: ClipInput, level: float, rng: np.random.Generator, owner: CorruptedExtractor) -> ClipInput:
    from scipy.signal import fftconvolve

    audio = np.asarray(clip.audio, np.float64)
    wet = fftconvolve(audio, room_impulse_response(level, owner.sample_rate, rng))[: len(audio)]
    rms_in, rms_out = np.sqrt(np.mean(np.square(audio))), np.sqrt(np.mean(np.square(wet)))
    scale = rms_in / rms_out if rms_out > 0 else 0.0
    return replace(clip, audio=(wet * scale).astype(np.float32))


def _blur(clip: ClipInput, level: float, _: np.random.Generator, __: CorruptedExtractor) -> ClipInput:
    from scipy.ndimage import gaussian_filter

    frames = clip.frames
    sigma = level * frames.shape[1] / BLUR_HEIGHT_DIVISOR
    blurred = gaussian_filter(frames.astype(np.float32), sigma=(0, sigma, sigma, 0))
    return replace(clip, frames=np.clip(np.round(blurred), 0, 255).astype(np.uint8))


def _occlude(lower: bool) -> Callable[[ClipInput, float, np.random.Generator, CorruptedExtractor], ClipInput]:
    def apply(clip: ClipInput, level: float, _: np.random.Generator, __: CorruptedExtractor) -> ClipInput:
        frames = clip.frames.copy()
        rows = int(round(level * frames.shape[1]))
        if rows and lower:
            frames[:, -rows:] = 0
        elif rows:
            frames[:, :rows] = 0
        return replace(clip, frames=frames)

    return apply


def _frame_drop(clip: ClipInput, level: float, rng: np.random.Generator, _: CorruptedExtractor) -> ClipInput:
    frames = clip.frames.copy()
    n = len(frames)
    dropped = rng.permutation(np.arange(1, n))[:int(round(level * (n - 1)))] if n > 1 else np.array([], int)
    for index in np.sort(dropped):
        frames[index] = frames[index - 1]  # ascending order: a run of drops repeats the last delivered frame
    return replace(clip, frames=frames)


def _word_dropout(clip: ClipInput, level: float, rng: np.random.Generator, _: CorruptedExtractor) -> ClipInput:
    words = (clip.text or "").split()
    if len(words) <= 1:
        return clip
    n_drop = min(int(round(level * len(words))), len(words) - 1)
    keep = np.sort(rng.permutation(len(words))[n_drop:])
    return replace(clip, text=" ".join(words[i] for i in keep))


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("white-noise", "audio", (20.0, 10.0, 5.0, 0.0), "dB SNR", _white),
    Corruption("babble", "audio", (20.0, 10.0, 5.0, 0.0), "dB SNR", _babble),
    Corruption("band-limit", "audio", (4000.0, 2000.0, 1000.0, 500.0), "Hz low-pass cutoff", _band_limit),
    Corruption("reverb", "audio", (0.3, 0.6, 1.2, 2.4), "s RT60", _reverb),
    Corruption("blur", "video", (1.0, 2.0, 4.0), "x sigma (height/32 px)", _blur),
    Corruption("occlude-lower", "video", (0.25, 0.5), "fraction of frame height", _occlude(lower=True)),
    Corruption("occlude-upper", "video", (0.25, 0.5), "fraction of frame height", _occlude(lower=False)),
    Corruption("frame-drop", "video", (0.25, 0.5, 0.75), "fraction of frames", _frame_drop),
    Corruption("word-dropout", "text", (0.1, 0.3, 0.5), "fraction of words", _word_dropout),
)}
DEFAULT_LEVELS = {name: c.levels for name, c in CORRUPTIONS.items()}
CorruptionName = Literal[tuple(CORRUPTIONS)]  # type: ignore[valid-type]  # the names above, as an option type


def get_corruption(name: str) -> Corruption:
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise ExtractorConfigError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}") from None


def _decoded_inputs(extractor: Extractor) -> set[str]:
    from harness.features.asr import AUDIO_IF_NO_TEXT

    return {"audio" if i == AUDIO_IF_NO_TEXT else i for i in extractor.inputs()}


@register_extractor
class CorruptedExtractor(Extractor):
    """Degrade the decoded input named by `corruption`, then extract with `base` (see the module docstring)."""

    name = "corrupted"
    modality = ""  # the base extractor's, set per instance
    description = "a named corruption (noise, blur, occlusion, frame drop, word dropout) before a base extractor"
    output = "the base extractor's"

    class Options(ExtractorOptions):
        base: str = ""  # required: the clean extractor this one wraps, e.g. "egemaps"
        base_config: dict[str, Any] = {}  # the base extractor's options
        corruption: CorruptionName | None = None  # required
        level: NonNegative = 0.0  # the severity, in the corruption's unit (see the module docstring)
        seed: int = 0
        noise_paths: list[str] = []  # babble: the talkers' audio files

    def output_dims(self) -> OutputDims:
        return self.base.output_dims()

    def training_corpora(self) -> tuple[str, ...] | None:
        """The base extractor's: a corruption changes the input, not what the weights saw."""
        return self.base.training_corpora()

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if not self.config["base"] or self.config["base"] == self.name:
            raise ExtractorConfigError("extractor 'corrupted' needs option base=EXTRACTOR (the clean extractor it "
                                       "wraps, e.g. base=egemaps)")
        if self.config["corruption"] is None:
            raise ExtractorConfigError(f"extractor 'corrupted' needs option corruption=NAME, one of "
                                       f"{sorted(CORRUPTIONS)}")
        self.corruption = get_corruption(self.config["corruption"])
        self.base = build_extractor(str(self.config["base"]), dict(self.config["base_config"] or {}))
        self.modality = self.base.modality
        if self.corruption.modality not in _decoded_inputs(self.base):
            raise ExtractorConfigError(
                f"corruption {self.corruption.name!r} degrades {self.corruption.modality}, but extractor "
                f"{self.base.name!r} reads {sorted(_decoded_inputs(self.base))}; pick a corruption of those inputs")
        if self.corruption.name == "babble" and not self.config["noise_paths"]:
            raise ExtractorConfigError("corruption 'babble' needs noise_paths: audio files to mix (other clips of "
                                       "the corpus, as `harness robustness` passes, or a noise corpus of your own)")
        # resolved options, so the cache key does not depend on which defaults were spelled out
        self.config = {**self.config, "base_config": dict(self.base.config), "level": float(self.config["level"]),
                       "seed": int(self.config["seed"]), "noise_paths": [str(p) for p in self.config["noise_paths"]]}
        self._noise: list[tuple[str, np.ndarray]] | None = None

    # decoding requests are the base extractor's
    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    @property
    def fps(self) -> float | None:
        return self.base.fps

    @property
    def max_frames(self) -> int | None:
        return self.base.max_frames

    def inputs(self) -> tuple[str, ...]:
        return self.base.inputs()

    def weights_identity(self) -> str:
        return f"{self.base.name}@v{self.base.version}|{self.base.weights_identity()}"

    def check_weights(self) -> None:
        self.base.check_weights()

    def setup(self) -> None:
        self.base.cache = self.cache
        self.base.setup()

    def noise_bank(self, exclude: str) -> list[np.ndarray]:
        """The babble talkers (loaded once per worker), without the clip being corrupted if it is among them."""
        from pathlib import Path

        from harness.media import load_audio

        if self._noise is None:
            self._noise = [(Path(p).stem, load_audio(p, self.sample_rate)) for p in self.config["noise_paths"]]
        talkers = [audio for stem, audio in self._noise if stem != exclude and np.any(audio)]
        if not talkers:
            raise ValueError("no usable babble talker (every noise file is this clip or silent)")
        return talkers

    def rng(self, clip_id: str) -> np.random.Generator:
        entropy = stable_hash({"seed": self.config["seed"], "clip": clip_id, "corruption": self.corruption.name,
                               "level": self.config["level"]})
        return np.random.default_rng(int(entropy[:12], 16))

    def corrupt(self, clip: ClipInput) -> ClipInput:
        """The clip with its `corruption.modality` input degraded (and no video_path: see the module docstring)."""
        field = {"audio": "audio", "video": "frames", "text": "text"}[self.corruption.modality]
        if getattr(clip, field) is None:
            raise ValueError(f"{clip.clip_id}: no decoded {self.corruption.modality} to corrupt")
        degraded = self.corruption.apply(clip, float(self.config["level"]), self.rng(clip.clip_id), self)
        return replace(degraded, video_path=None)

    def extract(self, clip: ClipInput) -> Features:
        return self.base.extract(self.corrupt(clip))
