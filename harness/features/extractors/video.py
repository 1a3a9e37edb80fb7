"""Video extractors."""

from __future__ import annotations

import numpy as np

from harness.features.base import (
    ClipInput,
    Count,
    Extractor,
    ExtractorOptions,
    Features,
    OutputDims,
    Positive,
    register_extractor,
)


@register_extractor
class FrameGridExtractor(Extractor):
    """Per frame, the grey-level image averaged into a `grid x grid` layout (a face-agnostic pixel summary).

    A cheap, dependency-free baseline: on the synthetic corpus the face fills the frame, so the grid carries the
    mouth and brow shapes. Pooled = mean and standard deviation over frames.
    """

    name = "frame-grid"
    output = "sequence [T, grid*grid], pooled [2*grid*grid] (mean+std)"
    trained_on = ()
    modality = "video"
    description = "grey-level frame averaged to a grid x grid layout per frame; pooled mean+std"

    class Options(ExtractorOptions):
        grid: Count = 16
        fps: Positive = 12.0
        max_frames: Count = 64

    def output_dims(self) -> OutputDims:
        return OutputDims(self.options.grid ** 2, 2 * self.options.grid ** 2)

    def extract(self, clip: ClipInput) -> Features:
        assert clip.frames is not None
        grid = int(self.config["grid"])
        grey = clip.frames.astype(np.float32).mean(axis=-1) / 255.0
        t, h, w = grey.shape
        rows = np.array_split(np.arange(h), grid)
        cols = np.array_split(np.arange(w), grid)
        cells = np.stack([grey[:, r][:, :, c].mean(axis=(1, 2)) for r in rows for c in cols], axis=1)
        pooled = np.concatenate([cells.mean(axis=0), cells.std(axis=0)])
        return Features(sequence=cells, pooled=pooled)
