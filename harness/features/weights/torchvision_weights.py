"""torchvision backbones (ResNet-18, R3D-18, R(2+1)D-18) with offline-checked weights.

`weights` is "imagenet"/"kinetics" (torchvision's published weights, read from the torch hub cache, never
downloaded at run time), "random" (seeded initialisation: tests and benchmarks), or a local state_dict path.
"""

from __future__ import annotations

from pathlib import Path

from harness.features.base import ExtractorConfigError, MissingWeightsError

# model -> (published weights name accepted in config, torchvision weights enum attribute path)
_PUBLISHED = {
    "resnet18": ("imagenet", "ResNet18_Weights", "IMAGENET1K_V1"),
    "r3d_18": ("kinetics", "R3D_18_Weights", "KINETICS400_V1"),
    "r2plus1d_18": ("kinetics", "R2Plus1D_18_Weights", "KINETICS400_V1"),
}


def _builder(model: str):
    import torchvision.models
    import torchvision.models.video

    if model == "resnet18":
        return torchvision.models.resnet18
    return getattr(torchvision.models.video, model)


def _published_file(model: str) -> tuple[Path, str]:
    import torch
    import torchvision.models
    import torchvision.models.video

    _, enum_name, member = _PUBLISHED[model]
    enum = getattr(torchvision.models, enum_name, None) or getattr(torchvision.models.video, enum_name)
    url = getattr(enum, member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], f"{enum_name}.{member}"


def torchvision_weights_identity(model: str, weights: str, require: bool = False) -> str:
    """Cache-key identity of the weights; with `require`, a clear error when they are not available offline."""
    if model not in _PUBLISHED:
        raise ExtractorConfigError(f"unknown torchvision model {model!r}; choose from {sorted(_PUBLISHED)}")
    published = _PUBLISHED[model][0]
    if weights == "random":
        return f"{model}:random"
    if weights == published:
        path, enum = _published_file(model)
        if not path.exists():
            if require:
                raise MissingWeightsError(
                    f"{model} {published} weights ({enum}) are not in the torch hub cache at {path}. Download "
                    f"them on a machine with internet: python -c \"import torchvision.models as m; "
                    f"m.{'video.' if model != 'resnet18' else ''}{model}(weights='{enum.split('.')[-1]}')\" and "
                    f"copy {path.name} to {path.parent}, or pass weights=/path/to/state_dict.pth")
            return f"{model}:{enum}:missing"
        return f"{model}:{enum}:{path.stat().st_size}"
    path = Path(weights)
    if not path.is_file():
        if require:
            raise MissingWeightsError(f"{model} weights file {weights!r} does not exist; pass weights="
                                      f"'{published}', 'random', or the path of a saved state_dict")
        return f"{model}:{weights}:missing"
    return f"{model}:{path.resolve()}:{path.stat().st_size}"


def load_torchvision_model(model: str, weights: str, seed: int = 0):
    """The model with its weights loaded (CPU, eval mode)."""
    import torch

    torchvision_weights_identity(model, weights, require=True)
    torch.manual_seed(seed)
    network = _builder(model)(weights=None)
    if weights != "random":
        path = _published_file(model)[0] if weights == _PUBLISHED[model][0] else Path(weights)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return network.eval()
