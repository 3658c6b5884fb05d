"""Sampling, resizing and encoding of decoded pictures (pure, blocking, thread-safe).

Shared by the decoder and by bench/decoder.py's baseline loop, so the
benchmark compares the service against exactly the same image work.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest size within max_width x max_height with the source's aspect (never upscales)."""
    scale = min(max_width / width, max_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class Encoded:
    data: bytes
    width: int
    height: int
    source_width: int
    source_height: int


def resize_and_encode(image: np.ndarray, max_width: int, max_height: int, quality: int) -> Encoded | None:
    """Resize to fit and JPEG-encode; None when the picture is empty or cannot be encoded."""
    if image is None or image.ndim < 2 or image.size == 0:
        return None
    src_h, src_w = image.shape[:2]
    width, height = fit_size(src_w, src_h, max_width, max_height)
    if (width, height) != (src_w, src_h):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return None
    return Encoded(buf.tobytes(), width, height, src_w, src_h)


class FpsSampler:
    """Keeps frames at ``fps`` per second of a clock (media time for files, wall clock live).

    A frame is taken when its time reached the next due time; the due time
    then advances by one period (jumping ahead when the source skipped time,
    e.g. after a reconnect, so it never bursts to catch up). ``fps <= 0``
    keeps every frame.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._due: float | None = None

    def reset(self) -> None:
        self._due = None

    def take(self, t: float) -> bool:
        if self.period == 0.0:
            return True
        # Half a millisecond of slack: media timestamps are rounded.
        if self._due is not None and t + 5e-4 < self._due:
            return False
        self._due = (
            t + self.period if self._due is None or t >= self._due + self.period else self._due + self.period
        )
        return True
