"""Small JPEG face crops for snapshots (blurred with :func:`camsight.privacy.blur` when asked)."""

from __future__ import annotations

import cv2
import numpy as np

from camsight.analyzers import Image
from camsight.privacy import blur


def crop_box(
    box: tuple[float, float, float, float], width: int, height: int, margin: float
) -> tuple[int, int, int, int]:
    """Pixel square around a normalised box, grown by ``margin`` per side, clipped to the image."""
    x1, y1, x2, y2 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    right, bottom = int(min(width, round(cx + side / 2))), int(min(height, round(cy + side / 2)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def face_crop(
    image: Image,
    box: tuple[float, float, float, float],
    size: int,
    quality: int = 80,
    margin: float = 0.25,
    blurred: bool = False,
) -> bytes:
    """A ``size`` x ``size`` JPEG of the face in ``box`` (normalised), blurred when asked."""
    height, width = image.shape[:2]
    left, top, right, bottom = crop_box(box, width, height, margin)
    crop: Image = np.asarray(
        cv2.resize(image[top:bottom, left:right], (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    if blurred:
        crop = blur(crop)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the face crop as JPEG")
    return encoded.tobytes()
