"""What "blurred" means in the privacy tests, measured on real pictures (docs/decisions/0034).

A face box counts as blurred when the variance of its Laplacian (edge
energy) fell to under a tenth of the original's: the privacy blur leaves
about 1 % on the carphone face, JPEG re-encoding of an untouched face keeps
well over half.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from helpers import sample_video

Image = np.ndarray[Any, np.dtype[np.uint8]]
Box = tuple[float, float, float, float]

# CenterFace's box of the man in carphone_pristine.mp4, frame 5 (normalised x1, y1, x2, y2).
CARPHONE_FACE: Box = (0.356, 0.259, 0.625, 0.664)
CARPHONE_FRAME = 5


def carphone_frame(index: int = CARPHONE_FRAME) -> Image:
    cap = cv2.VideoCapture(str(sample_video("carphone_pristine.mp4")))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
    finally:
        cap.release()
    assert ok
    return np.asarray(image, np.uint8)


def region(image: Image, box: Box, shrink: float = 0.15) -> Image:
    """The inside of ``box`` (shrunk by ``shrink`` per side, away from drawn box edges)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * shrink, (y2 - y1) * shrink
    return image[round((y1 + dy) * h) : round((y2 - dy) * h), round((x1 + dx) * w) : round((x2 - dx) * w)]


def sharpness(image: Image) -> float:
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def decode(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return np.asarray(image, np.uint8)


def assert_blurred(out: Image, original: Image, box: Box) -> None:
    """The box of ``out`` is blurred compared with the same box of ``original`` (same size)."""
    before, after = sharpness(region(original, box)), sharpness(region(out, box))
    assert after < before / 10, f"box not blurred: Laplacian variance {after:.1f}, originally {before:.1f}"


def assert_sharp(out: Image, original: Image, box: Box) -> None:
    before, after = sharpness(region(original, box)), sharpness(region(out, box))
    assert after > before / 2, f"box blurred: Laplacian variance {after:.1f}, originally {before:.1f}"
