"""The extractor interface and registry.

An extractor turns one decoded clip into a sequence `[T, D]` and a pooled vector `[D]`. Heavy imports and model
loading belong in `setup()`, which the Ray actor calls once per worker; `__init__` only validates the config, so
building an extractor to compute its cache key is cheap.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.hashing import stable_hash
from harness.registry import Registry


class ExtractorConfigError(ValueError):
    """An unknown or ill-typed extractor option."""


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not available offline; the message says what to download and where to put it."""


@dataclass
class Features:
    sequence: np.ndarray  # [T, D] float32
    pooled: np.ndarray  # [D] float32

    def __post_init__(self) -> None:
        self.sequence = np.asarray(self.sequence, dtype=np.float32)
        self.pooled = np.asarray(self.pooled, dtype=np.float32)
        if self.sequence.ndim != 2 or self.pooled.ndim != 1:
            raise ValueError(f"features must be [T, D] and [D], got {self.sequence.shape} and {self.pooled.shape}")
        if not (np.isfinite(self.sequence).all() and np.isfinite(self.pooled).all()):
            raise ValueError("features contain NaN or infinite values")


@dataclass
class ClipInput:
    """What an extractor receives: decoded media for its modality."""

    clip_id: str
    audio: np.ndarray | None = None  # mono float32 at the extractor's sample_rate
    frames: np.ndarray | None = None  # [T, H, W, 3] uint8
    fps: float | None = None
    text: str | None = None
    video_path: str | None = None  # with the segment bounds, keys the face-crop cache by what was decoded
    video_start: float | None = None  # seconds into video_path where the clip starts (None: the file's start)
    video_end: float | None = None

    def to_bytes(self) -> bytes:
        """Serialise for the hop from a Ray decode task to an encode actor (NPZ, no pickle)."""
        arrays: dict[str, np.ndarray] = {"clip_id": np.array(self.clip_id)}
        if self.audio is not None:
            arrays["audio"] = self.audio
        if self.frames is not None:
            arrays["frames"] = self.frames
        if self.fps is not None:
            arrays["fps"] = np.array(self.fps)
        if self.text is not None:
            arrays["text"] = np.array(self.text)
        for name in ("video_path", "video_start", "video_end"):
            if (value := getattr(self, name)) is not None:
                arrays[name] = np.array(value)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClipInput:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            get = {k: npz[k] for k in npz.files}
        return cls(clip_id=str(get["clip_id"]), audio=get.get("audio"), frames=get.get("frames"),
                   fps=float(get["fps"]) if "fps" in get else None,
                   text=str(get["text"]) if "text" in get else None,
                   video_path=str(get["video_path"]) if "video_path" in get else None,
                   video_start=float(get["video_start"]) if "video_start" in get else None,
                   video_end=float(get["video_end"]) if "video_end" in get else None)


class Extractor:
    """Subclasses set `name`, `modality`, `defaults` and implement `extract`.

    defaults:   the complete option set; user options must be a subset (typos are errors, not ignored).
    version:    bump when the computation changes, to invalidate cached features.
    sample_rate / fps / max_frames: decoding requests served by `harness.media`.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    output: ClassVar[str] = ""  # the declared output shape, e.g. "sequence [T, 25], pooled [88]"
    # The corpora the default weights were trained or fine-tuned on (a corpus the harness has a card for by the
    # card's name, e.g. "iemocap"), () for no learned weights, None for unknown. A result whose extractor saw its
    # evaluation corpus is flagged as contaminated (`contamination`).
    trained_on: ClassVar[tuple[str, ...] | None] = None
    cache: Any = None  # a FeatureStore for intermediate results, set by the runner before setup()

    def __init__(self, **config: Any) -> None:
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ExtractorConfigError(f"extractor {self.name!r}: unknown options {unknown}; "
                                       f"valid options: {sorted(self.defaults)}")
        for key, value in config.items():
            _check_option_type(self.name, key, value, self.defaults[key])
        self.config = {**self.defaults, **config}
        self.validate_options()

    def validate_options(self) -> None:
        """Check option VALUES (e.g. an enumeration) cheaply, so a bad one is a one-line error before Ray starts
        instead of a traceback from every worker. Raise ExtractorConfigError naming the option and the choices."""

    # decoding requests
    @property
    def sample_rate(self) -> int:
        return int(self.config.get("sample_rate", 16_000))

    @property
    def fps(self) -> float | None:
        return self.config.get("fps")

    @property
    def max_frames(self) -> int | None:
        return self.config.get("max_frames")

    def inputs(self) -> tuple[str, ...]:
        """What the decode stage must provide (by default the extractor's own modality)."""
        return (self.modality,)

    def training_corpora(self) -> tuple[str, ...] | None:
        """`trained_on` for these options: it describes the default weights, so another checkpoint, backbone or
        weight set is unknown (None), and randomly initialised weights saw nothing (())."""
        changed = [k for k in WEIGHT_OPTIONS if k in self.defaults and self.config[k] != self.defaults[k]]
        if self.config.get("weights") in ("random", "none"):
            return ()
        return None if changed else self.trained_on

    def weights_identity(self) -> str:
        """What identifies the model weights (path + file sizes, or a package version); part of the cache key."""
        return ""

    def check_weights(self) -> None:
        """Raise MissingWeightsError (naming the checkpoint and how to get it) before any worker starts."""

    @staticmethod
    def device() -> str:
        """Where models run: the GPU Ray assigned to this actor if any, else CPU."""
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def cache_key(self, manifest_fingerprint: str) -> str:
        return stable_hash({"manifest": manifest_fingerprint, "extractor": self.name, "version": self.version,
                            "config": self.config, "weights": self.weights_identity()})

    def setup(self) -> None:
        """Load models; called once per worker before the first `extract`."""

    def extract(self, clip: ClipInput) -> Features:
        raise NotImplementedError

    def extract_batch(self, clips: list[ClipInput]) -> list[Features | Exception]:
        """Features for each clip of a block, or the exception that clip raised (recorded as its failure).

        One clip at a time by default; extractors whose model gains from batching (text encoders) override it
        and must return what `extract` returns clip by clip, to floating-point tolerance.
        """
        results: list[Features | Exception] = []
        for clip in clips:
            try:
                results.append(self.extract(clip))
            except Exception as error:  # recorded with its stage by the caller, never dropped
                results.append(error)
        return results


WEIGHT_OPTIONS = ("checkpoint", "weights", "backbone", "encoder", "model")  # options that choose the weights
UNKNOWN = "unknown"


def describe_training(corpora: tuple[str, ...] | None) -> str:
    """The declaration in words, for `harness list extractors` and the result's tag."""
    return UNKNOWN if corpora is None else ", ".join(corpora) if corpora else "none (no learned weights)"


def contamination(corpora: tuple[str, ...] | None, dataset: str) -> str:
    """"yes" when the weights saw the evaluation corpus (`dataset`, a card name, `<card>@<target>` for a subset),
    "unknown" when what they saw is not declared, else "no"."""
    if corpora is None:
        return UNKNOWN
    return "yes" if dataset.split("@")[0].lower() in {c.lower() for c in corpora} else "no"


class TrainableInPlace:
    """An extractor whose network a fine-tuner may train in place (`harness.finetune`), through public methods only.

    After `network_on(device)` the returned `torch.nn.Module` IS the extractor's model: training it changes what
    `extract` returns, so the fine-tuned encoder re-encodes clips through the extractor's own code (layer choice,
    pooling, chunking) and its features have the same shape as the frozen ones.
    """

    def network_on(self, device: str) -> Any:
        """Load the model if needed, move it (and later extraction) to `device`, return it (a `torch.nn.Module`)."""
        raise NotImplementedError

    def text_tokenizer(self) -> Any:
        """The tokenizer that belongs to the network (text encoders only)."""
        raise NotImplementedError(f"{type(self).__name__} has no tokenizer")


def _check_option_type(extractor: str, key: str, value: Any, default: Any) -> None:
    """An option whose default is a number or a boolean must be given as one (`sample_rate=abc` is an error);
    options whose default is a string or None may take several types (e.g. `layer` is "last" or an int)."""
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, expected = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    else:
        return
    if not ok:
        raise ExtractorConfigError(f"extractor {extractor!r}: option {key} must be {expected}, got {value!r} "
                                   f"(default {default!r})")
    _check_option_range(extractor, key, value, default)


POSITIVE_FLOATS = ("fps",)  # and every *_ms / *_seconds option: a duration or rate of 0 leaves nothing to extract


def _check_option_range(extractor: str, key: str, value: float, default: float) -> None:
    """Sizes and counts (integer options whose default is positive: n_mels, n_fft, max_frames, crop_size,
    max_tokens, sample_rate...) must be >= 1, durations and rates > 0, and no number may be NaN or infinite: such
    a value fails every clip's extraction (n_mels=0 once failed 192), so it is refused when the option is read."""
    import math

    if isinstance(default, int) and default > 0 and value < 1:
        raise ExtractorConfigError(f"extractor {extractor!r}: option {key} is a size or count and must be >= 1, "
                                   f"got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExtractorConfigError(f"extractor {extractor!r}: option {key} must be a finite number, got {value!r}")
    duration = key in POSITIVE_FLOATS or key.endswith(("_ms", "_seconds"))
    if isinstance(default, float) and (value <= 0 if duration and default > 0 else value < 0):
        raise ExtractorConfigError(f"extractor {extractor!r}: option {key} must be "
                                   f"{'> 0' if duration and default > 0 else '>= 0'}, got {value!r}")


EXTRACTOR_PACKAGE = "harness.features.extractors"
# Every module of the package registers on the first lookup: a new extractor is a new file there, no list to edit.
_EXTRACTORS: Registry[type[Extractor]] = Registry("extractor", packages=(EXTRACTOR_PACKAGE,))


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    return _EXTRACTORS.add(cls.name, cls)


def extractor_names() -> list[str]:
    return _EXTRACTORS.names()


def get_extractor(name: str) -> type[Extractor]:
    return _EXTRACTORS.get(name)


def build_extractor(name: str, config: dict[str, Any] | None = None) -> Extractor:
    return get_extractor(name)(**(config or {}))


@dataclass(frozen=True, eq=False)
class ExtractorRef:
    """An extractor as a value: its name and the user's options, resolved once and passed around whole.

    Frozen and picklable (plain str and dict), so it crosses to Ray tasks and actors unchanged; `build()` makes
    the `Extractor` (cheap: models load in `setup()`), `cache_key()` is the feature-store key. A name that is
    not a registered extractor and has no options refers to imported features (`is_imported`).
    Equality and hashing are by value (name and options, order-free).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", dict(self.options or {}))

    @classmethod
    def of(cls, extractor: str | ExtractorRef, options: dict[str, Any] | None = None) -> ExtractorRef:
        """Accept the old loose `(name, config)` pair or a ref (then `options` must be empty)."""
        if isinstance(extractor, ExtractorRef):
            if options:
                raise TypeError(f"extractor {extractor.name!r}: pass options inside the ExtractorRef, not beside it")
            return extractor
        return cls(str(extractor), dict(options or {}))

    @property
    def is_imported(self) -> bool:
        return self.name not in extractor_names() and not self.options

    def build(self) -> Extractor:
        return build_extractor(self.name, self.options)

    def cache_key(self, manifest_fingerprint: str) -> str:
        return self.build().cache_key(manifest_fingerprint)

    def _identity(self) -> str:
        return stable_hash({"name": self.name, "options": self.options})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtractorRef) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __str__(self) -> str:
        options = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}({options})" if options else self.name


def option_hint(option: str, value: str) -> str:
    """How to set an extractor option, for error messages: one spelling on every command."""
    return (f"set the extractor option {option}={value} (`--extractor-config EXTRACTOR.{option}=...` on "
            f"`harness run` or `harness extract`, or extractor_config in a settings file)")


def package_identity(distribution: str) -> str:
    """Identity of weights that ship inside a pip package: the package's installed version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{distribution}=={version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} missing"


def directory_identity(path: str | Path) -> str:
    """Identity of a local checkpoint: its resolved path and every file's name and size (cheap, catches swaps)."""
    root = Path(path).resolve()
    files = sorted((str(f.relative_to(root)), f.stat().st_size) for f in root.rglob("*") if f.is_file())
    return f"{root}:{stable_hash(files)}"
