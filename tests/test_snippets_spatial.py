"""video-snippets with `spatial_grid`: a grid of face regions per snippet, so Mocanu's VS/VC see real positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.datasets.synthetic import SyntheticConfig, generate, scan
from harness.features.base import ExtractorConfigError, build_extractor
from harness.features.decode import decode_clip
from harness.features.decode import media_rows as _media_rows
from methods.neural.layers import segment_pool

SMALL = {"detector": "full-frame", "image_size": 32, "snippet_frames": 4, "weights": "random"}


@pytest.fixture(scope="module")
def row(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=1, clips_per_emotion=1))
    manifest = scan(root)
    return _media_rows(manifest, set(manifest.ids)).to_dict("records")[0]


def run(config: dict, row: dict):
    extractor = build_extractor("video-snippets", config)
    extractor.setup()
    return extractor.extract(decode_clip(row, extractor)), extractor


def test_grid_regions_are_distinct_and_average_to_the_global_vector(row) -> None:
    torch.set_num_threads(1)
    global_, plain = run(SMALL, row)
    grid, gridded = run({**SMALL, "spatial_grid": 2}, row)
    assert global_.sequence.shape == (6, 512)
    assert grid.sequence.shape == (6 * 4, 512)
    per_snippet = grid.sequence.reshape(6, 4, 512)
    # r3d_18 maps a 32x32 input to a 2x2 layer4 map: the 2x2 grid is exactly its cells, so their mean is the
    # globally pooled snippet vector of the default extractor.
    np.testing.assert_allclose(per_snippet.mean(axis=1), global_.sequence, atol=1e-4)
    for snippet in per_snippet:  # four different vectors per snippet, not copies
        distances = np.linalg.norm(snippet[:, None] - snippet[None], axis=-1)
        assert distances[~np.eye(4, dtype=bool)].min() > 1e-3
    assert plain.cache_key("m") != gridded.cache_key("m")


def test_av_cross_attention_reads_the_grid_as_its_spatial_positions(row) -> None:
    """With positions_per_snippet = g*g the method's [N, s, m] map is the extractor's grid, unresampled."""
    grid, _ = run({**SMALL, "spatial_grid": 2}, row)
    x = torch.from_numpy(grid.sequence)[None]
    maps = segment_pool(x, torch.ones(1, len(grid.sequence), dtype=torch.bool), 6 * 4).reshape(1, 6, 4, 512)
    torch.testing.assert_close(maps[0], x[0].reshape(6, 4, 512))
    assert not torch.allclose(maps[0, :, 0], maps[0, :, 1])  # VS attends over different vectors per position


def test_bad_grids_are_errors_that_name_the_fix(row) -> None:
    with pytest.raises(ExtractorConfigError, match="option spatial_grid must be an integer >= 1, got 0"):
        build_extractor("video-snippets", {**SMALL, "spatial_grid": 0})
    with pytest.raises(ExtractorConfigError, match="larger image_size"):
        run({**SMALL, "spatial_grid": 3}, row)


def test_the_run_sets_the_methods_snippet_layout_from_the_extractor() -> None:
    """`harness run` derives av-xattn's N and s = g*g from the video-snippets options: configured once."""
    from types import SimpleNamespace

    from harness.config import Settings
    from harness.datasets import get_dataset
    from harness.pipeline import method_fixed_params
    from harness.prepare import extractor_refs
    from methods import get_method

    spec = get_dataset("synthetic")
    settings = Settings(features={"video": "video-snippets"},
                        extractor_config={"video-snippets": {"spatial_grid": 3, "snippets": 4}})
    prepared = SimpleNamespace(spec=spec, feature_keys={"audio": "a:1", "video": "video-snippets:2"},
                               extractors=extractor_refs(spec, settings))  # as planned (DatasetPlan.extractors)
    for name in ("av-xattn", "av-xattn@paper"):  # the preset's N = 6 yields to the features' real layout
        fixed = method_fixed_params(get_method(name), prepared, settings)
        assert (fixed["n_snippets"], fixed["positions_per_snippet"]) == (4, 9)
    assert "n_snippets" not in method_fixed_params(get_method("ima-hadamard"), prepared, settings)
    other = Settings(features={"video": "frame-grid"})  # an extractor without a snippet layout: method defaults
    framed = SimpleNamespace(spec=spec, feature_keys=prepared.feature_keys, extractors=extractor_refs(spec, other))
    assert "positions_per_snippet" not in method_fixed_params(get_method("av-xattn"), framed, other)
    no_video = SimpleNamespace(spec=spec, feature_keys={"audio": "a:1"}, extractors=prepared.extractors)
    assert "n_snippets" not in method_fixed_params(get_method("av-xattn"), no_video, settings)
