"""The built-in synthetic corpus: real media files generated deterministically, to exercise the pipeline.

It is NOT emotional speech. It exists so that `harness run --all` works end to end on a machine without any
downloaded corpus, through exactly the decode and extraction path that real data takes (soundfile for WAV,
PyAV/decord for MP4). Each clip has:
  audio  a WAV of a harmonic "voice" whose pitch, pitch range, loudness and syllable rate depend mostly on the
         emotion's arousal (angry/happy high, neutral/sad low), plus speaker and clip variation;
  video  an MP4 of a drawn face whose mouth curvature carries valence (smile / flat / frown) and whose brows
         separate angry (lowered) from sad (raised), with speaker look and head jitter;
  text   a transcript, informative for only part of the clips (the rest use emotion-neutral sentences).
Each modality alone is clearly imperfect (audio confuses within an arousal level, video within a valence
level, text is mostly uninformative); combining them resolves most confusions, so fusion can beat every single
modality. Speakers are distinct (own pitch, face geometry and skin tone), so speaker-independent folds matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness import atomic
from harness.datasets import DatasetSpec, register_dataset
from harness.manifest import Manifest
from harness.protocols import ProtocolSpec

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "angry", "sad")
SAMPLE_RATE = 16_000
FPS = 12
FRAME_SIZE = 64
CLIP_SECONDS = 1.5
DONE_MARKER = "COMPLETE"

# (arousal, valence, brow) per emotion. Audio sees arousal, video sees valence and brows, text sees words.
_AFFECT = {
    "neutral": (0.0, 0.0, 0.0),
    "happy": (1.0, 1.0, 0.3),
    "angry": (1.0, -1.0, -1.0),
    "sad": (0.0, -1.0, 1.0),
}
_NEUTRAL_SENTENCES = (
    "The train leaves the station at five.",
    "I put the folder on the table by the window.",
    "We talked about the schedule for next week.",
    "The package arrived this morning.",
    "She read the report before lunch.",
    "They moved the chairs into the other room.",
)
_CUE_SENTENCES = {
    "neutral": ("The meeting is on Tuesday as usual.", "Nothing much happened today, it was ordinary."),
    "happy": ("This is wonderful news, I love it!", "I am so glad we did this together."),
    "angry": ("I cannot believe you did this again!", "Stop it, this is completely unacceptable."),
    "sad": ("I miss how things used to be.", "Nobody came, and I feel so alone."),
}


@dataclass(frozen=True)
class SyntheticConfig:
    n_speakers: int = 8
    clips_per_emotion: int = 6
    seed: int = 0
    cue_probability: float = 0.35


def _speaker_traits(rng: np.random.Generator, index: int) -> dict[str, float]:
    female = index % 2 == 1
    return {
        "f0": float(rng.uniform(190, 230) if female else rng.uniform(100, 135)),
        "loudness": float(rng.uniform(0.8, 1.2)),
        "rate": float(rng.uniform(0.85, 1.15)),
        "face_width": float(rng.uniform(0.32, 0.42)),
        "skin": float(rng.uniform(0.45, 0.8)),
        "mouth_width": float(rng.uniform(0.12, 0.2)),
        "brow_height": float(rng.uniform(-0.03, 0.03)),
    }


def _voice(rng: np.random.Generator, traits: dict[str, float], arousal: float, valence: float) -> np.ndarray:
    """A syllabic harmonic signal: arousal raises pitch, range, energy and rate; valence tilts slightly."""
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noisy = lambda sd: rng.normal(0.0, sd)  # noqa: E731 - clip-level variation, deliberately large
    f0 = traits["f0"] * (1.0 + 0.22 * arousal + 0.04 * valence + noisy(0.08))
    f0_range = max(0.02, 0.06 + 0.10 * arousal + noisy(0.04))
    energy = traits["loudness"] * max(0.05, 0.25 + 0.25 * arousal + noisy(0.09))
    rate = traits["rate"] * max(2.0, 3.5 + 1.6 * arousal + noisy(0.7))
    contour = 1.0 + f0_range * np.sin(2 * np.pi * rng.uniform(0.4, 1.2) * t + rng.uniform(0, 2 * np.pi))
    jitter = 1.0 + 0.01 * np.cumsum(rng.normal(0, 0.05, n)) / np.sqrt(np.arange(1, n + 1))
    phase = 2 * np.pi * np.cumsum(f0 * contour * jitter) / SAMPLE_RATE
    tilt = 1.0 + 0.6 * arousal
    source = sum((1.0 / k ** (2.0 / tilt)) * np.sin(k * phase) for k in range(1, 12))
    syllable = np.clip(np.sin(np.pi * rate * t + rng.uniform(0, np.pi)), 0.0, None) ** 1.5
    signal = energy * syllable * source / 3.0 + rng.normal(0.0, 0.01, n)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def _face_frames(rng: np.random.Generator, traits: dict[str, float], valence: float, brow: float,
                 n_frames: int, syllable_rate: float) -> np.ndarray:
    """RGB frames [T, H, W, 3] of a drawn face: mouth curvature = valence, brow slant = brow, with jitter."""
    size = FRAME_SIZE
    yy, xx = np.mgrid[0:size, 0:size] / size
    curvature = 0.9 * valence + rng.normal(0.0, 0.45)
    brow_slant = 0.9 * brow + rng.normal(0.0, 0.5)
    background = rng.uniform(0.1, 0.3)
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    for i in range(n_frames):
        cx = 0.5 + rng.normal(0.0, 0.02)
        cy = 0.5 + rng.normal(0.0, 0.02)
        w = traits["face_width"]
        img = np.full((size, size), background)
        face = ((xx - cx) / w) ** 2 + ((yy - cy) / (w * 1.25)) ** 2 <= 1.0
        img[face] = traits["skin"]
        for side in (-1, 1):
            ex, ey = cx + side * 0.13, cy - 0.08
            img[((xx - ex) ** 2 + (yy - ey) ** 2) < 0.0012] = 0.05
            # Brow: a short line whose inner end moves down (angry, slant < 0) or up (sad, slant > 0).
            for s in np.linspace(0, 1, 12):
                bx = ex + side * (s - 0.5) * 0.14
                inner = 1.0 - s if side > 0 else s
                by = ey - 0.07 + traits["brow_height"] - 0.035 * brow_slant * inner
                img[(np.abs(xx - bx) < 0.012) & (np.abs(yy - by) < 0.01)] = 0.1
        openness = 0.012 + 0.02 * max(0.0, np.sin(np.pi * syllable_rate * i / FPS))
        mw = traits["mouth_width"]
        for s in np.linspace(-1, 1, 24):
            mx = cx + s * mw
            my = cy + 0.17 + 0.05 * curvature * (1.0 - s * s)
            img[(np.abs(xx - mx) < 0.012) & (np.abs(yy - my) < openness)] = 0.15
        img = img + rng.normal(0.0, 0.04, img.shape)
        rgb = np.stack([img, img * 0.85, img * 0.75], axis=-1)
        frames[i] = (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    return frames


def _write_wav(path: Path, audio: np.ndarray) -> None:
    import soundfile as sf

    with atomic.atomic_path(path) as tmp:
        sf.write(str(tmp), audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")


def _write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    """MPEG-4 video with the clip's audio as an AAC track (so audio can also be read from the video file)."""
    import av

    with atomic.atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            video = container.add_stream("mpeg4", rate=FPS)
            video.width, video.height, video.pix_fmt = FRAME_SIZE, FRAME_SIZE, "yuv420p"
            # MPEG-4 Part 2, single-threaded: bit-identical on every generation. libx264 gave a slightly different
            # bitstream (and so different pixels and features) from run to run, even with one thread.
            video.bit_rate = 600_000
            video.codec_context.thread_count = 1
            sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            for frame in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
            pcm = (audio * 32767).astype(np.int16)[None, :]
            audio_frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            audio_frame.sample_rate = SAMPLE_RATE
            for packet in sound.encode(audio_frame):
                container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)


def _transcript(rng: np.random.Generator, emotion: str, cue_probability: float) -> str:
    if rng.random() < cue_probability:
        options = _CUE_SENTENCES[emotion]
    else:
        options = _NEUTRAL_SENTENCES
    return str(options[int(rng.integers(len(options)))])


def generate(root: Path, config: SyntheticConfig = SyntheticConfig()) -> None:
    """Write the corpus under `root` (idempotent: a complete corpus is left alone, a partial one is finished).

    Layout: `speaker_XX/<clip_id>.wav`, `.mp4`, and `metadata.csv` (clip_id, speaker, label, text).
    """
    root = Path(root)
    if (root / DONE_MARKER).exists():
        return
    rows = []
    n_frames = int(CLIP_SECONDS * FPS)
    for speaker_index in range(config.n_speakers):
        speaker = f"spk{speaker_index:02d}"
        traits = _speaker_traits(np.random.default_rng([config.seed, speaker_index]), speaker_index)
        for emotion_index, emotion in enumerate(EMOTIONS):
            arousal, valence, brow = _AFFECT[emotion]
            for take in range(config.clips_per_emotion):
                rng = np.random.default_rng([config.seed, speaker_index, emotion_index, take])
                clip_id = f"{speaker}_{emotion}_{take:02d}"
                wav_path = root / speaker / f"{clip_id}.wav"
                mp4_path = root / speaker / f"{clip_id}.mp4"
                audio = _voice(rng, traits, arousal, valence)
                frames = _face_frames(rng, traits, valence, brow, n_frames, syllable_rate=4.0 + arousal)
                text = _transcript(rng, emotion, config.cue_probability)
                if not wav_path.exists():
                    _write_wav(wav_path, audio)
                if not mp4_path.exists():
                    _write_mp4(mp4_path, frames, audio)
                rows.append({"clip_id": clip_id, "speaker": speaker, "label": emotion, "text": text,
                             "audio_path": f"{speaker}/{clip_id}.wav", "video_path": f"{speaker}/{clip_id}.mp4"})
    with atomic.atomic_path(root / "metadata.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    atomic.write_text(root / DONE_MARKER, f"{config}\n")


def scan(root: Path) -> Manifest:
    root = Path(root)
    metadata = root / "metadata.csv"
    if not (root / DONE_MARKER).exists():
        raise FileNotFoundError(f"{root}: the synthetic corpus is incomplete; run `harness data scan synthetic`"
                                " (or delete the folder) to regenerate it")
    table = pd.read_csv(metadata, dtype=str, keep_default_na=False)
    return Manifest("synthetic", root, list(EMOTIONS), table)


def is_present(root: Path) -> bool:
    return (Path(root) / DONE_MARKER).exists()


SPEC = register_dataset(DatasetSpec(
    name="synthetic",
    title="Built-in synthetic corpus (pipeline exercise, not emotional speech)",
    classes=EMOTIONS,
    modalities=("audio", "video", "text"),
    protocol=ProtocolSpec("speaker-kfold", {"k": 4}),
    features={"audio": "egemaps", "video": "frame-grid", "text": "minilm"},
    scan=scan,
    is_present=is_present,
    prepare=generate,
    polarity={"neutral": "neutral", "happy": "positive", "angry": "negative", "sad": "negative"},
    description="8 speakers x 4 emotions x 6 clips, generated deterministically on first use.",
    source="generated by harness.datasets.synthetic",
))
