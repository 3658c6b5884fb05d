"""Haar-cascade face detection: OpenCV's frontal-face cascade, a light CPU alternative to CenterFace.

The cascade ships inside opencv-python 4.x (``cv2.data.haarcascades``). It
misses turned and small faces more often than CenterFace (on the carphone
clip it finds the face in about 60 % of the frames, CenterFace in all) but
costs little. It gives no calibrated confidence: the score is
``1 - exp(-w / 4)`` of the cascade's last-stage weight ``w``, monotonic in
it and useful only for ranking.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from camsight_faces.faces import Faces


def cascade_file() -> Path:
    """OpenCV's default frontal-face cascade, from the installed opencv-python."""
    folder: str = cv2.data.haarcascades  # type: ignore[attr-defined]
    path = Path(folder) / "haarcascade_frontalface_default.xml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: opencv-python 4.x ships the Haar cascades, 5.x does not")
    return path


class HaarFaceDetector:
    """Faces with ``CascadeClassifier.detectMultiScale3`` on the equalised grey image."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 20) -> None:
        self.cascade = cv2.CascadeClassifier(str(cascade_file()))
        if self.cascade.empty():
            raise RuntimeError("OpenCV could not load the Haar face cascade")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._lock = threading.Lock()

    def detect(self, images: Sequence[np.ndarray], threshold: float) -> list[Faces]:
        """Faces in each BGR image whose score is at least ``threshold``; no landmarks."""
        return [self._detect(image).filtered(threshold, 0) for image in images]

    def _detect(self, image: np.ndarray) -> Faces:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        with self._lock:
            rects, _levels, weights = self.cascade.detectMultiScale3(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size),
                outputRejectLevels=True,
            )
        if len(rects) == 0:
            return Faces.empty()
        xywh = np.asarray(rects, np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        scores = (1.0 - np.exp(-np.maximum(np.ravel(weights), 0.0) / 4.0)).astype(np.float32)
        return Faces(boxes, scores)
