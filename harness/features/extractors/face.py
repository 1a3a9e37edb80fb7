"""Face detection, alignment and face-crop extractors.

Detection is facenet-pytorch's MTCNN (its weights ship inside the wheel, so it works offline); per frame the
most confident face is aligned (rotated so the eyes are level) and cropped. Frames without a face are
recorded (the `present` mask in the crop cache, and they contribute no row to the sequence), never filled in;
a clip with no face at all is a failure, reported in the failures table. `detector="full-frame"` treats each
frame as the face crop, for corpora distributed as face crops (and the synthetic corpus's drawn faces).
Crops are cached in the feature store (`_cache/face-crops`), keyed by the video file, the clip's segment of it
(IEMOCAP's utterances share one dialogue video) and the detection and sampling options, so several face
extractors on one corpus detect once.

`mtcnn-landmarks` returns MTCNN's five landmarks; MediaPipe's 468-point mesh is the `face-landmarks` extractor
(harness/features/extractors/mesh.py).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from harness.features.base import (
    ClipInput,
    Count,
    Extractor,
    ExtractorConfigError,
    ExtractorOptions,
    Features,
    MissingWeightsError,
    NonNegative,
    OutputDims,
    Positive,
    TrainableInPlace,
    directory_identity,
    register_extractor,
)
from harness.hashing import stable_hash


class FaceOptions(ExtractorOptions):
    """Frame sampling and face detection, shared by every face-crop extractor (and the crop cache's key)."""

    fps: Positive = 6.0
    max_frames: Count = 48
    detector: Literal["mtcnn", "full-frame"] = "mtcnn"  # full-frame: each frame is the face crop
    crop_size: Count = 112
    margin: NonNegative = 0.2
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.9
    min_face_size: Count = 20
    align: bool = True


FACE_DEFAULTS: dict[str, Any] = FaceOptions().model_dump()
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class NoFaceError(RuntimeError):
    """No frame of the clip has a face: the clip's face modality is missing (a failure row, not zeros)."""


@dataclass
class FaceTrack:
    """The aligned face of every frame that has one."""

    crops: np.ndarray  # [K, S, S, 3] uint8
    landmarks: np.ndarray  # [K, 5, 2] in crop coordinates, normalised to [0, 1]
    present: np.ndarray  # [T] bool: which decoded frames had a face

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, crops=self.crops, landmarks=self.landmarks, present=self.present)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FaceTrack:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return cls(npz["crops"], npz["landmarks"], npz["present"])


def _rotation(points: np.ndarray, center: np.ndarray, degrees: float) -> np.ndarray:
    """Where `points` land after PIL's `rotate(degrees, center=center)` (counter-clockwise on screen)."""
    theta = np.deg2rad(degrees)
    c, s = np.cos(theta), np.sin(theta)
    shifted = points - center
    return np.stack([c * shifted[:, 0] + s * shifted[:, 1], -s * shifted[:, 0] + c * shifted[:, 1]], 1) + center


def align_crop(frame: np.ndarray, box: np.ndarray, points: np.ndarray, size: int, margin: float, align: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the frame so the eyes are level, crop the (margin-expanded) box, resize to `size` squared."""
    from PIL import Image

    image = Image.fromarray(frame)
    if align:
        left_eye, right_eye = points[0], points[1]
        degrees = float(np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])))
        center = (left_eye + right_eye) / 2
        image = image.rotate(degrees, center=tuple(center), resample=Image.BILINEAR)
        points = _rotation(points, center, degrees)
    x1, y1, x2, y2 = box
    pad_x, pad_y = (x2 - x1) * margin / 2, (y2 - y1) * margin / 2
    x1, y1, x2, y2 = x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y
    crop = image.crop((int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))).resize((size, size))
    normalised = (points - [x1, y1]) / [max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)]
    return np.asarray(crop, dtype=np.uint8), normalised.astype(np.float32)


class FaceCropper:
    """MTCNN detection + alignment per frame, with crops cached in the feature store."""

    def __init__(self, config: dict[str, Any], cache: Any = None, device: str = "cpu") -> None:
        self.config = config
        self.cache = cache
        self.mtcnn = None
        if config["detector"] == "mtcnn":
            from facenet_pytorch import MTCNN

            self.mtcnn = MTCNN(keep_all=False, select_largest=False, device=device,
                               min_face_size=int(config["min_face_size"]))

    def cache_key(self, clip: ClipInput) -> str | None:
        """The crops' identity: file (path, size, mtime), segment bounds, and the detection/sampling options."""
        if not clip.video_path or not os.path.exists(clip.video_path):
            return None
        info = os.stat(clip.video_path)
        options = {k: self.config[k] for k in FACE_DEFAULTS}
        return stable_hash([str(Path(clip.video_path).resolve()), info.st_size, info.st_mtime_ns,
                            [clip.video_start, clip.video_end], options]) + ".npz"

    def track(self, clip: ClipInput) -> FaceTrack:
        assert clip.frames is not None
        key = self.cache_key(clip) if self.cache is not None else None
        if key is not None and (data := self.cache.read_blob("face-crops", key)) is not None:
            track = FaceTrack.from_bytes(data)
        else:
            track = self._detect(clip.frames)
            if key is not None:
                self.cache.write_blob("face-crops", key, track.to_bytes())
        if not track.present.any():
            raise NoFaceError(f"{clip.video_path or clip.clip_id}: no face detected in any of "
                              f"{len(track.present)} frames (detector={self.config['detector']})")
        return track

    def _detect(self, frames: np.ndarray) -> FaceTrack:
        size, margin = int(self.config["crop_size"]), float(self.config["margin"])
        if self.mtcnn is None:
            h, w = frames.shape[1:3]
            box = np.array([0, 0, w, h], np.float32)
            points = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * [w, h]
            crops, marks = zip(*(align_crop(f, box, points, size, 0.0, False) for f in frames), strict=True)
            return FaceTrack(np.stack(crops), np.stack(marks), np.ones(len(frames), bool))
        boxes, probs, points = self.mtcnn.detect(list(frames), landmarks=True)
        crops, marks, present = [], [], []
        for frame, b, p, pts in zip(frames, boxes, probs, points, strict=True):
            ok = b is not None and p[0] is not None and float(p[0]) >= float(self.config["min_confidence"])
            present.append(ok)
            if ok:
                crop, mark = align_crop(frame, b[0], pts[0], size, margin, bool(self.config["align"]))
                crops.append(crop)
                marks.append(mark)
        empty = (np.zeros((0, size, size, 3), np.uint8), np.zeros((0, 5, 2), np.float32))
        return FaceTrack(np.stack(crops) if crops else empty[0], np.stack(marks) if marks else empty[1],
                         np.array(present, bool))


class FaceExtractor(Extractor):
    """Base for extractors on aligned face crops: validates the detector options, owns the cropper."""

    modality = "video"
    Options = FaceOptions

    def weights_identity(self) -> str:
        if self.config["detector"] != "mtcnn":
            return ""
        from importlib.metadata import version

        return f"facenet-pytorch=={version('facenet-pytorch')}"

    def check_weights(self) -> None:
        if self.config["detector"] == "mtcnn":
            try:
                import facenet_pytorch  # noqa: F401
            except ImportError:
                raise MissingWeightsError("face detection needs MTCNN's bundled weights: pip install --no-deps "
                                          "facenet-pytorch==2.5.3, or set detector=full-frame") from None

    def setup(self) -> None:
        self._device = self.device()
        self.cropper = FaceCropper(self.config, self.cache, self._device)


@register_extractor
class MtcnnLandmarksExtractor(FaceExtractor):
    """MTCNN's five landmarks (eyes, nose, mouth corners) per face frame, normalised to the face box."""

    name = "mtcnn-landmarks"
    trained_on = ("WIDER FACE", "CelebA")  # the MTCNN face detector
    description = "MTCNN 5-point landmarks per face frame, normalised to the face box; pooled mean+std"
    output = "sequence [K face frames, 10]; pooled [20]"

    def output_dims(self) -> OutputDims:
        return OutputDims(10, 20)

    def extract(self, clip: ClipInput) -> Features:
        sequence = self.cropper.track(clip).landmarks.reshape(-1, 10)
        return Features(sequence=sequence, pooled=np.concatenate([sequence.mean(0), sequence.std(0)]))


@register_extractor
class FaceExpressionExtractor(FaceExtractor):
    """The `facial-emotion-recognition` package's FER CNN (48x48 grey input, 7 classes; weights in the wheel).

    Per face frame: the 256-d penultimate embedding and the 7 class scores normalised to sum to one
    (angry, disgust, fear, happy, sad, surprise, neutral).
    """

    name = "face-expression"
    trained_on = ("FER2013",)
    description = "facial-emotion-recognition FER CNN: 256-d penultimate + 7 class probabilities per face"
    output = "sequence [K face frames, 263]; pooled [263] (mean)"

    def output_dims(self) -> OutputDims:
        return OutputDims(256 + len(FER_CLASSES), 256 + len(FER_CLASSES))

    def _package_dir(self) -> Path:
        import importlib.util

        spec = importlib.util.find_spec("facial_emotion_recognition")
        if spec is None or not spec.submodule_search_locations:
            raise MissingWeightsError("face-expression needs the FER weights shipped in a package: pip install "
                                      "--no-deps facial-emotion-recognition==0.3.4")
        return Path(spec.submodule_search_locations[0])

    def weights_identity(self) -> str:
        try:
            weights = directory_identity(self._package_dir() / "model")
        except MissingWeightsError:
            weights = "missing"
        return f"{super().weights_identity()};fer={weights}"

    def check_weights(self) -> None:
        super().check_weights()
        self._package_dir()

    def setup(self) -> None:
        import importlib.util

        import torch

        super().setup()
        package = self._package_dir()
        # networks.py only; the package's __init__ imports OpenCV for its webcam demo, which we do not need
        spec = importlib.util.spec_from_file_location("fer_networks", package / "networks.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        network = module.NetworkV2(in_c=1, nl=32, out_f=len(FER_CLASSES))
        state = torch.load(package / "model" / "model.pkl", map_location="cpu", weights_only=True)
        network.load_state_dict(state["network"])
        self._network = network.eval().to(self._device)

    def extract(self, clip: ClipInput) -> Features:
        import torch
        import torch.nn.functional as F

        crops = self.cropper.track(clip).crops
        grey = torch.from_numpy(crops).float().mean(dim=-1)[:, None] / 255.0  # [K, 1, S, S]
        x = (F.interpolate(grey, size=(48, 48), mode="bilinear", align_corners=False) - 0.5) / 0.5
        net = self._network
        with torch.no_grad():
            h = net.conv_4(net.conv_3(net.conv_2(net.conv_1(x.to(self._device))))).flatten(1)
            embedding = net.linear[1](net.linear[0](h))
            scores = net.linear[3](net.linear[2](embedding))
        probabilities = scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-8)
        sequence = torch.cat([embedding, probabilities], dim=1).cpu().numpy()
        return Features(sequence=sequence, pooled=sequence.mean(axis=0))


@register_extractor
class FaceEmbedExtractor(FaceExtractor, TrainableInPlace):
    """Any `transformers` or `timm` image backbone from a local path (e.g. a FAb-Net- or VGGFace-like encoder).

    `backbone="transformers"`: `checkpoint` is a local model directory (or a cached hub name). Per face frame: the
    model's pooler output when it has one, else the CLS token (`pooling="cls"`) or the mean of the last hidden
    state (`"mean"`). Inputs use the checkpoint's image processor when it ships one, else ImageNet normalisation
    at `image_size`.

    `backbone="timm"`: `checkpoint` is either a state_dict file (`.pth`/`.pt`/`.bin`/`.safetensors`) for the timm
    architecture named by `model`, or a directory written by `timm.models.save_for_hf` (`config.json` names the
    architecture). The model is built without its classifier (`num_classes=0`), so it returns its own globally
    pooled features; a classifier in the checkpoint is dropped, any other key mismatch is an error, because
    silently random layers would produce plausible-looking but meaningless features. Inputs are resized to
    `image_size` and normalised with the model's mean/std (timm's data config).
    """

    name = "face-embed"
    trained_on = None  # any image backbone the user names
    description = "any transformers or timm image backbone (local path) on aligned face crops; one vector per face"
    output = "sequence [K face frames, hidden]; pooled [hidden] (mean)"

    class Options(FaceOptions):
        backbone: Literal["transformers", "timm"] = "transformers"
        checkpoint: str = ""  # required: a local model directory or file (see the class docstring)
        model: str = ""  # backbone=timm with a state_dict file: the timm architecture
        pooling: Literal["pooler", "cls", "mean"] = "pooler"
        image_size: Count = 224

    def output_dims(self) -> OutputDims:
        """The backbone's width, known once `setup()` has loaded it."""
        model = getattr(self, "_model", None)
        if model is None:
            return OutputDims(None, None)
        if self.config["backbone"] == "timm":
            width = int(model.num_features)
        else:
            sizes = getattr(model.config, "hidden_sizes", None)
            width = int(sizes[-1]) if sizes else int(model.config.hidden_size)
        return OutputDims(width, width)

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        backbone = self.config["backbone"]
        if not self.config["checkpoint"]:
            raise ExtractorConfigError(f"face-embed needs checkpoint=/path/to/a {backbone} image model")
        if backbone == "transformers" and self.config["model"]:
            raise ExtractorConfigError("face-embed: model= names a timm architecture; set backbone=timm, or drop "
                                       "it (a transformers checkpoint names its own architecture)")
        if backbone == "timm" and self.config["pooling"] != "pooler":
            raise ExtractorConfigError("face-embed: timm backbones pool with their own global pooling; "
                                       "leave pooling=pooler")

    def weights_identity(self) -> str:
        if self.config["backbone"] == "timm":
            from harness.features.weights.timm_weights import timm_identity

            return f"{super().weights_identity()};{timm_identity(self.config['checkpoint'])}"
        from harness.features.weights.hf import checkpoint_identity

        return f"{super().weights_identity()};{checkpoint_identity(self.config['checkpoint'])}"

    def check_weights(self) -> None:
        super().check_weights()
        if self.config["backbone"] == "timm":
            from harness.features.weights.timm_weights import timm_checkpoint

            timm_checkpoint(self.config["checkpoint"], self.config["model"])
            return
        from harness.features.weights.hf import resolve_checkpoint

        resolve_checkpoint(self.config["checkpoint"])

    def setup(self) -> None:
        super().setup()
        # ImageNet statistics unless the backbone declares its own (timm's data config)
        self._mean, self._std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        self._processor = None
        if self.config["backbone"] == "timm":
            from harness.features.weights.timm_weights import load_timm

            model, self._mean, self._std = load_timm(self.config["checkpoint"], self.config["model"])
            self._model = model.eval().to(self._device)
            return
        from transformers import AutoModel

        from harness.features.weights.hf import resolve_checkpoint

        path = resolve_checkpoint(self.config["checkpoint"])
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(self._device)
        if (Path(path) / "preprocessor_config.json").exists():
            from transformers import AutoImageProcessor

            self._processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)

    # ---- inference -----------------------------------------------------------------------------------
    def pixel_values(self, crops: np.ndarray):
        import torch
        import torch.nn.functional as F

        if self._processor is not None:
            return self._processor(images=list(crops), return_tensors="pt").pixel_values
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
        size = int(self.config["image_size"])
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        mean = torch.tensor(self._mean)[:, None, None]
        std = torch.tensor(self._std)[:, None, None]
        return (x - mean) / std

    def network_on(self, device: str):
        if getattr(self, "_model", None) is None:
            self.setup()
        self._device = device
        return self._model.to(device)

    def face_crops(self, clip: ClipInput) -> np.ndarray:
        """The clip's aligned face crops [K, size, size, 3] (cached in the store when `cache` is set)."""
        return self.cropper.track(clip).crops

    def frame_vectors(self, pixels):
        """One vector per face frame [K, D] (differentiable: the fine-tuner trains through it)."""
        if self.config["backbone"] == "timm":
            return self._model(pixels)  # [K, num_features]: the classifier-free model's pooled output
        out = self._model(pixel_values=pixels)
        pooling = self.config["pooling"]
        if pooling == "pooler" and getattr(out, "pooler_output", None) is not None:
            return out.pooler_output
        if pooling == "mean":
            return out.last_hidden_state.mean(dim=1)
        return out.last_hidden_state[:, 0]

    def extract(self, clip: ClipInput) -> Features:
        import torch

        crops = self.face_crops(clip)
        pixels = self.pixel_values(crops).to(self._device)
        with torch.no_grad():
            vectors = self.frame_vectors(pixels)
        sequence = vectors.reshape(len(crops), -1).float().cpu().numpy()
        return Features(sequence=sequence, pooled=sequence.mean(axis=0))
