"""Small image helpers shared by the OpenCV analyzers."""

from __future__ import annotations

import cv2
import numpy as np
from camsight.analyzers import Image


def shrink(image: Image, max_width: int) -> tuple[Image, float]:
    """Downscale ``image`` to at most ``max_width`` pixels wide; return it and the scale used.

    The analyzers work at a small size for speed; boxes are normalised, so
    the scale does not leak into results.
    """
    height, width = image.shape[:2]
    if max_width <= 0 or width <= max_width:
        return image, 1.0
    scale = max_width / width
    small = cv2.resize(image, (max_width, round(height * scale)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8), scale
