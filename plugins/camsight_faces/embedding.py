"""Face alignment and 128-d embeddings with dlib (5-point predictor + ResNet).

dlib's 5-point shape predictor finds the eye corners and the nose inside a
detector's box; ``compute_face_descriptor`` warps the face to dlib's
canonical 150x150 chip with those points and runs the ResNet. Two embeddings
of the same person are usually closer than 0.6 (Euclidean). The 68-point
model is never used: its training data is licensed for non-commercial use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from camsight_faces.faces import FloatArray
from camsight_faces.models import dlib_face_resnet, dlib_shape_predictor_5

MODEL_NAME = "dlib_resnet_v1"
"""Stored with every gallery embedding: only embeddings of one model are compared."""
EMBEDDING_SIZE = 128


class DlibEmbedder:
    """Aligns faces given as boxes and computes their 128-d embeddings.

    dlib's models are not documented as thread-safe: one lock serialises the
    calls of one instance (a service runs one instance per worker thread).
    """

    model_name = MODEL_NAME

    def __init__(
        self,
        shape_predictor: Path | None = None,
        resnet: Path | None = None,
        num_jitters: int = 0,
        padding: float = 0.25,
    ) -> None:
        import dlib

        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(shape_predictor or dlib_shape_predictor_5()))
        self.resnet = dlib.face_recognition_model_v1(str(resnet or dlib_face_resnet()))
        self.num_jitters = num_jitters
        self.padding = padding
        self._lock = threading.Lock()

    def embed(self, image_bgr: np.ndarray, boxes: FloatArray) -> FloatArray:
        """(n, 128) embeddings of the faces in ``boxes`` (n, 4 pixel x1 y1 x2 y2) of one image."""
        if len(boxes) == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        dlib = self._dlib
        rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        shapes = dlib.full_object_detections()
        with self._lock:
            for x1, y1, x2, y2 in np.round(boxes).astype(int):
                shapes.append(self.predictor(rgb, dlib.rectangle(int(x1), int(y1), int(x2), int(y2))))
            vectors = self.resnet.compute_face_descriptor(rgb, shapes, self.num_jitters, self.padding)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)

    def embed_many(self, images: Sequence[np.ndarray], boxes: Sequence[FloatArray]) -> list[FloatArray]:
        """Embeddings per image, for a batch of images and their face boxes."""
        return [self.embed(image, b) for image, b in zip(images, boxes, strict=True)]
