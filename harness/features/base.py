"""The extractor interface and registry.

An extractor turns one decoded clip into a sequence `[T, D]` and a pooled vector `[D]`. Heavy imports and model
loading belong in `setup()`, which the Ray actor calls once per worker; `__init__` only validates the config, so
building an extractor to compute its cache key is cheap.
"""

from __future__ import annotations

import io
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


# Option types with their bounds, so each option says what it takes (and `harness list extractors` shows it).
Count = Annotated[int, Field(ge=1)]  # sizes and counts (n_mels, crop_size, max_frames, ...)
Positive = Annotated[float, Field(gt=0)]  # durations and rates (win_ms, fps, chunk_seconds, ...)
NonNegative = Annotated[float, Field(ge=0)]  # shares, margins, severities
Layer = Literal["last", "mean"] | int | Annotated[list[float], Field(min_length=1)]  # see weights.hf.select_layer


class ExtractorOptions(BaseModel):
    """An extractor's options as typed data: one field per option, annotated with its type (a `Literal` for a
    choice, `Count` / `Positive` / `NonNegative` or `Field(...)` bounds for a number) and given its default.

    Strict on purpose: an integer option takes an int (not a bool, a float or a string), a number takes an int or
    a float (stored as a float, so `win_ms=25` and `win_ms=25.0` are one cache key), NaN and infinity are refused,
    and an option the model does not declare is an error, never ignored. Validation happens when the extractor
    is built, i.e. before Ray starts, so a bad value is one line instead of a traceback from every worker.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class OutputDims(NamedTuple):
    """The declared output: `sequence` is D of the `[T, D]` sequence, `pooled` is D of the `[D]` vector, `rows` is
    T where the options fix it (snippet extractors), else None. A width that comes from the weights (a checkpoint's
    hidden size) is None until `setup()` has loaded them."""

    sequence: int | None
    pooled: int | None
    rows: int | None = None


class Extractor:
    """Subclasses set `name`, `modality`, `Options` and implement `extract` (and `output_dims`).

    Options:    an `ExtractorOptions` model, the complete option set with types and defaults; user options must
                be a subset (typos are errors, not ignored). `defaults` is derived from it, `config` (a plain
                dict) and `options` (the validated model) hold an instance's values.
    version:    bump when the computation changes, to invalidate cached features.
    sample_rate / fps / max_frames: decoding requests served by `harness.media`.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    Options: ClassVar[type[ExtractorOptions]] = ExtractorOptions
    defaults: ClassVar[dict[str, Any]] = {}  # derived from Options for each subclass: never set it by hand
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    output: ClassVar[str] = ""  # the declared output in words, e.g. "sequence [T, 25], pooled [88]"; see output_dims
    # The corpora the default weights were trained or fine-tuned on (a corpus the harness has a card for by the
    # card's name, e.g. "iemocap"), () for no learned weights, None for unknown. A result whose extractor saw its
    # evaluation corpus is flagged as contaminated (`contamination`).
    trained_on: ClassVar[tuple[str, ...] | None] = None
    cache: Any = None  # a FeatureStore for intermediate results, set by the runner before setup()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: declare the options as `class Options(ExtractorOptions)` with typed "
                            "fields; `defaults` is derived from it")
        cls.defaults = cls.Options().model_dump()

    def __init__(self, **config: Any) -> None:
        self.options = parse_options(self.name, self.Options, config)
        self.config = self.options.model_dump()
        self.validate_options()

    def validate_options(self) -> None:
        """Check what the option types cannot say (one option depending on another, a name looked up in a
        library) cheaply, so a bad value is a one-line error before Ray starts instead of a traceback from every
        worker. Raise ExtractorConfigError naming the option and the choices."""

    def output_dims(self) -> OutputDims:
        """The declared output for these options (see `OutputDims`); the contract test checks every extractor's
        features against it. Subclasses override it: the base class declares nothing."""
        return OutputDims(None, None)

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


def parse_options(extractor: str, model: type[ExtractorOptions], config: dict[str, Any]) -> ExtractorOptions:
    """The validated options, or ExtractorConfigError in one line naming the extractor, the option, what it takes
    (type, bounds, choices) and the default."""
    try:
        return model.model_validate(config)
    except ValidationError as error:
        problems = error.errors()
        unknown = sorted(str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden")
        if unknown:
            raise ExtractorConfigError(f"extractor {extractor!r}: unknown options {unknown}; "
                                       f"valid options: {sorted(model.model_fields)}") from None
        key = str(problems[0]["loc"][0]) if problems[0]["loc"] else ""
        if key not in model.model_fields:  # a check of the whole model: its own message
            raise ExtractorConfigError(f"extractor {extractor!r}: {problems[0]['msg']}") from None
        expected = "a finite number" if problems[0]["type"] == "finite_number" else option_type(model, key)
        raise ExtractorConfigError(f"extractor {extractor!r}: option {key} must be {expected}, got "
                                   f"{config.get(key)!r} (default {model.model_fields[key].default!r})") from None


def option_type(model: type[ExtractorOptions], key: str) -> str:
    """What option `key` takes, in words: "an integer >= 1", "one of 'mtcnn', 'full-frame'", ..."""
    info = model.model_fields[key]
    return _describe(info.annotation, info.metadata)


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _describe(annotation: Any, metadata: tuple[Any, ...] | list[Any] = (), bare: bool = False) -> str:
    """A type in words; `bare` renders a Literal as its values only (inside a union: "'last', 'mean', an ...")."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _describe(args[0], [*metadata, *args[1:]], bare)
    metadata = [inner for m in metadata for inner in (getattr(m, "metadata", None) or [m])]  # FieldInfo: its bounds
    if origin is Literal:
        return ("" if bare else "one of ") + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        words = [_describe(a, bare=True) for a in args if a is not type(None)]
        text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        if len(words) == 1 and get_origin(args[0]) is Literal:
            text = _describe(args[0])
        return text + (" or null" if type(None) in args else "")
    if origin is list:
        item = _describe(args[0]).removeprefix("a ").removeprefix("an ") if args else "item"
        non_empty = "non-empty " if any(getattr(m, "min_length", None) for m in metadata) else ""
        return f"a {non_empty}list of {item}s"
    if origin is dict or annotation is dict:
        return "a mapping"
    base = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = [f"{sign} {getattr(m, attr)}" for m in metadata for attr, sign in _BOUNDS
              if getattr(m, attr, None) is not None]
    return " and ".join([f"{base} {bounds[0]}", *bounds[1:]]) if bounds else base


def describe_options(cls: type[Extractor]) -> list[str]:
    """One line per option, "name: type = default", for `harness list extractors`."""
    return [f"{key}: {option_type(cls.Options, key)} = {info.default!r}"
            for key, info in cls.Options.model_fields.items()]


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
