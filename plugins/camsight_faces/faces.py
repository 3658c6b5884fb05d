"""Faces found in one image, as plain arrays in pixel coordinates.

Every detector (CenterFace on OpenCV or torch, Haar) returns :class:`Faces`,
so alignment, embedding, cropping and the conversion to protobuf are written
once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""CenterFace's five landmarks, in its output order (image left/right)."""


@dataclass(frozen=True)
class Faces:
    """``boxes`` (n, 4) x1 y1 x2 y2 in pixels, ``scores`` (n,), ``landmarks`` (n, 5, 2) or None."""

    boxes: FloatArray
    scores: FloatArray
    landmarks: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty(with_landmarks: bool = False) -> Faces:
        return Faces(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32) if with_landmarks else None,
        )

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Faces:
        """The subset of faces chosen by a mask or index array."""
        lms = None if self.landmarks is None else self.landmarks[keep]
        return Faces(self.boxes[keep], self.scores[keep], lms)

    def filtered(self, min_score: float, min_size: float) -> Faces:
        """Faces with score >= ``min_score`` whose shorter box side is >= ``min_size`` pixels."""
        sides = np.minimum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])
        return self.select((self.scores >= min_score) & (sides >= min_size))


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        w, h = np.clip(hi - lo, 0, None).T
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou < iou_threshold]
    return np.asarray(keep, dtype=np.intp)
