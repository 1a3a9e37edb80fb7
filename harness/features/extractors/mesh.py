"""MediaPipe's 468-point face mesh (`face-landmarks`), with the detector and landmark models bundled in the wheel.

Why this shape:

* mediapipe 0.10.14 is the last release that ships the legacy face-mesh graph *with* its tflite models (0.10.30+
  dropped `mediapipe.solutions` and bundles no models; the Tasks API downloads `face_landmarker.task`), so it
  works offline. Its metadata pins protobuf < 5 and pulls opencv-contrib/jax/sounddevice, none of which it needs
  to run the face mesh: it is installed with `--no-deps` next to our protobuf 7 (see docs/features.md).
* Under protobuf >= 5 two removed APIs break it: `GetPrototype` (used to decode the landmark protos, and by the
  C++ bindings at import) and `FieldDescriptor.label` (used only when overriding calculator options).
  `_protobuf_compat` adds the former back as an alias of `message_factory.GetMessageClass`; the latter is avoided
  by building the graph without calculator overrides, i.e. with the graph's own thresholds (detection 0.5,
  landmark presence 0.5), which are exactly `FaceMesh`'s defaults.
* Every frame is processed independently (`use_prev_landmarks=False`): in tracking mode the landmarks of one
  clip would seed the next clip's first frame on the same actor, making features depend on scheduling.

Conventions are those of the face-crop extractors (`harness.features.extractors.face`): frames without a face add
no row, a clip without any face raises `NoFaceError` (a failure row, never zeros).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.features.base import (
    ClipInput,
    Count,
    Extractor,
    ExtractorOptions,
    Features,
    MissingWeightsError,
    OutputDims,
    Positive,
    package_identity,
    register_extractor,
)
from harness.features.extractors.face import NoFaceError

N_LANDMARKS = 468
# eye corners in the canonical 468-point mesh: subject's right eye (outer, inner), left eye (inner, outer)
RIGHT_EYE = (33, 133)
LEFT_EYE = (362, 263)
INSTALL_HINT = ("pip install --no-deps mediapipe==0.10.14 opencv-python-headless==5.0.0.93 absl-py==2.5.1 "
                "flatbuffers==25.12.19 (mediapipe's own pins, protobuf<5 and opencv-contrib, must be skipped)")


def _protobuf_compat() -> None:
    """Re-add `GetPrototype` (removed in protobuf 5) as an alias of `GetMessageClass`, which is what it did."""
    from google.protobuf import message_factory, symbol_database

    def get_prototype(_self: Any, descriptor: Any) -> type:
        return message_factory.GetMessageClass(descriptor)

    for cls in (message_factory.MessageFactory, symbol_database.SymbolDatabase):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = get_prototype


def normalise_landmarks(points: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    """Make one face's `[468, 3]` MediaPipe landmarks independent of where the face is and how large it is.

    MediaPipe gives x, y as fractions of the image width and height and z (depth, relative to the face centre)
    on roughly the scale of x, so all three are first converted to pixels. `interocular`: origin at the midpoint
    of the eye centres, unit = the distance between them (the usual landmark normalisation; keeps head pose).
    `box`: origin at the landmarks' bounding-box corner, x, y in [0, 1] of the box, z in box widths.
    """
    pixels = points * np.array([width, height, width], np.float64)
    if method == "interocular":
        right, left = pixels[list(RIGHT_EYE)].mean(0), pixels[list(LEFT_EYE)].mean(0)
        scale = max(float(np.linalg.norm(left[:2] - right[:2])), 1e-6)
        return ((pixels - (right + left) / 2) / scale).astype(np.float32)
    low, high = pixels[:, :2].min(0), pixels[:, :2].max(0)
    size = np.maximum(high - low, 1e-6)
    xy = (pixels[:, :2] - low) / size
    z = (pixels[:, 2] - pixels[:, 2].mean()) / size[0]
    return np.concatenate([xy, z[:, None]], axis=1).astype(np.float32)


@register_extractor
class FaceLandmarksExtractor(Extractor):
    """MediaPipe face mesh per sampled frame: the 468 landmarks (x, y, z) of one face, normalised."""

    name = "face-landmarks"
    trained_on = None  # MediaPipe face mesh: its training images are not published
    modality = "video"
    description = "MediaPipe 468-point face mesh per face frame (x, y, z), normalised; pooled mean+std"
    output = f"sequence [K face frames, {N_LANDMARKS * 3}]; pooled [{N_LANDMARKS * 6}]"

    class Options(ExtractorOptions):
        fps: Positive = 6.0
        max_frames: Count = 48
        normalise: Literal["interocular", "box"] = "interocular"  # see normalise_landmarks

    def output_dims(self) -> OutputDims:
        return OutputDims(N_LANDMARKS * 3, N_LANDMARKS * 6)

    @staticmethod
    def _package_dir() -> Path:
        spec = importlib.util.find_spec("mediapipe")
        if spec is None or not spec.submodule_search_locations:
            raise MissingWeightsError(f"face-landmarks needs the face-mesh models shipped in mediapipe: {INSTALL_HINT}")
        package = Path(spec.submodule_search_locations[0])
        if not (package / "modules" / "face_landmark" / "face_landmark.tflite").exists():
            raise MissingWeightsError("this mediapipe has no bundled face-mesh model (only releases up to 0.10.21 "
                                      f"ship it): {INSTALL_HINT}")
        return package

    def weights_identity(self) -> str:
        return package_identity("mediapipe")

    def check_weights(self) -> None:
        self._package_dir()

    def setup(self) -> None:
        self._package_dir()
        _protobuf_compat()
        from mediapipe.python.solution_base import SolutionBase
        from mediapipe.python.solutions import face_mesh

        self._mesh = SolutionBase(binary_graph_path=face_mesh._BINARYPB_FILE_PATH,
                                  side_inputs={"num_faces": 1, "with_attention": False, "use_prev_landmarks": False},
                                  outputs=["multi_face_landmarks"])

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """The `[468, 3]` raw landmarks of the face MediaPipe finds in an RGB frame, or None without one."""
        faces = self._mesh.process({"image": np.ascontiguousarray(frame)}).multi_face_landmarks
        if not faces:
            return None
        return np.array([(p.x, p.y, p.z) for p in faces[0].landmark], np.float64)

    def extract(self, clip: ClipInput) -> Features:
        assert clip.frames is not None
        height, width = clip.frames.shape[1:3]
        rows = [normalise_landmarks(points, width, height, self.config["normalise"]).reshape(-1)
                for frame in clip.frames if (points := self.landmarks(frame)) is not None]
        if not rows:
            raise NoFaceError(f"{clip.video_path or clip.clip_id}: no face detected in any of {len(clip.frames)} "
                              "frames (detector=mediapipe face mesh)")
        sequence = np.stack(rows)
        return Features(sequence=sequence, pooled=np.concatenate([sequence.mean(0), sequence.std(0)]))
