"""Backbones for the end-to-end A-V cross-attention model, and the model that joins them to the fusion head.

The head is `methods.neural.av_cross_attention.AVCrossAttentionHead`, the same module the feature-based method
trains, so the two modes differ only in where the snippet feature maps come from.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from methods.neural.av_cross_attention import AVCrossAttentionHead

# ImageNet / Kinetics normalisation used by the torchvision weights (also harmless for the tiny backbones).
VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
VIDEO_STD = (0.22803, 0.22145, 0.216989)


class TinyVideoBackbone(nn.Module):
    """Two 3-D conv layers: a stand-in for r3d_18 that trains in seconds on a CPU (tests, smoke runs)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.out_channels = channels
        self.layers = nn.Sequential(
            nn.Conv3d(3, 16, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(16), nn.ReLU(),
            nn.Conv3d(16, channels, 3, stride=(2, 2, 2), padding=1), nn.BatchNorm3d(channels), nn.ReLU(),
            nn.AdaptiveAvgPool3d((1, 4, 4)),
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.layers(clips)


class TinyAudioBackbone(nn.Module):
    """Two 2-D conv layers + global average: a stand-in for ResNet-18 on the log-mel images."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.out_channels = channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images).flatten(1)


class WeightsMismatchError(ValueError):
    """A backbone weights file whose keys or shapes do not match the network built in code."""


def _state_dict_of(loaded: object) -> dict:
    """The tensor mapping of a saved file: a bare state_dict, or one under "state_dict"/"model" (training
    checkpoints), with a DataParallel "module." prefix removed."""
    state = loaded
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise WeightsMismatchError(f"not a state_dict (a {type(loaded).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights_strictly(module: nn.Module, path: str | None) -> None:
    """Load `path` into `module` with every key and shape matching (strict): a file made for another network
    (other layer names, a Kinetics checkpoint with another stem) is an error that lists what is missing and what
    is unexpected, instead of a silently half-initialised backbone."""
    if not path:
        return
    if not Path(path).exists():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    try:
        state = _state_dict_of(torch.load(path, map_location="cpu", weights_only=True))
    except WeightsMismatchError as error:
        raise WeightsMismatchError(f"{path}: {error}; save the backbone's state_dict()") from None
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") or "none"

        raise WeightsMismatchError(
            f"{path} does not fit {type(module).__name__}: missing keys: {show(missing)}; unexpected keys: "
            f"{show(unexpected)}; shape mismatches: {show(shapes)}. Convert the file to this network's "
            "state_dict names (print the network's state_dict().keys()) or pick the matching --backbone")
    module.load_state_dict(state, strict=True)


class R3D18Backbone(nn.Module):
    """torchvision's 3-D ResNet-18 up to its last conv stage (the feature map before global pooling)."""

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from torchvision.models.video import r3d_18

        net = r3d_18(weights=None)
        load_weights_strictly(net, weights_path)
        self.out_channels = 512
        self.layers = nn.Sequential(net.stem, net.layer1, net.layer2, net.layer3, net.layer4)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.layers(clips)


class ResNet18Audio(nn.Module):
    """torchvision ResNet-18 on log-mel images (repeated to 3 channels so ImageNet weights load), globally
    averaged to 512-d per segment."""

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        load_weights_strictly(net, weights_path)
        net.fc = nn.Identity()
        self.out_channels = 512
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.expand(-1, 3, -1, -1))


R3D_101_LAYERS = (3, 4, 23, 3)  # bottleneck blocks per stage of a ResNet-101


class R3DBottleneckBackbone(nn.Module):
    """A 3-D ResNet with bottleneck blocks built in code from torchvision's video ResNet parts (3x3x3
    convolutions throughout, the r3d stem), up to its last stage: 2048 channels. `layers=(3, 4, 23, 3)` is the
    ResNet-101 depth Mocanu et al. name; smaller `layers` give the same architecture family for CPU tests.
    Weights come only from a local state_dict in this network's own key names, loaded strictly."""

    def __init__(self, layers: tuple[int, int, int, int] = R3D_101_LAYERS, weights_path: str | None = None) -> None:
        super().__init__()
        from torchvision.models.video.resnet import BasicStem, Bottleneck, Conv3DSimple, VideoResNet

        net = VideoResNet(Bottleneck, [Conv3DSimple] * 4, list(layers), BasicStem)
        net.fc = nn.Identity()
        load_weights_strictly(net, weights_path)
        self.layers_per_stage = tuple(layers)
        self.out_channels = 512 * Bottleneck.expansion
        self.layers = nn.Sequential(net.stem, net.layer1, net.layer2, net.layer3, net.layer4)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.layers(clips)


BACKBONES = ("tiny", "resnet", "r3d_101")


def build_backbones(kind: str, video_weights: str | None = None, audio_weights: str | None = None
                    ) -> tuple[nn.Module, nn.Module]:
    """tiny: two-layer CNNs (CPU smoke runs). resnet: torchvision r3d_18 + resnet18 (not the paper's video
    network). r3d_101: a 3-D ResNet-101 (bottleneck, built in code) + resnet18, the depths Mocanu et al. name."""
    if kind == "tiny":
        return TinyVideoBackbone(), TinyAudioBackbone()
    if kind == "resnet":
        return R3D18Backbone(video_weights), ResNet18Audio(audio_weights)
    if kind == "r3d_101":
        return R3DBottleneckBackbone(R3D_101_LAYERS, video_weights), ResNet18Audio(audio_weights)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {kind!r}")


class EndToEndAV(nn.Module):
    """Video [B, N, k, S, S, 3] uint8-range floats and spectrogram images [B, N, bins, t] (log-mel or STFT) ->
    the fusion head's outputs."""

    def __init__(self, video: nn.Module, audio: nn.Module, n_classes: int, n_snippets: int,
                 frames_per_snippet: int, frame_size: int, head_params: dict, detach_head: bool = False) -> None:
        """detach_head: the classifier sees the fused vector detached (loss="metric": the metric loss alone
        trains the backbones and attention, cross-entropy trains only the classifier)."""
        super().__init__()
        self.video, self.audio = video, audio
        self.detach_head = detach_head
        with torch.no_grad():  # the number of positions s of the feature map depends on the input size
            probe = torch.zeros(1, 3, frames_per_snippet, frame_size, frame_size)
            was_training = video.training
            video.eval()
            positions = int(video(probe)[0, 0].numel())
            video.train(was_training)
        self.head = AVCrossAttentionHead(video.out_channels, audio.out_channels, n_classes, n_snippets,
                                         positions, m=video.out_channels, **head_params)
        self.register_buffer("mean", torch.tensor(VIDEO_MEAN).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(VIDEO_STD).view(1, 3, 1, 1, 1))

    def forward(self, video: torch.Tensor, spectrogram: torch.Tensor) -> dict[str, torch.Tensor]:
        b, n = video.shape[:2]
        clips = video.flatten(0, 1).permute(0, 4, 1, 2, 3) / 255.0  # [B*N, 3, k, S, S]
        maps = self.video((clips - self.mean) / self.std)  # [B*N, m, t, h, w]
        maps = maps.flatten(2).transpose(1, 2).reshape(b, n, -1, maps.shape[1])  # [B, N, s, m]
        audio = self.audio(spectrogram.flatten(0, 1).unsqueeze(1)).reshape(b, n, -1)  # [B, N, m_a]
        return self.head(maps, audio, detach_head=self.detach_head)
