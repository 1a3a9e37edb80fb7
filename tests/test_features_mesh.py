"""`face-landmarks`: MediaPipe's 468 landmarks on a real photograph (matplotlib's bundled Grace Hopper portrait)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.features.base import ClipInput, ExtractorConfigError, build_extractor, extractor_names, get_extractor
from harness.features.extractors.face import NoFaceError
from harness.features.extractors.mesh import LEFT_EYE, N_LANDMARKS, RIGHT_EYE, FaceLandmarksExtractor

HEIGHT, WIDTH = 600, 512  # the portrait's size


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    """The portrait, the same face at half size elsewhere on a plain background, and a frame of noise."""
    import matplotlib
    from PIL import Image

    portrait = Image.open(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg").convert("RGB")
    assert portrait.size == (WIDTH, HEIGHT)
    moved = Image.new("RGB", (WIDTH, HEIGHT), (90, 120, 90))
    moved.paste(portrait.resize((WIDTH // 2, HEIGHT // 2)), (200, 250))
    noise = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return {"portrait": np.asarray(portrait), "moved": np.asarray(moved), "noise": noise}


@pytest.fixture(scope="module")
def mesh() -> FaceLandmarksExtractor:
    pytest.importorskip("mediapipe", reason="face-landmarks needs mediapipe==0.10.14 (installed with --no-deps)")
    extractor = build_extractor("face-landmarks")
    extractor.setup()
    assert isinstance(extractor, FaceLandmarksExtractor)
    return extractor


def test_registered_with_validated_options() -> None:
    assert "face-landmarks" in extractor_names()
    cls = get_extractor("face-landmarks")
    assert cls.modality == "video" and "1404" in cls.output
    with pytest.raises(ExtractorConfigError, match="unknown options"):
        build_extractor("face-landmarks", {"detector": "mtcnn"})
    with pytest.raises(ExtractorConfigError, match="normalise must be one of"):
        build_extractor("face-landmarks", {"normalise": "pixels"})


def test_weights_identity_names_the_package(mesh) -> None:
    from importlib.metadata import version

    assert mesh.weights_identity() == f"mediapipe=={version('mediapipe')}"
    mesh.check_weights()


def test_frames_without_a_face_add_no_row(mesh, frames) -> None:
    clip = np.stack([frames["portrait"], frames["noise"], frames["moved"]])
    features = mesh.extract(ClipInput("hopper", frames=clip))
    assert features.sequence.shape == (2, N_LANDMARKS * 3) and features.pooled.shape == (N_LANDMARKS * 6,)
    np.testing.assert_allclose(features.pooled[:N_LANDMARKS * 3], features.sequence.mean(0), atol=1e-6)
    portrait, moved = features.sequence.reshape(2, N_LANDMARKS, 3)
    # interocular units: the eye centres are one unit apart around the origin, the subject's right eye on the left
    right, left = portrait[list(RIGHT_EYE), :2].mean(0), portrait[list(LEFT_EYE), :2].mean(0)
    np.testing.assert_allclose([np.linalg.norm(left - right), *((left + right) / 2)], [1, 0, 0], atol=1e-5)
    assert right[0] < 0 < left[0]
    # the same face at half size and elsewhere in the frame gives (nearly) the same normalised landmarks
    assert np.abs(portrait - moved).mean() < 0.05


def test_box_normalisation_spans_the_unit_square(frames) -> None:
    pytest.importorskip("mediapipe")
    extractor = build_extractor("face-landmarks", {"normalise": "box"})
    extractor.setup()
    points = extractor.extract(ClipInput("hopper", frames=frames["portrait"][None])).sequence.reshape(N_LANDMARKS, 3)
    np.testing.assert_allclose(points[:, :2].min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(points[:, :2].max(0), 1.0, atol=1e-6)


def test_no_face_at_all_is_a_failure_and_clips_do_not_leak(mesh, frames) -> None:
    before = mesh.extract(ClipInput("a", frames=frames["portrait"][None])).sequence
    with pytest.raises(NoFaceError, match="no face detected in any of 2 frames"):
        mesh.extract(ClipInput("noise", frames=np.stack([frames["noise"], frames["noise"][::-1]])))
    mesh.extract(ClipInput("b", frames=frames["moved"][None]))
    # every frame is processed on its own: the previous clips do not seed this one's landmarks
    np.testing.assert_array_equal(mesh.extract(ClipInput("a", frames=frames["portrait"][None])).sequence, before)
