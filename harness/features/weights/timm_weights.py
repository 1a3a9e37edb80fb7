"""timm image backbones from local weights: checkpoint validation, cache-key identity and loading.

Next to `torchvision_weights` and `hf`, the other weight helpers, so extractors only say which backbone they
want. Weights are never downloaded: `checkpoint` is a state_dict file (`.pth`/`.pt`/`.bin`/`.safetensors`)
for the timm architecture `model`, or a directory written by `timm.models.save_for_hf` (its `config.json`
names the architecture). Errors name the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.features.base import ExtractorConfigError, MissingWeightsError, directory_identity, option_hint


def timm_identity(checkpoint: str) -> str:
    """timm's version (architecture definitions change between releases) and the weights' identity."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        timm_version = version("timm")
    except PackageNotFoundError:
        timm_version = "missing"
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        weights = directory_identity(path)
    elif path.is_file():  # size and mtime: a checkpoint retrained in place keeps its size
        info = path.stat()
        weights = f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}"
    else:
        weights = f"{checkpoint}:missing"
    return f"timm=={timm_version};{weights}"


def timm_checkpoint(checkpoint: str, model: str) -> Path:
    """The checkpoint path, validated against what timm can load; raises with the fix otherwise."""
    try:
        import timm
    except ImportError:
        raise MissingWeightsError("face-embed backbone=timm needs timm: pip install timm==1.0.31") from None
    path = Path(checkpoint).expanduser().resolve()
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise MissingWeightsError(
                f"face-embed: {config_file} does not exist, so {path} is not a timm model directory. Write "
                "one with timm.models.save_for_hf(model, dir), or pass a state_dict file and its architecture: "
                f"{option_hint('checkpoint', '/path/to/weights.pth')} and model=<timm architecture>")
        architecture = json.loads(config_file.read_text()).get("architecture")
        if model and model != architecture:
            raise ExtractorConfigError(f"face-embed: model={model!r} but {config_file} names architecture "
                                       f"{architecture!r}; drop model= for a timm directory")
        return path
    if not path.is_file():
        raise MissingWeightsError(
            f"face-embed: timm checkpoint {path} does not exist. Pass a local state_dict file "
            "(.pth/.pt/.bin/.safetensors) with model=<timm architecture, e.g. resnet18>, or a directory "
            "written by timm.models.save_for_hf; extraction never downloads weights")
    if not model:
        raise ExtractorConfigError(f"face-embed: {path} is a state_dict file; name its timm architecture "
                                   "with model=<name> (e.g. model=resnet18)")
    if not timm.is_model(model):
        raise ExtractorConfigError(f"face-embed: {model!r} is not a timm architecture; list them with "
                                   "python -c \"import timm; print(timm.list_models())\"")
    return path


def load_timm(checkpoint: str, model_name: str) -> tuple[Any, tuple[float, ...], tuple[float, ...]]:
    """The timm model without classifier with the local weights loaded (never pickled objects), and the
    mean/std its inputs are normalised with (timm's data config).

    A classifier in the checkpoint is dropped; any other key mismatch is an error, because silently random
    layers would produce plausible-looking but meaningless features.
    """
    import timm
    from timm.models import load_state_dict

    path = timm_checkpoint(checkpoint, model_name)
    if path.is_dir():
        model = timm.create_model(f"local-dir:{path}", pretrained=True, num_classes=0)
    else:
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
        try:
            state = load_state_dict(str(path), weights_only=True)
        except Exception as error:  # a corrupt file, or a pickle that weights_only refuses
            raise MissingWeightsError(
                f"face-embed: {path} is not a loadable state_dict ({type(error).__name__}: {error}). Save the "
                "weights with torch.save(model.state_dict(), path) or safetensors.torch.save_file") from None
        classifier = model.pretrained_cfg.get("classifier") or ()
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # same keys, different shapes
            raise ExtractorConfigError(f"face-embed: {path} does not fit timm model {model_name!r}: "
                                       f"{error}") from None
        unexpected = [k for k in result.unexpected_keys if not k.startswith(tuple(f"{h}." for h in heads))]
        if result.missing_keys or unexpected:
            raise ExtractorConfigError(
                f"face-embed: {path} does not fit timm model {model_name!r} (missing keys "
                f"{result.missing_keys[:5]}, unexpected keys {unexpected[:5]}); set model= to the "
                "architecture the weights were saved from")
    data = timm.data.resolve_model_data_config(model)
    return model, tuple(data["mean"]), tuple(data["std"])
