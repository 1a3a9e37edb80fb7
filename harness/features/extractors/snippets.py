"""`video-snippets`: the A-V cross-attention paper's visual input, N snippets of aligned face crops -> 3-D CNN.

N (default 6) snippets of `snippet_frames` (default 16) consecutive face frames, spread evenly over the clip's
face track and resized to `image_size` (default 224), each encoded into one vector: torchvision r3d_18 or
r2plus1d_18 (weights "kinetics" from the torch hub cache, "random", or a local state_dict), or any local
VideoMAE checkpoint through transformers (`backbone="videomae"`, `checkpoint=/path`). A track shorter than a
snippet repeats its last frame (recorded in the docs, not hidden: the face track length is in the crop cache).

`spatial_grid=g` keeps the spatial map: the backbone's last feature map (torchvision: `layer4`, [m, t, h, w];
VideoMAE: the patch tokens laid out as [t, h, w, hidden]) is averaged over time and average-pooled to a g x g
grid of regions, so each snippet gives g*g vectors instead of one. The sequence is snippet-major
(`[snippets * g*g, m]`, rows i*g*g .. (i+1)*g*g - 1 are snippet i), which is what the A-V cross-attention
method reads with `positions_per_snippet = g*g` (`snippet_layout`; `harness run` sets both N and g*g on the
method from this extractor's options): its spatial (VS) and channel (VC) attention then see real regions of the
face instead of copies of one vector. g = 1 (the default) is the global pooling the extractor
always did. The option is part of the extractor config, so it is part of the feature cache key.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from harness.features.base import (
    ClipInput,
    Count,
    ExtractorConfigError,
    Features,
    OutputDims,
    Positive,
    register_extractor,
)
from harness.features.extractors.face import FaceExtractor, FaceOptions
from harness.features.weights.torchvision_weights import load_torchvision_model, torchvision_weights_identity

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def snippet_indices(n_frames: int, snippets: int, length: int) -> np.ndarray:
    """[snippets, length] frame indices: evenly spread starts, consecutive frames, the last frame repeated."""
    starts = np.linspace(0, max(0, n_frames - length), snippets).round().astype(int)
    return np.minimum(starts[:, None] + np.arange(length)[None], n_frames - 1)


@register_extractor
class VideoSnippetsExtractor(FaceExtractor):
    name = "video-snippets"
    trained_on = ("Kinetics-400",)  # torchvision r3d_18 / r2plus1d_18
    description = "N=6 snippets x 16 face-crop frames encoded by r3d_18 / r2plus1d_18 / a local VideoMAE"
    output = ("sequence [snippets * g*g, 512] (torchvision) or [snippets * g*g, hidden] (VideoMAE), g = spatial_grid "
              "(1: one vector per snippet); pooled = mean of all rows")

    class Options(FaceOptions):
        fps: Positive | None = None  # None: every decoded frame (the snippets need consecutive frames)
        max_frames: Count = 300
        snippets: Count = 6
        snippet_frames: Count = 16
        image_size: Count = 224
        backbone: Literal["r3d_18", "r2plus1d_18", "videomae"] = "r3d_18"
        weights: str = "kinetics"  # torchvision backbones: "kinetics" (torch hub cache), "random" or a path
        checkpoint: str = ""  # backbone=videomae: a local VideoMAE directory
        seed: int = 0
        spatial_grid: Count = 1  # g: g x g regions per snippet (1: one vector per snippet)

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if self.config["backbone"] == "videomae" and not self.config["checkpoint"]:
            raise ExtractorConfigError("video-snippets: backbone=videomae needs checkpoint=/path/to/videomae")

    def output_dims(self) -> OutputDims:
        """512 for the torchvision backbones, VideoMAE's hidden size once `setup()` has loaded it."""
        width = None
        if self.config["backbone"] != "videomae":
            width = 512
        elif getattr(self, "_model", None) is not None:
            width = int(self._model.config.hidden_size)
        return OutputDims(width, width, rows=self.options.snippets * self.options.spatial_grid ** 2)

    def snippet_layout(self) -> dict[str, int]:
        """How the sequence is laid out, in the A-V cross-attention method's terms: N snippets of g*g positions.
        The harness fixes these on the method from the extractor that made the features, so the layout is
        configured once (here) and a method can never read a grid as whole snippets or the other way round."""
        return {"n_snippets": int(self.config["snippets"]),
                "positions_per_snippet": int(self.config["spatial_grid"]) ** 2}

    def weights_identity(self) -> str:
        from harness.features.weights.hf import checkpoint_identity

        backbone = self.config["backbone"]
        model = (checkpoint_identity(self.config["checkpoint"]) if backbone == "videomae"
                 else torchvision_weights_identity(backbone, self.config["weights"]))
        return f"{super().weights_identity()};{model}"

    def check_weights(self) -> None:
        from harness.features.weights.hf import resolve_checkpoint

        super().check_weights()
        if self.config["backbone"] == "videomae":
            resolve_checkpoint(self.config["checkpoint"])
        else:
            torchvision_weights_identity(self.config["backbone"], self.config["weights"], require=True)

    def setup(self) -> None:
        import torch

        super().setup()
        backbone = self.config["backbone"]
        if backbone == "videomae":
            from transformers import VideoMAEModel

            from harness.features.weights.hf import resolve_checkpoint

            self._model = VideoMAEModel.from_pretrained(resolve_checkpoint(self.config["checkpoint"]),
                                                        local_files_only=True)
            self._mean, self._std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        else:
            self._model = load_torchvision_model(backbone, self.config["weights"], int(self.config["seed"]))
            self._model.fc = torch.nn.Identity()
            self._mean, self._std = KINETICS_MEAN, KINETICS_STD
        self._model = self._model.eval().to(self._device)

    def snippets(self, crops: np.ndarray):
        """[N, L, 3, S, S] normalised float tensor of face-crop snippets."""
        import torch
        import torch.nn.functional as F

        size = int(self.config["image_size"])
        index = snippet_indices(len(crops), int(self.config["snippets"]), int(self.config["snippet_frames"]))
        x = torch.from_numpy(crops[index.reshape(-1)]).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = (x - torch.tensor(self._mean)[:, None, None]) / torch.tensor(self._std)[:, None, None]
        return x.reshape(*index.shape, 3, size, size)

    def extract(self, clip: ClipInput) -> Features:
        import torch

        clips = self.snippets(self.cropper.track(clip).crops).to(self._device)
        grid = int(self.config["spatial_grid"])
        with torch.no_grad():
            if grid > 1:
                sequence = self.region_vectors(clips, grid)
            elif self.config["backbone"] == "videomae":
                sequence = self._model(pixel_values=clips).last_hidden_state.mean(dim=1)
            else:
                sequence = self._model(clips.permute(0, 2, 1, 3, 4))  # torchvision wants [N, C, T, H, W]
        sequence = sequence.float().cpu().numpy()
        return Features(sequence=sequence, pooled=sequence.mean(axis=0))

    def feature_map(self, clips):
        """[N, m, h, w]: the backbone's last spatial feature map of each snippet, averaged over time."""
        if self.config["backbone"] == "videomae":
            tokens = self._model(pixel_values=clips).last_hidden_state  # [N, t*h*w, hidden], (t, h, w) order
            side = int(self.config["image_size"]) // int(self._model.config.patch_size)
            n, count, hidden = tokens.shape
            return tokens.reshape(n, count // (side * side), side, side, hidden).mean(dim=1).permute(0, 3, 1, 2)
        net, x = self._model, clips.permute(0, 2, 1, 3, 4)  # torchvision wants [N, C, T, H, W]
        x = net.layer4(net.layer3(net.layer2(net.layer1(net.stem(x)))))  # [N, 512, t, h, w]
        return x.mean(dim=2)

    def region_vectors(self, clips, grid: int):
        """[N * grid*grid, m]: each snippet's map average-pooled to grid x grid regions, snippet-major."""
        import torch.nn.functional as F

        maps = self.feature_map(clips)
        if min(maps.shape[-2:]) < grid:
            raise ExtractorConfigError(
                f"video-snippets: spatial_grid={grid} is finer than the backbone's {maps.shape[-2]}x"
                f"{maps.shape[-1]} feature map at image_size={self.config['image_size']}; use a smaller grid or a "
                "larger image_size")
        regions = F.adaptive_avg_pool2d(maps, grid)  # [N, m, g, g]
        return regions.flatten(2).transpose(1, 2).reshape(-1, regions.shape[1])
