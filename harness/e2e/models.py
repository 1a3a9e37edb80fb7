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


def _load_weights(module: nn.Module, path: str | None) -> None:
    if path:
        if not Path(path).exists():
            raise FileNotFoundError(f"backbone weights not found: {path}")
        module.load_state_dict(torch.load(path, map_location="cpu"), strict=False)


class R3D18Backbone(nn.Module):
    """torchvision's 3-D ResNet-18 up to its last conv stage (the feature map before global pooling)."""

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from torchvision.models.video import r3d_18

        net = r3d_18(weights=None)
        _load_weights(net, weights_path)
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
        _load_weights(net, weights_path)
        net.fc = nn.Identity()
        self.out_channels = 512
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.expand(-1, 3, -1, -1))


def build_backbones(kind: str, video_weights: str | None = None, audio_weights: str | None = None
                    ) -> tuple[nn.Module, nn.Module]:
    if kind == "tiny":
        return TinyVideoBackbone(), TinyAudioBackbone()
    if kind == "resnet":
        return R3D18Backbone(video_weights), ResNet18Audio(audio_weights)
    raise ValueError(f"backbone must be 'tiny' or 'resnet', got {kind!r}")


class EndToEndAV(nn.Module):
    """Video [B, N, k, S, S, 3] uint8-range floats and log-mel [B, N, mels, t] -> the fusion head's outputs."""

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
