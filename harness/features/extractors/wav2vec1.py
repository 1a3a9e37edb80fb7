"""wav2vec 1.0 (Schneider et al. 2019) without fairseq: the network in plain torch, fairseq's checkpoint read as is.

Why this exists: the IMA-Hadamard paper's "Wav2Vec" audio features are wav2vec 1.0 context vectors (512-d), which
`transformers` does not implement, and fairseq (which does) does not import on the harness's Python 3.11. The
released checkpoint, fairseq's `wav2vec_large.pt`, is a torch pickle `{"args": argparse.Namespace, "model":
state_dict, ...}` (newer fairseq writes a plain-dict `cfg` instead of `args`); it is read here without fairseq.

The network is rebuilt from the checkpoint's own settings (`conv_feature_layers`, `conv_aggregator_layers`,
skip connections, residual scale, log compression, ...; settings the checkpoint lacks take the large model's
values, those of fairseq's wav2vec README training command). Module names follow fairseq's, so the checkpoint's
`model` weights load with `strict=True`: a missing or unexpected key or a wrong shape is a `Wav2Vec1CheckpointError`
naming the file and the keys, never a partial load (random layers would give meaningless features).

* feature extractor (`z`): strided convolutions without bias, each followed by a one-group GroupNorm and ReLU,
  then log compression `log(|x| + 1)`; 10 ms frames at 16 kHz for the large model (receptive field 465 samples,
  stride 160, so `frames = (samples - 465) // 160 + 1`).
* context network (`c`, the "aggregator"): causal convolutions (left replication padding of `kernel - 1`, so the
  frame count is kept), GroupNorm, ReLU, each added to its input and scaled by sqrt(residual_scale).
* the prediction head (`wav2vec_predictions.project_to_steps`) is built only so the checkpoint loads strictly;
  features never use it.

The waveform is not normalised: fairseq's wav2vec 1.0 data path feeds the raw float samples (wav2vec 2.0
checkpoints differ, hence the `normalize` option of the wav2vec2 extractors).
"""

from __future__ import annotations

import argparse
import ast
import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.features.base import (
    ClipInput,
    Extractor,
    ExtractorConfigError,
    ExtractorOptions,
    Features,
    MissingWeightsError,
    OutputDims,
    option_hint,
    register_extractor,
)
from harness.hashing import stable_hash

SAMPLE_RATE = 16_000
URL = "https://dl.fbaipublicfiles.com/fairseq/wav2vec/wav2vec_large.pt"
Layer = tuple[int, int, int]  # (channels, kernel, stride)


class Wav2Vec1CheckpointError(ValueError):
    """A file that is not a usable wav2vec 1.0 checkpoint (unreadable, another model, keys or shapes that differ)."""


@dataclass(frozen=True)
class Wav2Vec1Settings:
    """The architecture settings a wav2vec 1.0 checkpoint records (fairseq's names); defaults: the large model."""

    conv_feature_layers: tuple[Layer, ...] = (
        (512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1))
    conv_aggregator_layers: tuple[Layer, ...] = tuple((512, k, 1) for k in range(2, 14))
    skip_connections_feat: bool = False
    skip_connections_agg: bool = True
    residual_scale: float = 0.5
    log_compression: bool = True
    non_affine_group_norm: bool = False
    no_conv_bias: bool = False
    agg_zero_pad: bool = False
    activation: str = "relu"
    aggregator: str = "cnn"
    project_features: str = "none"
    prediction_steps: int = 12

    @property
    def embed(self) -> int:
        return self.conv_feature_layers[-1][0]

    @property
    def context_dim(self) -> int:
        return self.conv_aggregator_layers[-1][0]


LARGE = Wav2Vec1Settings()


def parse_layers(value: Any, what: str = "layers") -> tuple[Layer, ...]:
    """fairseq's layer lists, e.g. "[(512, 10, 5)] + [(512, 4, 2)] * 3", evaluated without `eval`.

    Only list/tuple literals of integers, `+` and `*` are accepted: the string comes from a downloaded file.
    """
    def evaluate(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [evaluate(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = evaluate(node.left), evaluate(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")

    try:
        parsed = evaluate(ast.parse(value, mode="eval")) if isinstance(value, str) else value
        layers = tuple(tuple(int(v) for v in layer) for layer in parsed)
    except (SyntaxError, ValueError, TypeError) as error:
        raise ValueError(f"{what} must be a list of (channels, kernel, stride), got {value!r} ({error})") from None
    if not layers or any(len(layer) != 3 or min(layer) < 1 for layer in layers):
        raise ValueError(f"{what} must be a non-empty list of positive (channels, kernel, stride), got {value!r}")
    return layers  # type: ignore[return-value]


def receptive_field(layers: tuple[Layer, ...]) -> tuple[int, int]:
    """(receptive field, hop) in samples of the convolutional feature extractor, as fairseq computes its `offset`."""
    field_size, hop = 0, 0
    for _, kernel, stride in layers:
        field_size = kernel if field_size == 0 else field_size + (kernel - 1) * hop
        hop = stride if hop == 0 else hop * stride
    return field_size, hop


def output_frames(n_samples: int, layers: tuple[Layer, ...] = LARGE.conv_feature_layers) -> int:
    """Frames the feature extractor gives for `n_samples` (unpadded convolutions, layer by layer)."""
    length = n_samples
    for _, kernel, stride in layers:
        length = (length - kernel) // stride + 1 if length >= kernel else 0
    return length


# ---------------------------------------------------------------------------------------------- reading the file

class _Unresolved(dict):
    """Stands in for a class the checkpoint names but this process cannot (or must not) import, e.g. fairseq's
    enums or meters in `extra_state`. It records what it was built from and is never called or used."""

    origin = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.init_args = (args, kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<unresolved {self.origin}>"


def _allowed_global(module: str, name: str) -> bool:
    """Globals a fairseq checkpoint needs that are data, not code: tensors, storages, dtypes, numpy scalars,
    argparse.Namespace, OrderedDict. Everything else becomes an inert `_Unresolved`."""
    if module == "torch._utils":
        return name.startswith("_rebuild_")
    if module == "torch":
        import torch

        return name.endswith("Storage") or name in ("Size", "device") or isinstance(getattr(torch, name, None),
                                                                                      torch.dtype)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        return name in ("scalar", "_reconstruct")
    if module in ("numpy", "numpy.dtypes"):
        return name in ("dtype", "ndarray") or name.endswith("DType")
    return (module, name) in {("argparse", "Namespace"), ("collections", "OrderedDict"), ("_codecs", "encode"),
                              ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
                              ("builtins", "complex"), ("builtins", "bytearray")}


class _CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if _allowed_global(module, name):
            return super().find_class(module, name)
        return type(name, (_Unresolved,), {"origin": f"{module}.{name}"})


class _RestrictedPickle:
    """A `pickle_module` for torch.load: allowlisted data classes, stand-ins for the rest (fairseq's own)."""

    Unpickler = _CheckpointUnpickler
    load = staticmethod(pickle.load)
    __name__ = "harness.features.extractors.wav2vec1._RestrictedPickle"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's top-level dict, loaded on the CPU without fairseq.

    First torch's own `weights_only` loader with argparse.Namespace allowed (enough for files holding only
    tensors, plain values and the `args` namespace); if the file names other classes (fairseq's, numpy
    scalars in its training state), a restricted unpickler that builds only tensors and plain data and maps
    every other class to an inert stand-in (nothing from the file is executed either way).
    """
    import torch

    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickle)
        except Exception as error:
            raise Wav2Vec1CheckpointError(f"{path}: cannot be read as a torch checkpoint "
                                          f"({type(error).__name__}: {error})") from None
    except Exception as error:  # truncated download, not a torch file
        raise Wav2Vec1CheckpointError(f"{path}: cannot be read as a torch checkpoint "
                                      f"({type(error).__name__}: {error})") from None
    if not isinstance(state, Mapping) or not isinstance(state.get("model"), Mapping):
        raise Wav2Vec1CheckpointError(f"{path}: not a fairseq checkpoint (expected a dict with a 'model' "
                                      "state_dict, as wav2vec_large.pt has)")
    return dict(state)


def checkpoint_settings(state: Mapping[str, Any], path: str | Path = "checkpoint") -> Wav2Vec1Settings:
    """The architecture from the checkpoint's `args` (argparse.Namespace) or `cfg["model"]` (newer fairseq)."""
    args = state.get("args")
    cfg = state.get("cfg")
    if isinstance(args, argparse.Namespace):
        recorded: Mapping[str, Any] = vars(args)
    elif isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        recorded = cfg["model"]
    else:
        recorded = {}
    arch = recorded.get("arch", recorded.get("_name"))
    if arch is not None and str(arch) != "wav2vec":  # wav2vec2, wav2vec_ctc, ...: other architectures
        raise Wav2Vec1CheckpointError(f"{path}: a fairseq {arch!r} model, not wav2vec 1.0 ('wav2vec'); for "
                                      "wav2vec 2.0 use the wav2vec2 extractor with a transformers checkpoint")
    unsupported = [f"{key}={recorded[key]!r}" for key, fine in (("vq_type", ("none", None)),
                                                                ("aggregator", ("cnn",)), ("encoder", ("cnn",)))
                   if key in recorded and recorded[key] not in fine]
    if unsupported:
        raise Wav2Vec1CheckpointError(f"{path}: {', '.join(unsupported)} is not supported (only wav2vec 1.0 with "
                                      "convolutional encoder and aggregator and no quantizer, e.g. vq-wav2vec is not)")
    values: dict[str, Any] = {}
    for spec in fields(Wav2Vec1Settings):
        value = recorded.get(spec.name)
        if value is None:
            continue
        try:
            if spec.name.startswith("conv_"):
                values[spec.name] = parse_layers(value, spec.name)
            elif isinstance(spec.default, bool):
                values[spec.name] = bool(value)
            elif isinstance(spec.default, int | float):
                values[spec.name] = type(spec.default)(value)
            else:
                values[spec.name] = str(value)
        except (TypeError, ValueError) as error:
            raise Wav2Vec1CheckpointError(f"{path}: setting {spec.name}: {error}") from None
    settings = replace(LARGE, **values)
    problems = []
    if settings.activation not in ("relu", "gelu"):
        problems.append(f"activation {settings.activation!r} (relu or gelu)")
    if settings.project_features not in ("none", "same", "new"):
        problems.append(f"project_features {settings.project_features!r}")
    if any(stride != 1 for _, _, stride in settings.conv_aggregator_layers):
        problems.append("aggregator strides other than 1")
    if problems:
        raise Wav2Vec1CheckpointError(f"{path}: unsupported settings: {'; '.join(problems)}")
    return settings


# ------------------------------------------------------------------------------------------------- the network

def build_network(settings: Wav2Vec1Settings):
    """The model as an `nn.Module` tree named like fairseq's Wav2VecModel (forward: `encode`)."""
    import torch.nn as nn

    activation = nn.ReLU() if settings.activation == "relu" else nn.GELU()
    affine = not settings.non_affine_group_norm

    network = nn.Module()
    network.feature_extractor = nn.Module()
    network.feature_extractor.conv_layers = nn.ModuleList()
    channels = 1
    for dim, kernel, stride in settings.conv_feature_layers:
        network.feature_extractor.conv_layers.append(nn.Sequential(
            nn.Conv1d(channels, dim, kernel, stride=stride, bias=False), nn.Dropout(0.0),
            nn.GroupNorm(1, dim, affine=affine), activation))
        channels = dim

    def aggregator() -> nn.Module:
        module = nn.Module()
        blocks, projections = [], nn.ModuleList()
        width = settings.embed
        for dim, kernel, stride in settings.conv_aggregator_layers:
            needs_projection = width != dim and settings.skip_connections_agg
            projections.append(nn.Conv1d(width, dim, 1, bias=False) if needs_projection else None)
            pad = (nn.ConstantPad1d((kernel - 1, 0), 0.0) if settings.agg_zero_pad
                   else nn.ReplicationPad1d((kernel - 1, 0)))  # causal: frame t sees frames <= t
            blocks.append(nn.Sequential(pad, nn.Conv1d(width, dim, kernel, stride=stride,
                                                       bias=not settings.no_conv_bias),
                                        nn.Dropout(0.0), nn.GroupNorm(1, dim, affine=affine), activation))
            width = dim
        module.conv_layers = nn.Sequential(*blocks)
        module.residual_proj = projections
        return module

    network.feature_aggregator = aggregator()
    network.wav2vec_predictions = nn.Module()  # training head: built only so the weights load strictly
    network.wav2vec_predictions.project_to_steps = nn.ConvTranspose2d(
        settings.context_dim, settings.embed, (1, settings.prediction_steps))
    if settings.project_features == "same":
        network.project_features = network.feature_aggregator
    elif settings.project_features == "new":
        network.project_features = aggregator()
    return network


def encode(network: Any, settings: Wav2Vec1Settings, waveform: Any) -> tuple[Any, Any]:
    """(z, c), each [batch, channels, frames], for a [batch, samples] waveform."""
    scale = math.sqrt(settings.residual_scale)
    x = waveform.unsqueeze(1)
    for block in network.feature_extractor.conv_layers:
        residual = x
        x = block(x)
        if settings.skip_connections_feat and x.size(1) == residual.size(1):
            residual = residual[..., :: residual.size(2) // x.size(2)][..., : x.size(2)]
            x = (x + residual) * scale
    if settings.log_compression:
        x = (x.abs() + 1).log()
    z = x
    aggregator = network.feature_aggregator
    for projection, block in zip(aggregator.residual_proj, aggregator.conv_layers, strict=True):
        residual = x
        x = block(x)
        if settings.skip_connections_agg:
            x = (x + (projection(residual) if projection is not None else residual)) * scale
    return z, x


def load_network(path: str | Path, device: str = "cpu") -> tuple[Any, Wav2Vec1Settings]:
    """The network with the checkpoint's weights, in eval mode on `device`; any key or shape difference is an
    error naming the file (strict loading, checked first so the message lists everything that differs)."""
    state = read_checkpoint(path)
    settings = checkpoint_settings(state, path)
    weights = state["model"]
    network = build_network(settings)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    not_tensors = sorted(k for k in expected if k in weights and not hasattr(weights[k], "shape"))
    wrong = [f"{k} {tuple(weights[k].shape)} (expected {tuple(expected[k].shape)})" for k in expected
             if k in weights and k not in not_tensors and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or not_tensors or wrong:
        def listed(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")

        parts = [f"{label}: {listed(keys)}" for label, keys in (
            ("missing keys", missing), ("unexpected keys", unexpected), ("not tensors", not_tensors),
            ("wrong shapes", wrong)) if keys]
        raise Wav2Vec1CheckpointError(
            f"{path}: its weights do not match the wav2vec 1.0 network its settings describe "
            f"({len(settings.conv_feature_layers)} feature layers, {len(settings.conv_aggregator_layers)} "
            f"aggregator layers): {'; '.join(parts)}")
    network.load_state_dict(weights, strict=True)
    return network.float().eval().to(device), settings


# ----------------------------------------------------------------------------------------------- the extractor

def checkpoint_identity(checkpoint: str) -> str:
    """Cache-key identity of the file: resolved path, size and mtime (a file replaced in place changes it)."""
    path = Path(checkpoint).expanduser()
    if not checkpoint or not path.is_file():
        return f"{checkpoint}:missing"
    info = path.stat()
    return f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}"


@register_extractor
class Wav2Vec1Extractor(Extractor):
    """wav2vec 1.0 context vectors (`layer=c`, the 512-d features of the IMA-Hadamard paper) or latents (`z`)."""

    name = "wav2vec1"
    trained_on = None  # the user's fairseq checkpoint
    modality = "audio"
    description = ("wav2vec 1.0 from fairseq's wav2vec_large.pt (local file, loaded without fairseq): context "
                   "vectors c or latents z, 10 ms frames")
    output = "sequence [T, 512] (10 ms frames); pooled [512] (mean)"  # 512: wav2vec_large's width

    class Options(ExtractorOptions):
        checkpoint: str = ""  # fairseq's wav2vec_large.pt, a local file
        layer: Literal["c", "z"] = "c"  # c: context network output, z: feature extractor output
        device: str = "auto"  # "auto" (the GPU Ray gave the actor, else CPU), "cpu" or "cuda[:N]"

    def output_dims(self) -> OutputDims:
        """The checkpoint's width (512 for wav2vec_large), known once `setup()` has read its settings."""
        settings = getattr(self, "_settings", None)
        if settings is None:
            return OutputDims(None, None)
        width = settings.context_dim if self.config["layer"] == "c" else settings.embed
        return OutputDims(width, width)

    def validate_options(self) -> None:
        device = self.config["device"]
        if not (isinstance(device, str) and (device in ("auto", "cpu") or device.startswith("cuda"))):
            raise ExtractorConfigError(f"wav2vec1: device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def weights_identity(self) -> str:
        return checkpoint_identity(str(self.config["checkpoint"]))

    def cache_key(self, manifest_fingerprint: str) -> str:
        """Without `device`: like every other extractor's, features do not depend on where they were computed."""
        config = {k: v for k, v in self.config.items() if k != "device"}
        return stable_hash({"manifest": manifest_fingerprint, "extractor": self.name, "version": self.version,
                            "config": config, "weights": self.weights_identity()})

    def check_weights(self) -> None:
        checkpoint = str(self.config["checkpoint"])
        if checkpoint and Path(checkpoint).expanduser().is_file():
            return
        where = f"{checkpoint!r} is not a file" if checkpoint else "no checkpoint is set"
        raise MissingWeightsError(
            f"wav2vec1: {where}. Download fairseq's wav2vec 1.0 large model, wav2vec_large.pt, from {URL} (on a "
            "machine with internet), then pass its path: `--extractor-config wav2vec1.checkpoint=/path/to/"
            "wav2vec_large.pt` on `harness run` or `harness extract`, or extractor_config: {wav2vec1: {checkpoint: "
            "...}} in a settings file")

    def setup(self) -> None:
        import torch

        self.check_weights()
        device = self.config["device"]
        if device == "auto":
            device = self.device()
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"wav2vec1: device={device} but no CUDA device is visible to this worker; "
                               f"{option_hint('device', 'auto')}")
        self._device = device
        self._network, self._settings = load_network(Path(str(self.config["checkpoint"])).expanduser(), device)
        self._min_samples = receptive_field(self._settings.conv_feature_layers)[0]

    def extract(self, clip: ClipInput) -> Features:
        import torch

        assert clip.audio is not None
        audio = np.asarray(clip.audio, dtype=np.float32)  # raw samples: wav2vec 1.0 was trained unnormalised
        if len(audio) < self._min_samples:  # at least one frame
            audio = np.pad(audio, (0, self._min_samples - len(audio)))
        with torch.inference_mode():
            waveform = torch.from_numpy(np.ascontiguousarray(audio))[None].to(self._device)
            z, c = encode(self._network, self._settings, waveform)
            chosen = c if self.config["layer"] == "c" else z
            sequence = chosen[0].transpose(0, 1).float().cpu().numpy()
        return Features(sequence=sequence, pooled=sequence.mean(axis=0))
