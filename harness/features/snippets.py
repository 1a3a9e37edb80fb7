"""`video-snippets`: the A-V cross-attention paper's visual input, N snippets of aligned face crops -> 3-D CNN.

N (default 6) snippets of `snippet_frames` (default 16) consecutive face frames, spread evenly over the clip's
face track and resized to `image_size` (default 224), each encoded into one vector: torchvision r3d_18 or
r2plus1d_18 (weights "kinetics" from the torch hub cache, "random", or a local state_dict), or any local
VideoMAE checkpoint through transformers (`backbone="videomae"`, `checkpoint=/path`). A track shorter than a
snippet repeats its last frame (recorded in the docs, not hidden: the face track length is in the crop cache).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.features.base import ClipInput, ExtractorConfigError, Features, register_extractor
from harness.features.face import FACE_DEFAULTS, FaceExtractor
from harness.features.torchvision_weights import load_torchvision_model, torchvision_weights_identity

BACKBONES = ("r3d_18", "r2plus1d_18", "videomae")
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def snippet_indices(n_frames: int, snippets: int, length: int) -> np.ndarray:
    """[snippets, length] frame indices: evenly spread starts, consecutive frames, the last frame repeated."""
    starts = np.linspace(0, max(0, n_frames - length), snippets).round().astype(int)
    return np.minimum(starts[:, None] + np.arange(length)[None], n_frames - 1)


@register_extractor
class VideoSnippetsExtractor(FaceExtractor):
    name = "video-snippets"
    defaults: dict[str, Any] = {**FACE_DEFAULTS, "fps": None, "max_frames": 300, "snippets": 6,
                                "snippet_frames": 16, "image_size": 224, "backbone": "r3d_18",
                                "weights": "kinetics", "checkpoint": "", "seed": 0}
    description = "N=6 snippets x 16 face-crop frames encoded by r3d_18 / r2plus1d_18 / a local VideoMAE"
    output = "sequence [snippets, 512] (torchvision) or [snippets, hidden] (VideoMAE); pooled = snippet mean"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if self.config["backbone"] not in BACKBONES:
            raise ExtractorConfigError(f"video-snippets: backbone must be one of {BACKBONES}")
        if self.config["backbone"] == "videomae" and not self.config["checkpoint"]:
            raise ExtractorConfigError("video-snippets: backbone=videomae needs checkpoint=/path/to/videomae")

    def weights_identity(self) -> str:
        from harness.features.hf import checkpoint_identity

        backbone = self.config["backbone"]
        model = (checkpoint_identity(self.config["checkpoint"]) if backbone == "videomae"
                 else torchvision_weights_identity(backbone, self.config["weights"]))
        return f"{super().weights_identity()};{model}"

    def check_weights(self) -> None:
        from harness.features.hf import resolve_checkpoint

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

            from harness.features.hf import resolve_checkpoint

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
        with torch.no_grad():
            if self.config["backbone"] == "videomae":
                sequence = self._model(pixel_values=clips).last_hidden_state.mean(dim=1)
            else:
                sequence = self._model(clips.permute(0, 2, 1, 3, 4))  # torchvision wants [N, C, T, H, W]
        sequence = sequence.float().cpu().numpy()
        return Features(sequence=sequence, pooled=sequence.mean(axis=0))
